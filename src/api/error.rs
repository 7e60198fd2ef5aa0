//! API errors in Seam's envelope: `{"error": {"type", "message", "validation_errors"?}, "ok": false}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::codes::validate::FieldError;
use crate::codes::EngineError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: String,
    pub message: String,
    /// (parameter, message) pairs.
    pub validation: Vec<(String, String)>,
    pub data: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind: kind.into(),
            message: message.into(),
            validation: Vec::new(),
            data: None,
        }
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self::invalid_fields(
            errors
                .into_iter()
                .map(|e| (e.field.to_string(), e.message))
                .collect(),
        )
    }

    /// An `Idempotency-Key` given again with other parameters (a 422 naming the header).
    pub fn key_reused() -> Self {
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "Idempotency-Key: this key was used with different parameters; use a new key for a new request",
        );
        e.validation = vec![(
            "Idempotency-Key".into(),
            "was used with different parameters".into(),
        )];
        e
    }

    pub fn invalid_fields(errors: Vec<(String, String)>) -> Self {
        let message = match errors.as_slice() {
            [(field, message)] => format!("{field}: {message}"),
            many => format!(
                "{} Input Errors: {}",
                many.len(),
                many.iter()
                    .map(|(f, _)| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_input".into(),
            message,
            validation: errors,
            data: None,
        }
    }

    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }

    pub fn not_found(kind: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, message)
    }

    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this route accepts {}", allowed.join(", ")),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            message,
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(errors) => ApiError::invalid(errors),
            EngineError::NotFound { what, id } => {
                let kind = match what {
                    "device" => "device_not_found",
                    "access code" => "access_code_not_found",
                    "unmanaged access code" => "access_code_not_found",
                    "action attempt" => "action_attempt_not_found",
                    _ => "not_found",
                };
                ApiError::not_found(kind, format!("{what} {id} not found"))
            }
            EngineError::Conflict {
                kind,
                message,
                other_id,
            } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, kind, message);
                e.data = other_id.map(|id| json!({ "conflicting_access_code_id": id }));
                e
            }
            EngineError::Unsupported(m) => ApiError::new(StatusCode::BAD_REQUEST, "unsupported", m),
            EngineError::NotAllowed { kind, message } => {
                ApiError::new(StatusCode::BAD_REQUEST, kind, message)
            }
            EngineError::NotConnected(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "hub_disconnected", m)
            }
            EngineError::Busy(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", m),
            EngineError::KeyReused => ApiError::key_reused(),
            EngineError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                "zwlock is stopping",
            ),
            EngineError::Store(s) => {
                tracing::error!(error = %s, "store error answering a request");
                ApiError::internal("the daemon could not read or write its database")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("type".into(), json!(self.kind));
        error.insert("message".into(), json!(self.message));
        if !self.validation.is_empty() {
            // zod's format() tree, which both Seam SDKs read.
            let mut tree = Map::new();
            tree.insert("_errors".into(), json!([]));
            for (field, message) in &self.validation {
                let entry = tree
                    .entry(field.clone())
                    .or_insert_with(|| json!({ "_errors": [] }));
                if let Some(list) = entry.get_mut("_errors").and_then(Value::as_array_mut) {
                    list.push(json!(message));
                }
            }
            error.insert("validation_errors".into(), Value::Object(tree));
        }
        if let Some(d) = self.data {
            error.insert("data".into(), d);
        }
        let body = json!({ "error": Value::Object(error), "ok": false });
        (self.status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stick_that_is_not_connected_is_a_503_not_a_400() {
        let e = ApiError::from(EngineError::NotConnected(
            "the Z-Wave stick is not connected".into(),
        ));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.kind, "hub_disconnected");
        assert_eq!(
            ApiError::from(EngineError::Busy("full".into())).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(EngineError::Stopped).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(EngineError::Unsupported("no".into())).status,
            StatusCode::BAD_REQUEST
        );
    }
}
