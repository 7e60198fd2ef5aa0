//! One reconciler per lock: declared state → commands to the driver → confirmed state.
//!
//! Each pass reads the lock's codes from the store and picks one thing to do: remove a code
//! that must go (deleted, ended, or not yet in its window), or program one that must be there.
//! The intent (`setting`, `removing`) is committed before the frame is sent; the outcome is
//! committed when the lock confirms it (Supervision) or a read-back shows it. Failures are
//! retried with backoff, with a delay warning and then a failure error as time passes; a lock
//! that does not answer backs off the whole lock, never the others.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::Notify;
use uuid::Uuid;

use super::engine::Engine;
use super::model::{error_code, status};
use super::schedule;
use super::write::{clear, probe, set};
use crate::store::{CodeRow, DeviceRow, IssueKind, SlotState, Store, StoreError};

/// What to do next on a lock.
#[derive(Debug)]
enum Step {
    Set {
        code: CodeRow,
        slot: u16,
        node: u16,
        /// With a year-day schedule the lock enforces.
        native: bool,
    },
    Clear {
        code: CodeRow,
        slot: u16,
        node: u16,
        then: After,
    },
    /// Read a slot zwlock has never seen before putting a code in it: it may hold a code
    /// programmed at the keypad.
    Probe { code: CodeRow, slot: u16, node: u16 },
    /// Nothing to do before this time (or until woken).
    Idle(Option<DateTime<Utc>>),
    /// The device is gone.
    Gone,
}

/// What becomes of a code once removed from the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum After {
    /// Deleted by the user, or its window ended: forget it.
    Forget,
    /// Not in its window yet: it waits, without a slot.
    Wait,
}

pub(super) async fn run(engine: Engine, device_id: Uuid, wake: Arc<Notify>) {
    let mut backoff_until: Option<tokio::time::Instant> = None;
    loop {
        if engine.is_stopping() {
            return;
        }
        if let Some(until) = backoff_until {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = wake.notified() => {}
            }
            backoff_until = None;
        }
        let step = match plan(&engine, &device_id) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%device_id, error = %e, "reconcile: store error");
                Step::Idle(Some(engine.now() + chrono::Duration::seconds(10)))
            }
        };
        let result = match step {
            Step::Gone => return,
            Step::Idle(until) => {
                // Nothing to set or remove: watch the lock for outside changes.
                let mut poll_due = None;
                if let Some(device) = idle_device(&engine, &device_id) {
                    match super::watch::next(&engine, &device) {
                        Ok((Some(read), _)) => {
                            match super::watch::run(&engine, &device, read).await {
                                Ok(Some(d)) => {
                                    backoff_until = Some(tokio::time::Instant::now() + d)
                                }
                                Ok(None) => {}
                                Err(e) => {
                                    tracing::error!(%device_id, error = %e, "watch: store error")
                                }
                            }
                            continue;
                        }
                        Ok((None, due)) => poll_due = due,
                        Err(e) => tracing::error!(%device_id, error = %e, "watch: store error"),
                    }
                }
                let tick = engine.inner.config.tick;
                let mut wait = until
                    .map(|t| (t - engine.now()).to_std().unwrap_or(Duration::ZERO))
                    .map_or(tick, |d| d.min(tick));
                if let Some(due) = poll_due {
                    wait = wait.min(due.saturating_duration_since(tokio::time::Instant::now()));
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.notified() => {}
                }
                continue;
            }
            Step::Set {
                code,
                slot,
                node,
                native,
            } => set(&engine, code, slot, node, native).await,
            Step::Clear {
                code,
                slot,
                node,
                then,
            } => clear(&engine, code, slot, node, then).await,
            Step::Probe { code, slot, node } => probe(&engine, code, slot, node).await,
        };
        match result {
            Ok(Some(d)) => backoff_until = Some(tokio::time::Instant::now() + d),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(%device_id, error = %e, "reconcile: store error");
                backoff_until = Some(tokio::time::Instant::now() + Duration::from_secs(10));
            }
        }
    }
}

