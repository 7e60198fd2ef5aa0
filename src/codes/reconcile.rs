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
use super::model::{error_code, status, warning_code};
use super::schedule;
use super::slot_commands::{clear_command, get_command, read_back, set_command};
use crate::cc::UserIdStatus;
use crate::driver::{DriverError, Priority, SetOutcome};
use crate::serialapi::NodeId;
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
enum After {
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

/// Read one slot and record what it holds, as the first step of setting `code` there.
async fn probe(
    engine: &Engine,
    code: CodeRow,
    slot: u16,
    node: u16,
) -> Result<Option<Duration>, StoreError> {
    if !mark(engine, &code, status::SETTING)? {
        return Ok(None);
    }
    let device_id = code.device_id;
    let device_id = &device_id;
    match engine
        .inner
        .driver
        .get(NodeId(node), get_command(slot), Priority::Normal)
        .await
    {
        Ok(report) => {
            let now = engine.now();
            let state = match read_back(&report, slot) {
                Some((UserIdStatus::NotAvailable, _, _)) => SlotState::Unavailable,
                Some((st, _, hidden)) if st.is_occupied() => {
                    if hidden {
                        SlotState::Hidden
                    } else {
                        SlotState::Occupied
                    }
                }
                Some(_) => SlotState::Empty,
                None => return Ok(Some(Duration::from_secs(5))),
            };
            let pin = read_back(&report, slot).and_then(|(_, p, _)| p);
            engine.with_store(|s| {
                Store::observe_slot(s.conn(), device_id, slot, state, pin.as_deref(), &now)
            })?;
            Ok(None)
        }
        Err(e) => {
            finish(
                engine,
                code,
                slot,
                from_driver_error(e),
                Write::Set { native: false },
            )
            .await
        }
    }
}

/// How an attempt on the lock ended.
enum Outcome {
    Done,
    /// The lock refused (Supervision FAIL): do not retry blindly.
    Refused(String),
    /// Try again later; `lock_backoff` when the whole lock should wait.
    Failed {
        reason: String,
        lock_backoff: Option<Duration>,
    },
}

fn from_driver_error(e: DriverError) -> Outcome {
    let lock_backoff = match &e {
        DriverError::NodeUnreachable { retry_after, .. } => Some(*retry_after),
        DriverError::Disconnected { .. }
        | DriverError::QueueFull { .. }
        | DriverError::StickBusy => Some(Duration::from_secs(5)),
        _ => None,
    };
    Outcome::Failed {
        reason: e.to_string(),
        lock_backoff,
    }
}

async fn set(
    engine: &Engine,
    code: CodeRow,
    slot: u16,
    node: u16,
    native: bool,
) -> Result<Option<Duration>, StoreError> {
    let now = engine.now();
    let stale_schedule =
        engine.with_store(|s| schedule::slot_scheduled(s.conn(), &code.device_id, slot))?;
    // The intent is durable before the frame goes out.
    if !mark(engine, &code, status::SETTING)? {
        return Ok(None);
    }
    engine.with_store(|s| {
        if native {
            schedule::mark_slot(s.conn(), &code.device_id, slot, true)?;
        }
        Ok(())
    })?;
    let driver = engine.inner.driver.clone();
    let node_id = NodeId(node);
    tracing::debug!(access_code_id = %code.access_code_id, node, slot, native, "setting code");
    // The schedule first, so the code never works outside its window; or, for a code
    // without one, away with a schedule an earlier code left in the slot.
    let user_id = u8::try_from(slot).unwrap_or(0);
    let prelude = match (native, code.starts_at, code.ends_at) {
        (true, Some(s), Some(e)) => schedule::program_commands(user_id, &s, &e, &now),
        _ if stale_schedule && user_id > 0 => schedule::unprogram_commands(user_id),
        _ => Vec::new(),
    };
    for cmd in prelude {
        let refused = match driver.set(node_id, cmd, Priority::Normal).await {
            Ok(SetOutcome::Refused(s)) => Some(Outcome::Refused(format!(
                "the lock refused the schedule (Supervision {})",
                s.name()
            ))),
            Ok(_) => None,
            Err(e) => Some(from_driver_error(e)),
        };
        if let Some(outcome) = refused {
            return finish(engine, code, slot, outcome, Write::Set { native }).await;
        }
    }
    if stale_schedule && !native {
        engine.with_store(|s| schedule::mark_slot(s.conn(), &code.device_id, slot, false))?;
    }
    let outcome = match driver
        .set(node_id, set_command(slot, &code.code), Priority::Normal)
        .await
    {
        Ok(SetOutcome::Confirmed) => Outcome::Done,
        Ok(SetOutcome::Refused(s)) => Outcome::Refused(format!(
            "the lock refused the code (Supervision {})",
            s.name()
        )),
        Ok(SetOutcome::Transmitted) => match driver
            .get(node_id, get_command(slot), Priority::Normal)
            .await
        {
            Ok(report) => match read_back(&report, slot) {
                Some((st, pin, hidden))
                    if st.is_occupied()
                        && (pin.as_deref() == Some(code.code.as_str()) || hidden) =>
                {
                    Outcome::Done
                }
                Some((st, _, _)) if st.is_occupied() => Outcome::Failed {
                    reason: "the lock reads back a different code".into(),
                    lock_backoff: None,
                },
                Some(_) => Outcome::Failed {
                    reason: "the lock did not keep the code".into(),
                    lock_backoff: None,
                },
                None => Outcome::Failed {
                    reason: "unexpected read-back".into(),
                    lock_backoff: None,
                },
            },
            Err(e) => from_driver_error(e),
        },
        Err(e) => from_driver_error(e),
    };
    finish(engine, code, slot, outcome, Write::Set { native }).await
}

async fn clear(
    engine: &Engine,
    code: CodeRow,
    slot: u16,
    node: u16,
    then: After,
) -> Result<Option<Duration>, StoreError> {
    if !mark(engine, &code, status::REMOVING)? {
        return Ok(None);
    }
    let driver = engine.inner.driver.clone();
    let node_id = NodeId(node);
    tracing::debug!(access_code_id = %code.access_code_id, node, slot, "removing code");
    let outcome = match driver
        .set(node_id, clear_command(slot), Priority::Normal)
        .await
    {
        Ok(SetOutcome::Confirmed) => Outcome::Done,
        Ok(SetOutcome::Refused(s)) => Outcome::Refused(format!(
            "the lock refused to clear the slot (Supervision {})",
            s.name()
        )),
        Ok(SetOutcome::Transmitted) => match driver
            .get(node_id, get_command(slot), Priority::Normal)
            .await
        {
            Ok(report) => match read_back(&report, slot) {
                Some((st, _, _)) if !st.is_occupied() => Outcome::Done,
                Some(_) => Outcome::Failed {
                    reason: "the slot still holds a code".into(),
                    lock_backoff: None,
                },
                None => Outcome::Failed {
                    reason: "unexpected read-back".into(),
                    lock_backoff: None,
                },
            },
            Err(e) => from_driver_error(e),
        },
        Err(e) => from_driver_error(e),
    };
    let r = finish(engine, code.clone(), slot, outcome, Write::Clear).await?;
    if r.is_none() {
        // The code is off; a schedule it had goes too (if this fails, the next code put in
        // the slot clears it first).
        unschedule(engine, &code.device_id, slot, node).await?;
        // Removed: forget or wait, as planned (unless the code changed meanwhile).
        let now = engine.now();
        engine.with_store(|s| {
            let Some(mut c) = Store::code(s.conn(), &code.access_code_id)? else {
                return Ok(());
            };
            if c.programmed_code.is_some() || c.status != status::UNSET {
                return Ok(());
            }
            c.slot = None;
            if then == After::Forget {
                c.deleted_at = Some(now);
            }
            c.updated_at = now;
            Store::put_code(s.conn(), &c)
        })?;
    }
    Ok(r)
}

/// Switch off and erase a schedule zwlock left in an emptied slot.
async fn unschedule(
    engine: &Engine,
    device: &Uuid,
    slot: u16,
    node: u16,
) -> Result<(), StoreError> {
    let Ok(user_id) = u8::try_from(slot) else {
        return Ok(());
    };
    if !engine.with_store(|s| schedule::slot_scheduled(s.conn(), device, slot))? {
        return Ok(());
    }
    for cmd in schedule::unprogram_commands(user_id) {
        match engine
            .inner
            .driver
            .set(NodeId(node), cmd, Priority::Normal)
            .await
        {
            Ok(SetOutcome::Confirmed | SetOutcome::Transmitted) => {}
            Ok(SetOutcome::Refused(_)) | Err(_) => return Ok(()),
        }
    }
    engine.with_store(|s| schedule::mark_slot(s.conn(), device, slot, false))
}

/// Which write an attempt was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Put the code on the lock; `native` with an on-lock schedule.
    Set {
        native: bool,
    },
    Clear,
}

