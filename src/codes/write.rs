//! The writes a reconciler makes on a lock: read a slot before using it, set a code (its
//! on-lock schedule first when it has one), clear a slot, and commit what came of it, with
//! retries, delay warnings and failure errors as time passes.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::engine::Engine;
use super::model::{error_code, status, warning_code};
use super::reconcile::After;
use super::schedule;
use super::slot_commands::{clear_command, get_command, read_back, set_command};
use crate::cc::UserIdStatus;
use crate::driver::{DriverError, Priority, SetOutcome};
use crate::serialapi::NodeId;
use crate::store::{CodeRow, IssueKind, SlotState, Store, StoreError};

/// Read one slot and record what it holds, as the first step of setting `code` there.
pub(super) async fn probe(
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

pub(super) async fn set(
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

pub(super) async fn clear(
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