/// The device, when the stick is up and the lock is known well enough to be watched.
fn idle_device(engine: &Engine, device_id: &Uuid) -> Option<DeviceRow> {
    if !engine.hub_connected() || engine.is_stopping() {
        return None;
    }
    engine
        .with_store(|s| Store::device(s.conn(), device_id))
        .ok()
        .flatten()
        .filter(|d| d.slot_count > 0)
}

/// Should a code be on the lock now? `None` when it cannot be known (unsynchronised clock).
fn in_window(code: &CodeRow, now: &DateTime<Utc>, synced: bool) -> Option<bool> {
    match (code.starts_at, code.ends_at) {
        (Some(s), Some(e)) => synced.then(|| s <= *now && *now < e),
        _ => Some(true),
    }
}

fn plan(engine: &Engine, device_id: &Uuid) -> Result<Step, StoreError> {
    let now = engine.now();
    let synced = engine.inner.clock.is_synchronized();
    let hub = engine.hub_connected();
    let config = engine.inner.config.clone();
    let mut events = Vec::new();
    let step = engine.with_store(|s| {
        let tx = s.conn_mut_tx()?;
        let Some(device) = Store::device(&tx, device_id)? else {
            return Ok(Step::Gone);
        };
        if super::backup::refill(&tx, &device, &now)? > 0 {
            tracing::info!(node = device.node_id, "backup code pool refilled");
        }
        let mut codes = Store::device_codes(&tx, device_id)?;
        let can_schedule = schedule::supported(&device);
        let mut next: Option<DateTime<Utc>> = None;
        let mut soonest = |t: DateTime<Utc>| next = Some(next.map_or(t, |n: DateTime<Utc>| n.min(t)));
        let mut removals = Vec::new();
        let mut sets = Vec::new();
        for code in codes.iter_mut() {
            let ended = synced && code.ends_at.is_some_and(|e| now >= e);
            // A one-time code that was used comes off the lock (its record stays).
            let used = code.is_one_time_use && code.used_at.is_some();
            // A code the lock schedules itself goes on ahead of its window.
            let native = schedule::wants_native(code, can_schedule, synced);
            let ahead = native && schedule::program_from(code).is_some_and(|t| t <= now);
            if let Some(t) = schedule::program_from(code).filter(|t| native && now < *t) {
                soonest(t);
            }
            let in_win = in_window(code, &now, synced) == Some(true);
            let wanted = code.desired == "active" && !ended && !used && (in_win || ahead);
            let unknown = code.desired == "active" && !ended && in_window(code, &now, synced).is_none();
            if let (Some(s), true) = (code.starts_at, synced) {
                if now < s {
                    soonest(s);
                }
            }
            if let (Some(e), true) = (code.ends_at, synced) {
                if now < e {
                    soonest(e);
                }
            }
            if unknown {
                continue; // never act on time-bound windows with an unset clock
            }
            let on_lock = code.programmed_code.is_some() || code.status == status::SETTING || code.status == status::REMOVING;
            if !wanted {
                if on_lock && code.slot.is_some() {
                    if let Some(t) = code.next_attempt_at.filter(|t| *t > now) {
                        soonest(t);
                        continue;
                    }
                    let then = if code.desired == "deleted" || ended { After::Forget } else { After::Wait };
                    removals.push((code.clone(), then));
                } else if code.desired == "deleted" || ended {
                    // Never reached the lock: nothing to remove.
                    code.deleted_at = Some(now);
                    code.slot = None;
                    code.updated_at = now;
                    Store::put_code(&tx, code)?;
                    if ended && code.desired != "deleted" {
                        events.push(Store::add_event(&tx, "access_code.deleted", Some(device_id), Some(&code.access_code_id), &now, json!({ "code": code.code, "reason": "ended" }))?);
                    }
                } else if code.slot.is_some() || code.status != status::UNSET {
                    code.slot = None;
                    code.status = status::UNSET.into();
                    code.updated_at = now;
                    Store::put_code(&tx, code)?;
                }
                continue;
            }
            if code.blocked {
                continue;
            }
            if code.programmed_code.as_deref() == Some(code.code.as_str()) && code.is_scheduled_on_device == native {
                if native && in_win && code.status != status::SET {
                    // The lock's own schedule opened the window: no radio needed.
                    code.status = status::SET.into();
                    code.updated_at = now;
                    Store::put_code(&tx, code)?;
                    events.push(Store::add_event(&tx, "access_code.set_on_device", Some(device_id), Some(&code.access_code_id), &now, json!({ "code": code.code, "scheduled_on_device": true }))?);
                    continue;
                }
                // A schedule left in the slot (native scheduling turned off) must go.
                let stale = !native && can_schedule && code.slot.map(|s| schedule::slot_scheduled(&tx, device_id, s)).transpose()?.unwrap_or(false);
                if native || (code.status == status::SET && !stale) {
                    continue;
                }
            }
            if let Some(t) = code.next_attempt_at.filter(|t| *t > now) {
                soonest(t);
                continue;
            }
            sets.push((code.clone(), native));
        }
        if !hub || device.slot_count == 0 {
            tx.commit()?;
            // Wait for the stick, or for the interview to tell the slot count.
            return Ok(Step::Idle(next));
        }
        let step = if let Some((code, then)) = removals.into_iter().next() {
            let slot = code.slot.expect("checked");
            Step::Clear { code, slot, node: device.node_id, then }
        } else if let Some((mut code, native)) = sets.into_iter().next() {
            if code.slot.is_none() {
                match free_slot(&tx, &device, &config.reserved_slots)? {
                    Some((slot, false)) => {
                        tx.commit()?;
                        return Ok(Step::Probe { code, slot, node: device.node_id });
                    }
                    Some((slot, true)) => {
                        code.slot = Some(slot);
                        Store::put_code(&tx, &code)?;
                        if Store::clear_issue(&tx, &code.access_code_id, IssueKind::Error, error_code::NO_SPACE_FOR_ACCESS_CODE_ON_DEVICE)? {
                            tracing::info!(access_code_id = %code.access_code_id, slot, "a slot freed up");
                        }
                    }
                    None => {
                        let msg = format!("all {} slots of the lock are in use; the code is placed as soon as one frees", device.slot_count);
                        Store::set_issue(&tx, &code.access_code_id, IssueKind::Error, error_code::NO_SPACE_FOR_ACCESS_CODE_ON_DEVICE, &msg, &now)?;
                        tx.commit()?;
                        return Ok(Step::Idle(next));
                    }
                }
            }
            let slot = code.slot.expect("assigned");
            // Schedule Entry Lock user ids are one byte.
            let native = native && slot <= u16::from(u8::MAX);
            Step::Set { code, slot, node: device.node_id, native }
        } else {
            Step::Idle(next)
        };
        tx.commit()?;
        Ok(step)
    })?;
    engine.publish(events);
    Ok(step)
}

