//! Devices: the locks, and the facts the engine uses about each, in their own columns. The
//! driver's own record of its interview is kept beside them as an opaque cache the store
//! never reads (`interview_cache`), handed back to the driver at start.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::{parse_opt_ts, parse_ts, parse_uuid, ts, Cached, Store, StoreError};
use crate::security::SecurityClass;

/// How a lock tells about keypad use and code changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Notifications {
    /// Notification v3+ Access Control events.
    AccessControl,
    /// Legacy Alarm type/level pairs (per manufacturer).
    LegacyAlarm,
    #[default]
    None,
}

impl Notifications {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Notifications::AccessControl => "access_control",
            Notifications::LegacyAlarm => "legacy_alarm",
            Notifications::None => "none",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "access_control" => Notifications::AccessControl,
            "legacy_alarm" => Notifications::LegacyAlarm,
            "none" => Notifications::None,
            other => {
                return Err(StoreError::Corrupt {
                    what: "devices.notifications",
                    value: other.to_string(),
                })
            }
        })
    }
}

/// Why a lock that must be reached securely cannot be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProblem {
    /// Its key exchange failed (a wrong PIN, no answer) and it could not be removed.
    KeyExchangeFailed,
    /// It is secure, but under none of the keys this hub holds.
    NoKey,
}

impl SecurityProblem {
    fn as_str(self) -> &'static str {
        match self {
            SecurityProblem::KeyExchangeFailed => "key_exchange_failed",
            SecurityProblem::NoKey => "no_key",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "key_exchange_failed" => Ok(SecurityProblem::KeyExchangeFailed),
            "no_key" => Ok(SecurityProblem::NoKey),
            other => Err(StoreError::Corrupt {
                what: "devices.security_failure",
                value: other.to_string(),
            }),
        }
    }
}

/// What the engine knows of a lock's abilities (from its interview).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockFacts {
    pub manufacturer_id: Option<u16>,
    pub product_type: Option<u16>,
    pub product_id: Option<u16>,
    /// User Code command class version (0 before the interview).
    pub user_code_version: u8,
    /// User Code v2 checksum.
    pub supports_checksum: bool,
    /// Extended User Code Get answers with several codes per report.
    pub supports_bulk_reports: bool,
    /// Schedule Entry Lock and Time Parameters: the lock enforces windows itself.
    pub supports_schedule: bool,
    pub notifications: Notifications,
    /// The security class the lock was granted, if any.
    pub security_class: Option<SecurityClass>,
    /// The lock must be reached securely and cannot be: no code goes to it.
    pub security_failure: Option<SecurityProblem>,
}

fn class_name(c: SecurityClass) -> &'static str {
    match c {
        SecurityClass::S2AccessControl => "s2_access_control",
        SecurityClass::S2Authenticated => "s2_authenticated",
        SecurityClass::S2Unauthenticated => "s2_unauthenticated",
        SecurityClass::S0Legacy => "s0_legacy",
    }
}

fn parse_class(s: &str) -> Result<SecurityClass, StoreError> {
    SecurityClass::ALL
        .into_iter()
        .find(|c| class_name(*c) == s)
        .ok_or_else(|| StoreError::Corrupt {
            what: "devices.security_class",
            value: s.to_string(),
        })
}

