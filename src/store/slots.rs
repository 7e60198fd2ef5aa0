//! Slots: what each lock last reported for each user id, and when.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::{parse_ts, parse_uuid, ts, Cached, Store, StoreError};

/// What a slot held when the lock last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Empty,
    /// Holds a readable code.
    Occupied,
    /// Holds a code the lock will not show (masked or unreadable).
    Hidden,
    /// The lock says the user id does not exist.
    Unavailable,
}

impl SlotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotState::Empty => "empty",
            SlotState::Occupied => "occupied",
            SlotState::Hidden => "hidden",
            SlotState::Unavailable => "unavailable",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "empty" => SlotState::Empty,
            "occupied" => SlotState::Occupied,
            "hidden" => SlotState::Hidden,
            "unavailable" => SlotState::Unavailable,
            other => {
                return Err(StoreError::Corrupt {
                    what: "slots.state",
                    value: other.to_string(),
                })
            }
        })
    }

    /// The slot holds a code (readable or not).
    pub fn holds_code(self) -> bool {
        matches!(self, SlotState::Occupied | SlotState::Hidden)
    }
}

/// A slot as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotRow {
    pub device_id: Uuid,
    pub slot: u16,
    pub state: SlotState,
    /// The PIN the lock reported (readable codes only).
    pub code: Option<String>,
    /// Stable id of the unmanaged access code this slot shows (changes when its code does).
    pub unmanaged_id: Uuid,
    pub reported_at: DateTime<Utc>,
    /// The lock reported the code as disabled (User ID status 2): there, but not usable.
    pub disabled: bool,
}

impl std::fmt::Debug for SlotRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotRow")
            .field("slot", &self.slot)
            .field("state", &self.state)
            .field("code", &self.code.as_ref().map(|_| "****"))
            .finish()
    }
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<SlotRow, StoreError>> {
    let device: String = r.get(0)?;
    let state: String = r.get(2)?;
    let unmanaged: String = r.get(4)?;
    let at: String = r.get(5)?;
    let disabled: bool = r.get::<_, i64>(6)? != 0;
    Ok((|| {
        Ok(SlotRow {
            device_id: parse_uuid("slots.device_id", &device)?,
            slot: r.get::<_, i64>(1).map(|v| v as u16).unwrap_or(0),
            state: SlotState::parse(&state)?,
            code: r.get(3).unwrap_or(None),
            unmanaged_id: parse_uuid("slots.unmanaged_id", &unmanaged)?,
            reported_at: parse_ts("slots.reported_at", &at)?,
            disabled,
        })
    })())
}

const COLUMNS: &str = "device_id, slot, state, code, unmanaged_id, reported_at, disabled";

impl Store {
    /// Record what the lock reported for a slot. Returns the previous row, if any.
    pub fn observe_slot(
        conn: &Connection,
        device_id: &Uuid,
        slot: u16,
        state: SlotState,
        code: Option<&str>,
        at: &DateTime<Utc>,
    ) -> Result<Option<SlotRow>, StoreError> {
        let previous = Store::slot(conn, device_id, slot)?;
        // A new unmanaged id whenever the slot's content changes.
        let same = previous
            .as_ref()
            .is_some_and(|p| p.state == state && p.code.as_deref() == code);
        let unmanaged_id = match (&previous, same) {
            (Some(p), true) => p.unmanaged_id,
            _ => Uuid::new_v4(),
        };
        conn.exec(
            "INSERT INTO slots (device_id, slot, state, code, unmanaged_id, reported_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT(device_id, slot) DO UPDATE SET state = ?3, code = ?4, unmanaged_id = ?5, reported_at = ?6, disabled = 0",
            params![
                device_id.to_string(),
                slot,
                state.as_str(),
                code,
                unmanaged_id.to_string(),
                ts(at)
            ],
        )?;
        Ok(previous)
    }

    pub fn slot(
        conn: &Connection,
        device_id: &Uuid,
        slot: u16,
    ) -> Result<Option<SlotRow>, StoreError> {
        conn.one(
            &format!("SELECT {COLUMNS} FROM slots WHERE device_id = ?1 AND slot = ?2"),
            params![device_id.to_string(), slot],
            from_row,
        )
        .optional()?
        .transpose()
    }

    pub fn slots(conn: &Connection, device_id: &Uuid) -> Result<Vec<SlotRow>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM slots WHERE device_id = ?1 ORDER BY slot"
        ))?;
        let rows = stmt.query_map([device_id.to_string()], from_row)?;
        rows.map(|r| r?).collect()
    }

    /// The slots of a device that read `pin`, by index.
    pub fn slots_with_pin(
        conn: &Connection,
        device_id: &Uuid,
        pin: &str,
    ) -> Result<Vec<SlotRow>, StoreError> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM slots WHERE device_id = ?1 AND code = ?2"
        ))?;
        let rows = stmt.query_map(params![device_id.to_string(), pin], from_row)?;
        rows.map(|r| r?).collect()
    }

    pub fn slot_by_unmanaged_id(
        conn: &Connection,
        id: &Uuid,
    ) -> Result<Option<SlotRow>, StoreError> {
        conn.one(
            &format!("SELECT {COLUMNS} FROM slots WHERE unmanaged_id = ?1"),
            [id.to_string()],
            from_row,
        )
        .optional()?
        .transpose()
    }

    /// Record that the lock reports a slot's code as disabled.
    pub fn set_slot_disabled(
        conn: &Connection,
        device_id: &Uuid,
        slot: u16,
        disabled: bool,
    ) -> Result<(), StoreError> {
        conn.exec(
            "UPDATE slots SET disabled = ?3 WHERE device_id = ?1 AND slot = ?2",
            params![device_id.to_string(), slot, disabled],
        )?;
        Ok(())
    }

    /// Give a slot's unmanaged code a chosen id (a managed code turned unmanaged keeps its id).
    pub fn set_unmanaged_id(
        conn: &Connection,
        device_id: &Uuid,
        slot: u16,
        id: &Uuid,
    ) -> Result<(), StoreError> {
        conn.exec(
            "UPDATE slots SET unmanaged_id = ?3 WHERE device_id = ?1 AND slot = ?2",
            params![device_id.to_string(), slot, id.to_string()],
        )?;
        Ok(())
    }

    /// Forget every slot of a device (after a factory reset everything reads empty anyway).
    pub fn mark_all_slots_empty(
        conn: &Connection,
        device_id: &Uuid,
        at: &DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for s in Store::slots(conn, device_id)? {
            Store::observe_slot(conn, device_id, s.slot, SlotState::Empty, None, at)?;
        }
        Ok(())
    }
}
