//! The backup code pool: spare codes kept programmed on a lock, so that a code that cannot be
//! set in time can be replaced at once by one that already works.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::validate;
use crate::store::{CodeRow, CodeStatus, Desired, DeviceRow, StoreError, Tx};

/// Spare codes kept on a lock whose pool is enabled.
pub const DEFAULT_POOL_SIZE: u8 = 2;

/// Pool codes waiting to be pulled.
pub(super) fn spares(tx: &Tx<'_>, device: &Uuid) -> Result<Vec<CodeRow>, StoreError> {
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
    )
    .refusing(&device.refused_code_lengths);
    let mut added = 0;
    for _ in have..want {
        let Some(pin) = validate::generate_pin(
            rules.length_near(6).unwrap_or(rules.max_length),
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
