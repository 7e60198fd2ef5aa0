//! Replay of captured serial sessions: the fixture format and a player for the stick's side.
//!
//! Used by the replay tests (the host's bytes must match a capture exactly) and by tools.

pub mod fixture;
pub mod player;

pub use fixture::{Direction, Fixture, FixtureError, PatternByte, Step};
pub use player::{play_stick, spawn_stick, ReplayError, ReplayOptions};
