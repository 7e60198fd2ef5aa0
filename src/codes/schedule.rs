//! On-lock schedules, the engine's side: which codes the lock schedules itself, when they go on
//! the lock, and which slots carry a schedule zwlock put there. A time-bound code on a lock
//! with Schedule Entry Lock CC is programmed [`LEAD`] ahead of its window with a year-day
//! schedule, so the lock enforces the window even when the hub is down. A slot that carried a
//! schedule is marked in the store; before anything else goes into it, or when it is cleared,
//! the schedule is switched off, so a stale schedule never restricts the next code. (The
//! commands themselves are the lock port's: [`crate::lock::schedule`].)

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::store::{CodeRow, StoreError, Tx};

/// How long before its start a natively scheduled code is programmed.
pub const LEAD: Duration = Duration::hours(72);

/// Whether `code` is to be scheduled on a lock that `can` schedule.
pub fn wants_native(code: &CodeRow, can: bool, synced: bool) -> bool {
    can && synced
        && code.prefer_native_scheduling
        && code.starts_at.is_some()
        && code.ends_at.is_some()
        && code.slot.is_none_or(|s| s <= u16::from(u8::MAX))
}

/// When a natively scheduled code goes on the lock.
pub fn program_from(code: &CodeRow) -> Option<DateTime<Utc>> {
    code.starts_at.map(|s| s - LEAD)
}

fn key(device: &Uuid, slot: u16) -> String {
    format!("schedule:{device}:{slot}")
}

/// Whether a slot carries a schedule zwlock put there.
pub fn slot_scheduled(tx: &Tx<'_>, device: &Uuid, slot: u16) -> Result<bool, StoreError> {
    Ok(tx.state(&key(device, slot))?.is_some())
}

/// The slots of a device that carry a schedule zwlock put there.
pub fn scheduled_slots(
    tx: &Tx<'_>,
    device: &Uuid,
) -> Result<std::collections::BTreeSet<u16>, StoreError> {
    let prefix = format!("schedule:{device}:");
    Ok(tx
        .state_keys(&prefix)?
        .iter()
        .filter_map(|k| k[prefix.len()..].parse().ok())
        .collect())
}

/// Record that a slot carries a schedule (before the commands go out) or no longer does.
pub fn mark_slot(tx: &Tx<'_>, device: &Uuid, slot: u16, scheduled: bool) -> Result<(), StoreError> {
    if scheduled {
        tx.set_state(&key(device, slot), "year_day")
    } else {
        tx.delete_state(&key(device, slot))
    }
}