/// A lock as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub device_id: Uuid,
    pub node_id: u16,
    pub name: String,
    /// The driver's record of its interview, handed back to it at start (opaque here).
    pub interview_cache: Option<String>,
    pub facts: LockFacts,
    /// How many codes the lock holds at most, when it showed fewer than its slot count (it
    /// refused a code into an empty slot while holding this many).
    pub code_capacity: Option<u16>,
    /// PIN lengths the lock refused while it held codes of other lengths.
    pub refused_code_lengths: Vec<u8>,
    pub slot_count: u16,
    pub min_code_length: u8,
    pub max_code_length: u8,
    pub code_characters: String,
    pub online: bool,
    pub battery_level: Option<u8>,
    pub locked: Option<bool>,
    pub last_contact_at: Option<DateTime<Utc>>,
    /// Slots zwlock never allocates (e.g. slot 1 for the owner's master code).
    pub reserved_slots: Vec<u16>,
    /// Spare codes to keep programmed (0 = no backup pool).
    pub backup_pool_size: u8,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "device_id, node_id, name, info_json, slot_count, min_code_length, max_code_length, \
    code_characters, online, battery_level, locked, last_contact_at, reserved_slots, backup_pool_size, \
    created_at, updated_at, manufacturer_id, product_type, product_id, user_code_version, \
    supports_checksum, supports_bulk_reports, supports_schedule, notifications, code_capacity, \
    security_class, refused_code_lengths, security_failure";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<DeviceRow, StoreError>> {
    let id: String = r.get(0)?;
    let reserved: String = r.get(12)?;
    let created: String = r.get(14)?;
    let updated: String = r.get(15)?;
    let last: Option<String> = r.get(11)?;
    let notifications: String = r.get(23)?;
    let id16 = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(|v| v as u16));
    let facts = LockFacts {
        manufacturer_id: id16(16)?,
        product_type: id16(17)?,
        product_id: id16(18)?,
        user_code_version: r.get::<_, i64>(19)? as u8,
        supports_checksum: r.get::<_, i64>(20)? != 0,
        supports_bulk_reports: r.get::<_, i64>(21)? != 0,
        supports_schedule: r.get::<_, i64>(22)? != 0,
        notifications: Notifications::None,
        security_class: None,
        security_failure: None,
    };
    let code_capacity = id16(24)?;
    let security: Option<String> = r.get(25)?;
    let refused: String = r.get(26)?;
    let failure: Option<String> = r.get(27)?;
    Ok((|| {
        Ok(DeviceRow {
            device_id: parse_uuid("devices.device_id", &id)?,
            node_id: r.get::<_, i64>(1).map(|v| v as u16).unwrap_or(0),
            name: r.get(2).unwrap_or_default(),
            interview_cache: r.get(3).unwrap_or(None),
            facts: LockFacts {
                notifications: Notifications::parse(&notifications)?,
                security_class: security.as_deref().map(parse_class).transpose()?,
                security_failure: failure.as_deref().map(SecurityProblem::parse).transpose()?,
                ..facts
            },
            code_capacity,
            refused_code_lengths: serde_json::from_str(&refused).map_err(|_| {
                StoreError::Corrupt {
                    what: "devices.refused_code_lengths",
                    value: refused.clone(),
                }
            })?,
            slot_count: r.get::<_, i64>(4).map(|v| v as u16).unwrap_or(0),
            min_code_length: r.get::<_, i64>(5).map(|v| v as u8).unwrap_or(4),
            max_code_length: r.get::<_, i64>(6).map(|v| v as u8).unwrap_or(10),
            code_characters: r.get(7).unwrap_or_else(|_| "0123456789".into()),
            online: r.get::<_, i64>(8).map(|v| v != 0).unwrap_or(true),
            battery_level: r.get::<_, Option<i64>>(9).unwrap_or(None).map(|v| v as u8),
            locked: r.get::<_, Option<i64>>(10).unwrap_or(None).map(|v| v != 0),
            last_contact_at: parse_opt_ts("devices.last_contact_at", last)?,
            reserved_slots: serde_json::from_str(&reserved).map_err(|_| StoreError::Corrupt {
                what: "devices.reserved_slots",
                value: reserved.clone(),
            })?,
            backup_pool_size: r.get::<_, i64>(13).map(|v| v as u8).unwrap_or(0),
            created_at: parse_ts("devices.created_at", &created)?,
            updated_at: parse_ts("devices.updated_at", &updated)?,
        })
    })())
}

