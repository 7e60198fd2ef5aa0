//! Action attempts that tell the truth: the attempt of a create, update or delete stays
//! `pending` until the lock has what was asked (then `success`, with the code as it is), or
//! until the engine gives up on that attempt (then `error`, with the error's type and message;
//! the engine itself keeps working on the code).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::store::{AttemptRow, StoreError, Tx};

pub const CREATE: &str = "CREATE_ACCESS_CODE";
pub const UPDATE: &str = "UPDATE_ACCESS_CODE";
pub const DELETE: &str = "DELETE_ACCESS_CODE";

/// A new attempt, already finished (`status`: "success" with `result`) or `pending`.
pub(crate) fn new(
    tx: &Tx<'_>,
    action_type: &str,
    status: &str,
    result: Option<Value>,
    code: Option<Uuid>,
    now: &DateTime<Utc>,
) -> Result<AttemptRow, StoreError> {
    let a = AttemptRow {
        action_attempt_id: Uuid::new_v4(),
        action_type: action_type.into(),
        status: status.into(),
        result,
        error: None,
        created_at: *now,
        updated_at: *now,
        access_code_id: code,
    };
    tx.put_attempt(&a)?;
    Ok(a)
}

/// A pending attempt that follows `code`'s work.
pub(crate) fn pending(
    tx: &Tx<'_>,
    action_type: &str,
    code: &Uuid,
    now: &DateTime<Utc>,
) -> Result<AttemptRow, StoreError> {
    new(tx, action_type, "pending", None, Some(*code), now)
}

/// The pending attempts of `code` among `types` succeed with `result`.
pub(crate) fn succeed(
    tx: &Tx<'_>,
    code: &Uuid,
    types: &[&str],
    result: &Value,
    now: &DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for mut a in tx.pending_attempts(code)? {
        if types.contains(&a.action_type.as_str()) {
            a.status = "success".into();
            a.result = Some(result.clone());
            a.updated_at = *now;
            tx.put_attempt(&a)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Every pending attempt of `code` ends in error (the engine gave up on them).
pub(crate) fn fail(
    tx: &Tx<'_>,
    code: &Uuid,
    kind: &str,
    message: &str,
    now: &DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for mut a in tx.pending_attempts(code)? {
        a.status = "error".into();
        a.error = Some(json!({ "type": kind, "message": message }));
        a.updated_at = *now;
        tx.put_attempt(&a)?;
        n += 1;
    }
    Ok(n)
}
