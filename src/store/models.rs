//! Lock models: what every lock of one model can do, learnt by the first interview of such a
//! lock and read by the next ones, so that they skip the questions whose answers do not
//! change from one lock of a model to another (command class versions, User Code
//! capabilities, how it notifies). Keyed by the model's manufacturer id, product type and
//! product id, its firmware version when known, and the command classes it lists (a firmware
//! that changes what the lock can do usually changes those too).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{parse_ts, ts, Notifications, Store, StoreError};

/// Which model a row is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelKeyRow {
    pub manufacturer_id: u16,
    pub product_type: u16,
    pub product_id: u16,
    /// The firmware version ("1.4"), when the interview learnt it.
    pub firmware: Option<String>,
    /// The command classes the lock lists, in any order (stored sorted, without repeats).
    pub command_classes: Vec<u8>,
}

impl ModelKeyRow {
    fn classes_text(&self) -> String {
        let mut c = self.command_classes.clone();
        c.sort_unstable();
        c.dedup();
        c.iter()
            .map(|cc| format!("{cc:02x}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What one lock model can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRow {
    pub key: ModelKeyRow,
    pub user_code_version: u8,
    pub slots: u16,
    pub supports_checksum: bool,
    pub supports_bulk_reports: bool,
    pub code_characters: String,
    pub supports_admin_code: bool,
    pub notifications: Notifications,
    /// Command class versions the interview asked for (class id to version).
    pub versions: BTreeMap<u8, u8>,
    pub learnt_at: DateTime<Utc>,
}

fn parse_classes(s: &str) -> Result<Vec<u8>, StoreError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|h| {
            u8::from_str_radix(h, 16).map_err(|_| StoreError::Corrupt {
                what: "lock_models.command_classes",
                value: s.to_string(),
            })
        })
        .collect()
}

fn parse_versions(s: &str) -> Result<BTreeMap<u8, u8>, StoreError> {
    serde_json::from_str::<BTreeMap<u8, u8>>(s).map_err(|_| StoreError::Corrupt {
        what: "lock_models.versions",
        value: s.to_string(),
    })
}

fn narrow<T: TryFrom<i64>>(what: &'static str, v: i64) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| StoreError::Corrupt {
        what,
        value: v.to_string(),
    })
}