/// What the driver learned, to write into a device row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    pub node_id: u16,
    /// The name for a new device (a device already known keeps its own).
    pub name: Option<String>,
    pub interview_cache: Option<String>,
    pub facts: LockFacts,
    pub slot_count: u16,
    pub min_code_length: u8,
    pub max_code_length: u8,
    pub code_characters: String,
    pub battery_level: Option<u8>,
    pub locked: Option<bool>,
}

impl Store {
    /// Insert or refresh a device from what the driver learned; returns the row.
    pub fn upsert_device(
        conn: &Connection,
        facts: &DeviceFacts,
        now: &DateTime<Utc>,
    ) -> Result<DeviceRow, StoreError> {
        let existing = Store::device_by_node(conn, facts.node_id)?;
        let now_s = ts(now);
        match existing {
            Some(d) => {
                conn.exec(
                    // Code lengths are kept: Z-Wave locks do not report them, so what the
                    // row holds came from the lock's refusals or from a user's report.
                    "UPDATE devices SET info_json = COALESCE(?2, info_json), \
                     slot_count = CASE WHEN ?3 > 0 THEN ?3 ELSE slot_count END, \
                     code_characters = ?4, \
                     battery_level = COALESCE(?5, battery_level), locked = COALESCE(?6, locked), \
                     updated_at = ?7 WHERE device_id = ?1",
                    params![
                        d.device_id.to_string(),
                        facts.interview_cache,
                        facts.slot_count,
                        facts.code_characters,
                        facts.battery_level,
                        facts.locked,
                        now_s
                    ],
                )?;
            }
            None => {
                conn.exec(
                    "INSERT INTO devices (device_id, node_id, name, info_json, slot_count, min_code_length, \
                     max_code_length, code_characters, battery_level, locked, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
                    params![
                        Uuid::new_v4().to_string(),
                        facts.node_id,
                        facts
                            .name
                            .clone()
                            .unwrap_or_else(|| format!("Lock {}", facts.node_id)),
                        facts.interview_cache,
                        facts.slot_count,
                        facts.min_code_length,
                        facts.max_code_length,
                        facts.code_characters,
                        facts.battery_level,
                        facts.locked,
                        now_s
                    ],
                )?;
            }
        }
        let f = &facts.facts;
        conn.exec(
            "UPDATE devices SET manufacturer_id = ?2, product_type = ?3, product_id = ?4, \
             user_code_version = ?5, supports_checksum = ?6, supports_bulk_reports = ?7, \
             supports_schedule = ?8, notifications = ?9, security_class = ?10, \
             security_failure = ?11 WHERE node_id = ?1",
            params![
                facts.node_id,
                f.manufacturer_id,
                f.product_type,
                f.product_id,
                f.user_code_version,
                f.supports_checksum,
                f.supports_bulk_reports,
                f.supports_schedule,
                f.notifications.as_str(),
                f.security_class.map(class_name),
                f.security_failure.map(SecurityProblem::as_str),
            ],
        )?;
        Store::device_by_node(conn, facts.node_id)?.ok_or(StoreError::Corrupt {
            what: "devices",
            value: format!("node {} vanished", facts.node_id),
        })
    }

    /// Forget a device that left the network; its codes and slots go with it.
    pub fn delete_device(conn: &Connection, id: &Uuid) -> Result<bool, StoreError> {
        Ok(conn.exec("DELETE FROM devices WHERE device_id = ?1", [id.to_string()])? > 0)
    }

    pub fn device(conn: &Connection, id: &Uuid) -> Result<Option<DeviceRow>, StoreError> {
        conn.one(
            &format!("SELECT {COLUMNS} FROM devices WHERE device_id = ?1"),
            [id.to_string()],
            from_row,
        )
        .optional()?
        .transpose()
    }

    pub fn device_by_node(
        conn: &Connection,
        node_id: u16,
    ) -> Result<Option<DeviceRow>, StoreError> {
        conn.one(
            &format!("SELECT {COLUMNS} FROM devices WHERE node_id = ?1"),
            [node_id],
            from_row,
        )
        .optional()?
        .transpose()
    }

