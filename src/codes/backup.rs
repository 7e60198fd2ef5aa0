//! The backup code pool: spare codes kept programmed on a lock, so that a code that cannot be
//! set in time can be replaced at once by one that already works.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::ctx::Ctx;
use super::engine::EngineError;
use super::model::AccessCode;
use super::validate;
use crate::store::{CodeRow, CodeStatus, Desired, DeviceRow, StoreError, Tx};

/// Spare codes kept on a lock whose pool is enabled.
pub const DEFAULT_POOL_SIZE: u8 = 2;

/// Pool codes waiting to be pulled.
fn spares(tx: &Tx<'_>, device: &Uuid) -> Result<Vec<CodeRow>, StoreError> {
    Ok(tx
        .device_codes(device)?
        .into_iter()
        .filter(|c| {
            c.is_backup && c.pulled_backup_access_code_id.is_none() && c.desired == Desired::Active
        })
        .collect())
}

/// Whether a backup that already works on the lock can be pulled.
pub(super) fn available(tx: &Tx<'_>, device: &Uuid) -> Result<bool, StoreError> {
    Ok(spares(tx, device)?
        .iter()
        .any(|c| c.status == CodeStatus::Set))
}

/// Turn the pool on for a lock (once; later calls keep the size).
pub(super) fn enable(tx: &Tx<'_>, device: &DeviceRow) -> Result<(), StoreError> {
    if device.backup_pool_size == 0 {
        tx.set_device_settings(&device.device_id, None, None, Some(DEFAULT_POOL_SIZE))?;
    }
    Ok(())
}

/// Create spare codes until the pool is full again. Returns how many were added.
pub(super) fn refill(
    tx: &Tx<'_>,
    device: &DeviceRow,
    now: &DateTime<Utc>,
) -> Result<usize, StoreError> {
    if device.backup_pool_size == 0 {
        return Ok(0);
    }
    let have = spares(tx, &device.device_id)?.len();
    let want = usize::from(device.backup_pool_size);
    let mut taken: BTreeSet<String> = tx
        .device_codes(&device.device_id)?
        .into_iter()
        .map(|c| c.code)
        .collect();
    taken.extend(
        tx.slots(&device.device_id)?
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
        tx.put_code(&row)?;
        added += 1;
    }
    Ok(added)
}

/// Pull a backup code for `access_code_id`: a spare that already works on the lock takes the
/// original's name and window. Pulling again returns the same backup. Returns (original,
/// backup).
pub(super) fn pull(
    ctx: &Ctx,
    access_code_id: &Uuid,
) -> Result<(AccessCode, AccessCode), EngineError> {
    let now = ctx.now();
    let (original, backup, events) = ctx.repo.write(|tx| {
        let mut original = tx
            .code(access_code_id)?
            .filter(|c| !c.is_backup && c.desired == Desired::Active)
            .ok_or_else(|| EngineError::NotFound {
                what: "access code",
                id: access_code_id.to_string(),
            })?;
        let device = tx
            .device(&original.device_id)?
            .ok_or_else(|| EngineError::NotFound {
                what: "device",
                id: original.device_id.to_string(),
            })?;
        if device.backup_pool_size == 0 {
            return Err(EngineError::Unsupported("the lock has no backup code pool (create a code with use_backup_access_code_pool: true)".into()));
        }
        if let Some(b) = original.pulled_backup_access_code_id {
            let backup = tx.code(&b)?.ok_or_else(|| EngineError::NotFound {
                what: "access code",
                id: b.to_string(),
            })?;
            return Ok((original, backup, Vec::new()));
        }
        let mut backup = spares(tx, &device.device_id)?
            .into_iter()
            .find(|c| c.status == CodeStatus::Set)
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
        tx.put_code(&backup)?;
        tx.put_code(&original)?;
        let ev = tx.add_event(
            "access_code.backup_access_code_pulled",
            Some(&original.device_id),
            Some(&original.access_code_id),
            &now,
            json!({ "backup_access_code_id": backup.access_code_id }),
        )?;
        Ok((original, backup, vec![ev]))
    })?;
    ctx.publish(events);
    ctx.wake(original.device_id);
    Ok((
        super::queries::get(ctx, &original.access_code_id)?,
        super::queries::get(ctx, &backup.access_code_id)?,
    ))
}
