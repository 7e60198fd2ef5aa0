//! Action attempts: what the API started, and how it ended.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::{parse_ts, parse_uuid, ts, Cached, Store, StoreError};

/// An action attempt as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub action_attempt_id: Uuid,
    pub action_type: String,
    /// pending | success | error
    pub status: String,
    pub result: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The code whose work the attempt follows (it ends when that work does).
    pub access_code_id: Option<Uuid>,
}

impl Store {
    pub fn put_attempt(conn: &Connection, a: &AttemptRow) -> Result<(), StoreError> {
        conn.exec(
            "INSERT OR REPLACE INTO action_attempts (action_attempt_id, action_type, status, result, error, created_at, updated_at, access_code_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                a.action_attempt_id.to_string(),
                a.action_type,
                a.status,
                a.result.as_ref().map(|v| v.to_string()),
                a.error.as_ref().map(|v| v.to_string()),
                ts(&a.created_at),
                ts(&a.updated_at),
                a.access_code_id.map(|u| u.to_string()),
            ],
        )?;
        Ok(())
    }

    pub fn attempt(conn: &Connection, id: &Uuid) -> Result<Option<AttemptRow>, StoreError> {
        conn.one(
            &format!("SELECT {COLUMNS} FROM action_attempts WHERE action_attempt_id = ?1"),
            [id.to_string()],
            from_row,
        )
        .optional()?
        .transpose()
    }

    /// The pending attempts that follow a code's work, oldest first.
    pub fn pending_attempts(conn: &Connection, code: &Uuid) -> Result<Vec<AttemptRow>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM action_attempts WHERE access_code_id = ?1 AND status = 'pending' \
             ORDER BY created_at"
        ))?;
        let rows = stmt.query_map([code.to_string()], from_row)?;
        rows.map(|r| r?).collect()
    }
}

const COLUMNS: &str =
    "action_attempt_id, action_type, status, result, error, created_at, updated_at, access_code_id";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<AttemptRow, StoreError>> {
    let (id, action_type, status): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
    let (result, error): (Option<String>, Option<String>) = (r.get(3)?, r.get(4)?);
    let (created, updated): (String, String) = (r.get(5)?, r.get(6)?);
    let code: Option<String> = r.get(7)?;
    let json = |what, v: Option<String>| -> Result<Option<serde_json::Value>, StoreError> {
        v.map(|s| {
            serde_json::from_str(&s).map_err(|_| StoreError::Corrupt {
                what,
                value: s.clone(),
            })
        })
        .transpose()
    };
    Ok((|| {
        Ok(AttemptRow {
            action_attempt_id: parse_uuid("action_attempts.action_attempt_id", &id)?,
            action_type,
            status,
            result: json("action_attempts.result", result)?,
            error: json("action_attempts.error", error)?,
            created_at: parse_ts("action_attempts.created_at", &created)?,
            updated_at: parse_ts("action_attempts.updated_at", &updated)?,
            access_code_id: code
                .map(|c| parse_uuid("action_attempts.access_code_id", &c))
                .transpose()?,
        })
    })())
}