impl Store {
    /// What the model `key` can do, if a lock of it was interviewed before.
    pub fn lock_model(
        conn: &Connection,
        key: &ModelKeyRow,
    ) -> Result<Option<ModelRow>, StoreError> {
        type Raw = (i64, i64, bool, bool, String, bool, String, String, String);
        let raw: Option<Raw> = conn
            .query_row(
                "SELECT user_code_version, slots, supports_checksum, supports_bulk_reports, \
                 code_characters, supports_admin_code, notifications, versions, learnt_at \
                 FROM lock_models WHERE manufacturer_id = ?1 AND product_type = ?2 \
                 AND product_id = ?3 AND firmware = ?4 AND command_classes = ?5",
                params![
                    key.manufacturer_id,
                    key.product_type,
                    key.product_id,
                    key.firmware.as_deref().unwrap_or(""),
                    key.classes_text()
                ],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                },
            )
            .optional()?;
        let Some((version, slots, checksum, bulk, characters, admin, notif, versions, at)) = raw
        else {
            return Ok(None);
        };
        let mut key = key.clone();
        key.command_classes = parse_classes(&key.classes_text())?;
        Ok(Some(ModelRow {
            key,
            user_code_version: narrow("lock_models.user_code_version", version)?,
            slots: narrow("lock_models.slots", slots)?,
            supports_checksum: checksum,
            supports_bulk_reports: bulk,
            code_characters: characters,
            supports_admin_code: admin,
            notifications: Notifications::parse(&notif)?,
            versions: parse_versions(&versions)?,
            learnt_at: parse_ts("lock_models.learnt_at", &at)?,
        }))
    }

    /// Record what a model can do (replacing what an earlier interview said of it).
    pub fn put_lock_model(conn: &Connection, row: &ModelRow) -> Result<(), StoreError> {
        let versions = serde_json::to_string(&row.versions).unwrap_or_else(|_| "{}".into());
        conn.execute(
            "INSERT INTO lock_models (manufacturer_id, product_type, product_id, firmware, \
             command_classes, user_code_version, slots, supports_checksum, supports_bulk_reports, \
             code_characters, supports_admin_code, notifications, versions, learnt_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (manufacturer_id, product_type, product_id, firmware, command_classes) \
             DO UPDATE SET user_code_version = ?6, slots = ?7, supports_checksum = ?8, \
             supports_bulk_reports = ?9, code_characters = ?10, supports_admin_code = ?11, \
             notifications = ?12, versions = ?13, learnt_at = ?14",
            params![
                row.key.manufacturer_id,
                row.key.product_type,
                row.key.product_id,
                row.key.firmware.as_deref().unwrap_or(""),
                row.key.classes_text(),
                row.user_code_version,
                row.slots,
                row.supports_checksum,
                row.supports_bulk_reports,
                row.code_characters,
                row.supports_admin_code,
                row.notifications.as_str(),
                versions,
                ts(&row.learnt_at),
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key() -> ModelKeyRow {
        ModelKeyRow {
            manufacturer_id: 0x0129,
            product_type: 0x8002,
            product_id: 0x0600,
            firmware: None,
            command_classes: vec![0x63, 0x5E, 0x86, 0x72, 0x63],
        }
    }

    fn row() -> ModelRow {
        ModelRow {
            key: key(),
            user_code_version: 2,
            slots: 250,
            supports_checksum: true,
            supports_bulk_reports: false,
            code_characters: "0123456789".into(),
            supports_admin_code: true,
            notifications: Notifications::AccessControl,
            versions: BTreeMap::from([(0x63, 2), (0x71, 8)]),
            learnt_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
        }
    }

    #[test]
    fn a_model_is_found_by_its_ids_firmware_and_classes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("zwlock.db")).unwrap();
        assert_eq!(Store::lock_model(store.conn(), &key()).unwrap(), None);
        Store::put_lock_model(store.conn(), &row()).unwrap();
        let got = Store::lock_model(store.conn(), &key()).unwrap().unwrap();
        assert_eq!(got.slots, 250);
        assert_eq!(got.versions, row().versions);
        assert_eq!(got.notifications, Notifications::AccessControl);
        assert_eq!(got.key.command_classes, vec![0x5E, 0x63, 0x72, 0x86]);
        // The classes in another order are the same model.
        let mut k = key();
        k.command_classes.reverse();
        assert!(Store::lock_model(store.conn(), &k).unwrap().is_some());
        // Another firmware, another class list, another product: not this model.
        for k in [
            ModelKeyRow {
                firmware: Some("1.4".into()),
                ..key()
            },
            ModelKeyRow {
                command_classes: vec![0x63, 0x5E],
                ..key()
            },
            ModelKeyRow {
                product_id: 0x0601,
                ..key()
            },
        ] {
            assert_eq!(Store::lock_model(store.conn(), &k).unwrap(), None, "{k:?}");
        }
        // Learnt again: replaced, not added.
        let mut r = row();
        r.slots = 30;
        Store::put_lock_model(store.conn(), &r).unwrap();
        let got = Store::lock_model(store.conn(), &key()).unwrap().unwrap();
        assert_eq!(got.slots, 30);
        let n: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM lock_models", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_bad_row_is_an_error_naming_its_column() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("zwlock.db")).unwrap();
        Store::put_lock_model(store.conn(), &row()).unwrap();
        store
            .conn()
            .execute("UPDATE lock_models SET versions = 'not json'", [])
            .unwrap();
        let e = Store::lock_model(store.conn(), &key()).unwrap_err();
        assert!(e.to_string().contains("lock_models.versions"), "{e}");
    }
}
