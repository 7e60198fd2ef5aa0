//! Events: every transition, with its ids and time, for `/events/list` and the event stream.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Row, ToSql};
use uuid::Uuid;

use super::{parse_ts, parse_uuid, ts, Cached, Store, StoreError};

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Order of insertion (for streaming "everything after N").
    pub seq: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub device_id: Option<Uuid>,
    pub access_code_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after_seq: Option<i64>,
    pub device_ids: Option<Vec<Uuid>>,
    pub access_code_ids: Option<Vec<Uuid>>,
    pub event_types: Option<Vec<String>>,
    pub limit: Option<usize>,
}

const COLUMNS: &str =
    "seq, event_id, event_type, device_id, access_code_id, occurred_at, created_at, payload";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<EventRow, StoreError>> {
    let seq: i64 = r.get(0)?;
    let id: String = r.get(1)?;
    let event_type: String = r.get(2)?;
    let device: Option<String> = r.get(3)?;
    let code: Option<String> = r.get(4)?;
    let occurred: String = r.get(5)?;
    let created: String = r.get(6)?;
    let payload: String = r.get(7)?;
    Ok((|| {
        Ok(EventRow {
            seq,
            event_id: parse_uuid("events.event_id", &id)?,
            event_type,
            device_id: device
                .map(|d| parse_uuid("events.device_id", &d))
                .transpose()?,
            access_code_id: code
                .map(|c| parse_uuid("events.access_code_id", &c))
                .transpose()?,
            occurred_at: parse_ts("events.occurred_at", &occurred)?,
            created_at: parse_ts("events.created_at", &created)?,
            payload: serde_json::from_str(&payload).map_err(|_| StoreError::Corrupt {
                what: "events.payload",
                value: payload.clone(),
            })?,
        })
    })())
}

impl Store {
    /// Append an event; returns it.
    pub fn add_event(
        conn: &Connection,
        event_type: &str,
        device_id: Option<&Uuid>,
        access_code_id: Option<&Uuid>,
        occurred_at: &DateTime<Utc>,
        payload: serde_json::Value,
    ) -> Result<EventRow, StoreError> {
        let id = Uuid::new_v4();
        let text = payload.to_string();
        conn.exec(
            "INSERT INTO events (event_id, event_type, device_id, access_code_id, occurred_at, created_at, payload) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
            params![
                id.to_string(),
                event_type,
                device_id.map(Uuid::to_string),
                access_code_id.map(Uuid::to_string),
                ts(occurred_at),
                text
            ],
        )?;
        Ok(EventRow {
            seq: conn.last_insert_rowid(),
            event_id: id,
            event_type: event_type.to_string(),
            device_id: device_id.copied(),
            access_code_id: access_code_id.copied(),
            occurred_at: *occurred_at,
            created_at: *occurred_at,
            payload,
        })
    }

    pub fn event(conn: &Connection, id: &Uuid) -> Result<Option<EventRow>, StoreError> {
        use rusqlite::OptionalExtension;
        conn.one(
            &format!("SELECT {COLUMNS} FROM events WHERE event_id = ?1"),
            [id.to_string()],
            from_row,
        )
        .optional()?
        .transpose()
    }

    pub fn events(conn: &Connection, f: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        let mut q = Query::new(format!("SELECT {COLUMNS} FROM events WHERE 1 = 1"));
        if let Some(t) = &f.since {
            q.and("created_at >=", ts(t));
        }
        if let Some(t) = &f.until {
            q.and("created_at <", ts(t));
        }
        if let Some(s) = f.after_seq {
            q.and("seq >", s);
        }
        if let Some(ids) = &f.device_ids {
            q.and_in("device_id", ids.iter().map(Uuid::to_string));
        }
        if let Some(ids) = &f.access_code_ids {
            q.and_in("access_code_id", ids.iter().map(Uuid::to_string));
        }
        if let Some(types) = &f.event_types {
            q.and_in("event_type", types.iter().cloned());
        }
        q.sql.push_str(" ORDER BY seq");
        if let Some(l) = f.limit {
            q.sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut stmt = conn.prepare_cached(&q.sql)?;
        let refs: Vec<&dyn ToSql> = q.args.iter().map(|a| a.as_ref()).collect();
        let rows = stmt.query_map(refs.as_slice(), from_row)?;
        rows.map(|r| r?).collect()
    }

    pub fn last_event_seq(conn: &Connection) -> Result<i64, StoreError> {
        Ok(conn.one("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
    }
}

/// A WHERE clause built up with numbered placeholders.
struct Query {
    sql: String,
    args: Vec<Box<dyn ToSql>>,
}

impl Query {
    fn new(sql: String) -> Self {
        Query {
            sql,
            args: Vec::new(),
        }
    }

    fn and(&mut self, column_op: &str, value: impl ToSql + 'static) {
        self.args.push(Box::new(value));
        self.sql
            .push_str(&format!(" AND {column_op} ?{}", self.args.len()));
    }

    fn and_in(&mut self, column: &str, values: impl Iterator<Item = String>) {
        let mut marks = Vec::new();
        for v in values {
            self.args.push(Box::new(v));
            marks.push(format!("?{}", self.args.len()));
        }
        if marks.is_empty() {
            self.sql.push_str(" AND 0");
        } else {
            self.sql
                .push_str(&format!(" AND {column} IN ({})", marks.join(",")));
        }
    }
}