/// The lowest slot no managed code holds, no unmanaged code occupies, and not reserved; and
/// whether its emptiness is known (the lock reported it) or still to be checked.
fn free_slot(
    conn: &rusqlite::Connection,
    device: &DeviceRow,
    reserved: &[u16],
) -> Result<Option<(u16, bool)>, StoreError> {
    let slots = Store::slots(conn, &device.device_id)?;
    let known: BTreeSet<u16> = slots.iter().map(|s| s.slot).collect();
    let taken: BTreeSet<u16> = Store::device_codes(conn, &device.device_id)?
        .iter()
        .filter_map(|c| c.slot)
        .chain(
            slots
                .iter()
                .filter(|s| s.state.holds_code() || s.state == SlotState::Unavailable)
                .map(|s| s.slot),
        )
        .chain(reserved.iter().copied())
        .chain(device.reserved_slots.iter().copied())
        .collect();
    Ok((1..=device.slot_count)
        .find(|s| !taken.contains(s))
        .map(|s| (s, known.contains(&s))))
}

impl Engine {
    /// One planning pass over a lock's codes, without acting on it: what its reconciler would
    /// do next ("set", "clear", "probe", "idle" or "gone"). For diagnostics and benchmarks.
    pub fn plan_once(&self, device_id: &Uuid) -> Result<&'static str, StoreError> {
        Ok(match plan(self, device_id)? {
            Step::Set { .. } => "set",
            Step::Clear { .. } => "clear",
            Step::Probe { .. } => "probe",
            Step::Idle(_) => "idle",
            Step::Gone => "gone",
        })
    }
}
