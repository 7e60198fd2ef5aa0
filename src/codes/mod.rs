//! The access-code engine: the model users see, validation, slot allocation, scheduling,
//! reconciliation with the locks, errors, warnings and events. Knows nothing of HTTP or bytes
//! on the wire.

pub mod clock;
pub mod engine;
pub mod model;
mod reconcile;
mod reports;
pub mod validate;

pub use clock::{Clock, SystemClock, TestClock};
pub use engine::{CreateRequest, Engine, EngineConfig, EngineError, UpdateRequest};
pub use model::AccessCode;
