//! The access-code engine: the model users see, validation, slot allocation, scheduling,
//! reconciliation with the locks, errors, warnings and events. Knows nothing of HTTP or bytes
//! on the wire.

mod alarms;
mod backup;
mod bulk;
pub mod clock;
pub mod engine;
mod external;
mod intents;
pub mod model;
pub mod network;
mod queries;
mod reconcile;
mod reports;
mod schedule;
mod slot_commands;
mod unmanaged;
pub mod validate;
pub mod watch;
mod write;

pub use bulk::WhenCannotShare;
pub use clock::{Clock, SystemClock, TestClock};
pub use engine::{CreateRequest, Engine, EngineConfig, EngineError, UpdateRequest};
pub use model::AccessCode;
pub use queries::Page;
