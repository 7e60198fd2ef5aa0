//! The backup code pool: spare codes kept programmed on a lock, so that a code that cannot be
//! set in time can be replaced at once by one that already works.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::json;
use uuid::Uuid;

use super::engine::{Engine, EngineError};
use super::model::{status, AccessCode};
use super::validate;
use crate::store::{CodeRow, DeviceRow, Store, StoreError};

/// Spare codes kept on a lock whose pool is enabled.
pub const DEFAULT_POOL_SIZE: u8 = 2;

/// Pool codes waiting to be pulled.
fn spares(conn: &Connection, device: &Uuid) -> Result<Vec<CodeRow>, StoreError> {
    Ok(Store::device_codes(conn, device)?
        .into_iter()
        .filter(|c| {
            c.is_backup && c.pulled_backup_access_code_id.is_none() && c.desired == "active"
        })
        .collect())
}

/// Whether a backup that already works on the lock can be pulled.
pub(super) fn available(conn: &Connection, device: &Uuid) -> Result<bool, StoreError> {
    Ok(spares(conn, device)?
        .iter()
        .any(|c| c.status == status::SET))
}

/// Turn the pool on for a lock (once; later calls keep the size).
pub(super) fn enable(conn: &Connection, device: &DeviceRow) -> Result<(), StoreError> {
    if device.backup_pool_size == 0 {
        Store::set_device_settings(conn, &device.device_id, None, None, Some(DEFAULT_POOL_SIZE))?;
    }
    Ok(())
}

/// Create spare codes until the pool is full again. Returns how many were added.
pub(super) fn refill(
    conn: &Connection,
    device: &DeviceRow,
    now: &DateTime<Utc>,
) -> Result<usize, StoreError> {
    if device.backup_pool_size == 0 {
        return Ok(0);
    }
    let have = spares(conn, &device.device_id)?.len();
    let want = usize::from(device.backup_pool_size);
    let mut taken: BTreeSet<String> = Store::device_codes(conn, &device.device_id)?
        .into_iter()
        .map(|c| c.code)
        .collect();
    taken.extend(
        Store::slots(conn, &device.device_id)?
            .into_iter()
            .filter_map(|s| s.code),
    );
    let rules = validate::CodeRules::for_lock(
        device.min_code_length,
        device.max_code_length,
        &device.code_characters,
    );
    let mut added = 0;
    for _ in have..want {
        let Some(pin) = validate::generate_pin(
            rules.min_length.max(6).min(rules.max_length),
            &rules.characters,
            &taken,
        ) else {
            break;
        };
        taken.insert(pin.clone());
        let row = CodeRow {
            name: Some("backup code".into()),
            is_backup: true,
            prefer_native_scheduling: false,
            ..CodeRow::new(device.device_id, pin, *now)
        };
        Store::put_code(conn, &row)?;
        added += 1;
    }
    Ok(added)
}

impl Engine {
    /// Pull a backup code for `access_code_id`: a spare that already works on the lock takes
    /// the original's name and window. Pulling again returns the same backup.
    pub fn pull_backup(
        &self,
        access_code_id: &Uuid,
    ) -> Result<(AccessCode, AccessCode), EngineError> {
        let now = self.now();
        let (original, backup, events) = {
            let mut guard = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
            let tx = guard.conn_mut_tx()?;
            let mut original = Store::code(&tx, access_code_id)?
                .filter(|c| !c.is_backup && c.desired == "active")
                .ok_or_else(|| EngineError::NotFound {
                    what: "access code",
                    id: access_code_id.to_string(),
                })?;
            let device =
                Store::device(&tx, &original.device_id)?.ok_or_else(|| EngineError::NotFound {
                    what: "device",
                    id: original.device_id.to_string(),
                })?;
            if device.backup_pool_size == 0 {
                return Err(EngineError::Unsupported("the lock has no backup code pool (create a code with use_backup_access_code_pool: true)".into()));
            }
            if let Some(b) = original.pulled_backup_access_code_id {
                let backup = Store::code(&tx, &b)?.ok_or_else(|| EngineError::NotFound {
                    what: "access code",
                    id: b.to_string(),
                })?;
                tx.commit().map_err(StoreError::from)?;
                (original, backup, Vec::new())
            } else {
                let mut backup = spares(&tx, &device.device_id)?
                    .into_iter()
                    .find(|c| c.status == status::SET)
                    .ok_or_else(|| EngineError::Conflict {
                        kind: "empty_backup_access_code_pool",
                        message: "no backup code is ready on the lock yet".into(),
                        other_id: None,
                    })?;
                backup.pulled_backup_access_code_id = Some(original.access_code_id);
                backup.name = original.name.clone();
                backup.starts_at = original.starts_at;
                backup.ends_at = original.ends_at;
                backup.updated_at = now;
                original.pulled_backup_access_code_id = Some(backup.access_code_id);
                original.updated_at = now;
                Store::put_code(&tx, &backup)?;
                Store::put_code(&tx, &original)?;
                let ev = Store::add_event(
                    &tx,
                    "access_code.backup_access_code_pulled",
                    Some(&original.device_id),
                    Some(&original.access_code_id),
                    &now,
                    json!({ "backup_access_code_id": backup.access_code_id }),
                )?;
                tx.commit().map_err(StoreError::from)?;
                (original, backup, vec![ev])
            }
        };
        self.publish(events);
        self.wake(original.device_id);
        Ok((
            self.get(&original.access_code_id)?,
            self.get(&backup.access_code_id)?,
        ))
    }
}