    pub fn devices(conn: &Connection) -> Result<Vec<DeviceRow>, StoreError> {
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM devices ORDER BY node_id"))?;
        let rows = stmt.query_map([], from_row)?;
        rows.map(|r| r?).collect()
    }

    pub fn set_device_online(
        conn: &Connection,
        id: &Uuid,
        online: bool,
        now: &DateTime<Utc>,
    ) -> Result<(), StoreError> {
        conn.exec(
            "UPDATE devices SET online = ?2, updated_at = ?3 WHERE device_id = ?1",
            params![id.to_string(), online, ts(now)],
        )?;
        Ok(())
    }

    pub fn touch_device(
        conn: &Connection,
        id: &Uuid,
        now: &DateTime<Utc>,
    ) -> Result<(), StoreError> {
        conn.exec(
            "UPDATE devices SET last_contact_at = ?2, online = 1 WHERE device_id = ?1",
            params![id.to_string(), ts(now)],
        )?;
        Ok(())
    }

    pub fn set_device_state(
        conn: &Connection,
        id: &Uuid,
        battery_level: Option<u8>,
        locked: Option<bool>,
    ) -> Result<(), StoreError> {
        conn.exec(
            "UPDATE devices SET battery_level = COALESCE(?2, battery_level), locked = COALESCE(?3, locked) \
             WHERE device_id = ?1",
            params![id.to_string(), battery_level, locked],
        )?;
        Ok(())
    }

    /// Record how many codes the lock holds at most (None: as many as its slots).
    pub fn set_code_capacity(
        conn: &Connection,
        id: &Uuid,
        capacity: Option<u16>,
    ) -> Result<(), StoreError> {
        conn.exec(
            "UPDATE devices SET code_capacity = ?2 WHERE device_id = ?1",
            params![id.to_string(), capacity],
        )?;
        Ok(())
    }

    /// Record the code lengths a lock takes (as a user reported them): `min..=max` but the
    /// `refused` ones.
    pub fn set_code_lengths(
        conn: &Connection,
        id: &Uuid,
        min: u8,
        max: u8,
        refused: &[u8],
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(refused).expect("a list of numbers");
        conn.exec(
            "UPDATE devices SET min_code_length = ?2, max_code_length = ?3, refused_code_lengths = ?4 \
             WHERE device_id = ?1",
            params![id.to_string(), min, max, json],
        )?;
        Ok(())
    }

    /// Record a PIN length the lock refuses.
    pub fn add_refused_code_length(
        conn: &Connection,
        id: &Uuid,
        length: u8,
    ) -> Result<(), StoreError> {
        if let Some(d) = Store::device(conn, id)? {
            let mut v = d.refused_code_lengths;
            if !v.contains(&length) {
                v.push(length);
                v.sort_unstable();
                let json = serde_json::to_string(&v).expect("a list of numbers");
                conn.exec(
                    "UPDATE devices SET refused_code_lengths = ?2 WHERE device_id = ?1",
                    params![id.to_string(), json],
                )?;
            }
        }
        Ok(())
    }

    pub fn set_device_settings(
        conn: &Connection,
        id: &Uuid,
        name: Option<&str>,
        reserved_slots: Option<&[u16]>,
        backup_pool_size: Option<u8>,
    ) -> Result<(), StoreError> {
        if let Some(n) = name {
            conn.exec(
                "UPDATE devices SET name = ?2 WHERE device_id = ?1",
                params![id.to_string(), n],
            )?;
        }
        if let Some(r) = reserved_slots {
            let json = serde_json::to_string(r).expect("a list of numbers");
            conn.exec(
                "UPDATE devices SET reserved_slots = ?2 WHERE device_id = ?1",
                params![id.to_string(), json],
            )?;
        }
        if let Some(b) = backup_pool_size {
            conn.exec(
                "UPDATE devices SET backup_pool_size = ?2 WHERE device_id = ?1",
                params![id.to_string(), b],
            )?;
        }
        Ok(())
    }
}
