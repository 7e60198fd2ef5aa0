//! Why an intent was refused or could not be carried out; the API maps each to its status.

use uuid::Uuid;

use super::validate::FieldError;
use crate::store::StoreError;

/// Why an intent was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{what} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{message}")]
    Conflict {
        kind: &'static str,
        message: String,
        /// The code it conflicts with.
        other_id: Option<Uuid>,
    },
    #[error("{0}")]
    Unsupported(String),
    /// A request the model does not allow, with Seam's error type (a 400).
    #[error("{message}")]
    NotAllowed { kind: &'static str, message: String },
    /// The stick is not connected: nothing can reach a lock now (the API answers 503).
    #[error("{0}")]
    NotConnected(String),
    /// The engine's queue is full (503, try again).
    #[error("{0}")]
    Busy(String),
    #[error("the engine has stopped")]
    Stopped,
    /// An idempotency key given again with other parameters.
    #[error("this idempotency key was used with other parameters")]
    KeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        EngineError::Invalid(vec![FieldError::new(field, message)])
    }
}
