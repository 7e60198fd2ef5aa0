//! zwlock: a local access-code gateway for Z-Wave keypad locks.
//!
//! Layers, bottom up (each knows nothing of the ones above it):
//! `serial` (bytes, framing, link rules) → `serialapi` (typed Serial API messages) → …

pub mod api;
pub mod cc;
pub mod cli;
pub mod codes;
pub mod config;
pub mod daemon;
pub mod driver;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod mqtt;
pub mod replay;
pub mod security;
pub mod serial;
pub mod serialapi;
pub mod service;
pub mod setup;
pub mod sim;
pub mod store;
pub mod util;
