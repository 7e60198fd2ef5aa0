//! Action attempts: what the API started, and how it ended.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::{parse_ts, parse_uuid, ts, Store, StoreError};

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
}

impl Store {
    pub fn put_attempt(conn: &Connection, a: &AttemptRow) -> Result<(), StoreError> {
        conn.execute(
            "INSERT OR REPLACE INTO action_attempts (action_attempt_id, action_type, status, result, error, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                a.action_attempt_id.to_string(),
                a.action_type,
                a.status,
                a.result.as_ref().map(|v| v.to_string()),
                a.error.as_ref().map(|v| v.to_string()),
                ts(&a.created_at),
                ts(&a.updated_at)
            ],
        )?;
        Ok(())
    }

    pub fn attempt(conn: &Connection, id: &Uuid) -> Result<Option<AttemptRow>, StoreError> {
        let row = conn
            .query_row(
                "SELECT action_attempt_id, action_type, status, result, error, created_at, updated_at \
                 FROM action_attempts WHERE action_attempt_id = ?1",
                [id.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, action_type, status, result, error, created, updated)) = row else {
            return Ok(None);
        };
        let json = |what, v: Option<String>| -> Result<Option<serde_json::Value>, StoreError> {
            v.map(|s| {
                serde_json::from_str(&s).map_err(|_| StoreError::Corrupt {
                    what,
                    value: s.clone(),
                })
            })
            .transpose()
        };
        Ok(Some(AttemptRow {
            action_attempt_id: parse_uuid("action_attempts.action_attempt_id", &id)?,
            action_type,
            status,
            result: json("action_attempts.result", result)?,
            error: json("action_attempts.error", error)?,
            created_at: parse_ts("action_attempts.created_at", &created)?,
            updated_at: parse_ts("action_attempts.updated_at", &updated)?,
        }))
    }
}