/// Record that work on `code` began (`status`: setting or removing), changing only the
/// progress fields of the row as it is now, so that an update that came in since the plan
/// (a new name, a new window) is not overwritten. False when the code is gone.
fn mark(engine: &Engine, code: &CodeRow, phase: &str) -> Result<bool, StoreError> {
    let now = engine.now();
    engine.with_store(|s| {
        let tx = s.conn_mut_tx()?;
        let Some(mut current) = Store::code(&tx, &code.access_code_id)? else {
            return Ok(false);
        };
        if current.status != phase {
            if phase == status::REMOVING {
                current.attempts = 0;
                current.pending_since = Some(now);
            }
            current.status = phase.into();
        }
        current.pending_since.get_or_insert(now);
        current.updated_at = now;
        Store::put_code(&tx, &current)?;
        tx.commit()?;
        Ok(true)
    })
}

/// Commit the outcome of a set (or a clear) and its events, warnings and errors.
async fn finish(
    engine: &Engine,
    code: CodeRow,
    slot: u16,
    outcome: Outcome,
    write: Write,
) -> Result<Option<Duration>, StoreError> {
    let setting = write != Write::Clear;
    let native = write == Write::Set { native: true };
    let now = engine.now();
    let config = engine.inner.config.clone();
    let id = code.access_code_id;
    let device = code.device_id;
    let (warn_code, err_code, delay_event, fail_event, done_event) = if setting {
        (
            warning_code::DELAY_IN_SETTING_ON_DEVICE,
            error_code::FAILED_TO_SET_ON_DEVICE,
            "access_code.delay_in_setting_on_device",
            "access_code.failed_to_set_on_device",
            "access_code.set_on_device",
        )
    } else {
        (
            warning_code::DELAY_IN_REMOVING_FROM_DEVICE,
            error_code::FAILED_TO_REMOVE_FROM_DEVICE,
            "access_code.delay_in_removing_from_device",
            "access_code.failed_to_remove_from_device",
            "access_code.removed_from_device",
        )
    };
    let mut lock_backoff = None;
    let events = engine.with_store(|s| {
        let tx = s.conn_mut_tx()?;
        // The code may have changed meanwhile (updated, deleted): re-read it.
        let Some(mut c) = Store::code(&tx, &id)? else {
            return Ok(Vec::new());
        };
        let mut events = Vec::new();
        let mut event = |tx: &rusqlite::Transaction<'_>, t: &str, payload: serde_json::Value| -> Result<(), StoreError> {
            events.push(Store::add_event(tx, t, Some(&device), Some(&id), &now, payload)?);
            Ok(())
        };
        match outcome {
            Outcome::Done => {
                c.attempts = 0;
                c.next_attempt_at = None;
                c.pending_since = None;
                if setting {
                    c.programmed_code = Some(code.code.clone());
                    c.is_scheduled_on_device = native;
                    // Scheduled ahead of its window, the code is on the lock but not yet usable.
                    let waiting = native && c.starts_at.is_some_and(|s| now < s);
                    c.status = if c.programmed_code.as_deref() == Some(c.code.as_str()) && !waiting { status::SET } else { status::UNSET }.into();
                    Store::observe_slot(&tx, &device, slot, SlotState::Occupied, Some(&code.code), &now)?;
                    if native {
                        event(&tx, "access_code.scheduled_on_device", json!({ "code": code.code, "starts_at": c.starts_at.as_ref().map(super::model::rfc3339), "ends_at": c.ends_at.as_ref().map(super::model::rfc3339) }))?;
                    }
                    if !waiting {
                        event(&tx, done_event, json!({ "code": code.code }))?;
                    }
                } else {
                    c.is_scheduled_on_device = false;
                    c.programmed_code = None;
                    c.status = status::UNSET.into();
                    Store::observe_slot(&tx, &device, slot, SlotState::Empty, None, &now)?;
                    event(&tx, done_event, json!({}))?;
                }
                Store::clear_issue(&tx, &id, IssueKind::Warning, warn_code)?;
                Store::clear_issue(&tx, &id, IssueKind::Error, err_code)?;
                if setting {
                    // Put back: the outside change is undone.
                    Store::clear_issue(&tx, &id, IssueKind::Error, error_code::CODE_MODIFIED_EXTERNAL_TO_SEAM)?;
                }
                tracing::info!(access_code_id = %id, slot, "{}", if setting { "code set on the lock" } else { "code removed from the lock" });
            }
            Outcome::Refused(reason) => {
                tracing::warn!(access_code_id = %id, slot, %reason, "lock refused");
                c.blocked = setting;
                c.next_attempt_at = Some(now + chrono::Duration::from_std(config.refusal_retry).unwrap_or_default());
                if setting {
                    c.status = status::UNSET.into();
                }
                // A duplicate reported by the lock already says why; do not pile on.
                let dup = Store::has_issue(&tx, &id, IssueKind::Error, error_code::DUPLICATE_CODE_ON_DEVICE)?;
                if !dup {
                    Store::set_issue(&tx, &id, IssueKind::Error, err_code, &reason, &now)?;
                    event(&tx, fail_event, json!({ "access_code_errors": [{ "error_code": err_code, "message": reason }] }))?;
                }
            }
            Outcome::Failed { reason, lock_backoff: lb } => {
                lock_backoff = lb;
                engine.inner.reconcile_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                c.attempts += 1;
                let backoff = retry_delay(&config, c.attempts);
                c.next_attempt_at = Some(now + chrono::Duration::from_std(backoff).unwrap_or_default());
                let since = c.pending_since.unwrap_or(now);
                let waited = (now - since).to_std().unwrap_or_default();
                tracing::info!(access_code_id = %id, attempts = c.attempts, %reason, "attempt failed; will retry");
                if waited >= config.delay_warning_after
                    && !Store::has_issue(&tx, &id, IssueKind::Warning, warn_code)?
                {
                    let msg = format!("still not {} the lock after {} tries: {reason}", if setting { "on" } else { "off" }, c.attempts);
                    Store::set_issue(&tx, &id, IssueKind::Warning, warn_code, &msg, &now)?;
                    event(&tx, delay_event, json!({ "access_code_warnings": [{ "warning_code": warn_code, "message": msg }] }))?;
                }
                if (c.attempts >= config.failure_attempts || waited >= config.failure_after)
                    && !Store::has_issue(&tx, &id, IssueKind::Error, err_code)?
                {
                    let msg = format!("failed {} times: {reason}; still retrying", c.attempts);
                    Store::set_issue(&tx, &id, IssueKind::Error, err_code, &msg, &now)?;
                    event(&tx, fail_event, json!({ "access_code_errors": [{ "error_code": err_code, "message": msg }] }))?;
                }
            }
        }
        c.updated_at = now;
        Store::put_code(&tx, &c)?;
        tx.commit()?;
        Ok(events)
    })?;
    engine.publish(events);
    engine.forget_checksum(&device);
    Ok(lock_backoff)
}

fn retry_delay(config: &super::engine::EngineConfig, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    (config.retry_initial * 2u32.pow(exp)).min(config.retry_max)
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
