//! The operations the engine task starts on a lock: short sequences of lock-port calls, each
//! call bounded by the operation timeout, whose results come back to the task to be
//! committed. No store access here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use uuid::Uuid;

use super::apply::{Attempt, Failure};
use super::planner::SlotAction;
use super::watch::Read;
use crate::lock::{
    LockCaps, LockPort, Outcome, Page, PortError, SetCode, SlotReading, Window, Written,
};
use crate::store::DeviceRow;

/// What was started on a lock.
pub(crate) enum Op {
    Write { action: SlotAction },
    Watch(Read),
    Bolt { attempt: Uuid, locked: bool },
}

/// What came of it.
pub(crate) enum OpResult {
    Write {
        attempt: Attempt,
        /// A schedule the slot carried was switched off (sets: before, clears: after).
        schedule_cleared: bool,
        /// A refused new PIN: the old one it was to replace was cleared from the slot.
        old_cleared: bool,
    },
    Probe(Result<SlotReading, Failure>),
    Slots {
        readings: Vec<SlotReading>,
        unread: Vec<u16>,
        error: Option<Failure>,
    },
    Page(Result<Page, Failure>),
    Checksum(Result<Option<u16>, Failure>),
    Bolt(Attempt),
}

pub(crate) struct Done {
    pub device: Uuid,
    pub op: Op,
    pub result: OpResult,
}

pub(crate) fn caps(d: &DeviceRow) -> LockCaps {
    LockCaps {
        node: d.node_id,
        slots: d.slot_count,
        user_code_version: d.facts.user_code_version,
        bulk_reports: d.facts.supports_bulk_reports,
        checksum: d.facts.supports_checksum,
        schedule: d.facts.supports_schedule,
    }
}

pub(crate) fn full_read_key(device: &Uuid) -> String {
    format!("full_read_done:{device}")
}

pub(crate) async fn timed<T>(
    limit: Duration,
    fut: BoxFuture<'_, Result<T, PortError>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(Failure::Port),
        Err(_) => Err(Failure::TimedOut(limit)),
    }
}

pub(crate) async fn attempt(limit: Duration, fut: BoxFuture<'_, Outcome<Written>>) -> Attempt {
    match timed(limit, fut).await {
        Ok(Ok(w)) => Attempt::Done(w),
        Ok(Err(r)) => Attempt::Refused(r),
        Err(f) => Attempt::Failed(f),
    }
}

/// Carry out a slot action.
pub(crate) async fn write(
    port: &dyn LockPort,
    lock: &LockCaps,
    action: &SlotAction,
    limit: Duration,
    now: DateTime<Utc>,
) -> OpResult {
    match action {
        SlotAction::Set {
            slot,
            pin,
            native,
            clear_schedule,
            replaces,
            ..
        } => {
            let req = SetCode {
                slot: *slot,
                pin,
                schedule: native.map(|(s, e)| Window {
                    starts_at: s,
                    ends_at: e,
                }),
                clear_schedule: *clear_schedule,
                now,
            };
            let attempt = attempt(limit, port.set_code(lock, req)).await;
            // A refused new PIN must not leave the old one working.
            let old_cleared = matches!(attempt, Attempt::Refused(_))
                && *replaces
                && matches!(
                    self::attempt(limit, port.clear_slot(lock, *slot)).await,
                    Attempt::Done(_)
                );
            let schedule_cleared = *clear_schedule && matches!(attempt, Attempt::Done(_));
            OpResult::Write {
                attempt,
                schedule_cleared,
                old_cleared,
            }
        }
        SlotAction::Clear {
            slot, unschedule, ..
        } => {
            let attempt = attempt(limit, port.clear_slot(lock, *slot)).await;
            // The code is off; its schedule goes too (when that fails, the slot stays
            // marked and the next code put there switches it off first).
            let schedule_cleared = *unschedule
                && matches!(attempt, Attempt::Done(_))
                && matches!(
                    self::attempt(limit, port.clear_schedule(lock, *slot)).await,
                    Attempt::Done(_)
                );
            OpResult::Write {
                attempt,
                schedule_cleared,
                old_cleared: false,
            }
        }
        SlotAction::Probe { slot, .. } => {
            OpResult::Probe(timed(limit, port.read_slot(lock, *slot)).await)
        }
    }
}

/// Carry out a watch read.
pub(crate) async fn read(
    port: &dyn LockPort,
    lock: &LockCaps,
    read: &Read,
    limit: Duration,
) -> OpResult {
    match read {
        Read::Slots(slots) => {
            let mut readings = Vec::new();
            let mut error = None;
            let mut unread = Vec::new();
            for (i, slot) in slots.iter().enumerate() {
                match timed(limit, port.read_slot(lock, *slot)).await {
                    Ok(r) => readings.push(r),
                    Err(e) => {
                        error = Some(e);
                        unread = slots[i..].to_vec();
                        break;
                    }
                }
            }
            OpResult::Slots {
                readings,
                unread,
                error,
            }
        }
        Read::Page(from) => OpResult::Page(timed(limit, port.read_page(lock, *from)).await),
        Read::Checksum => OpResult::Checksum(timed(limit, port.checksum(lock)).await),
    }
}
