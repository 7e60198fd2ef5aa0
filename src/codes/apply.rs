//! Committing what the engine decided and what came of it: a plan's bookkeeping, the intent
//! of a write (before the frame goes out), and its outcome (after), with the retries, delay
//! warnings and failure errors that time brings. Pure functions of (row, outcome, time) where
//! they decide; the repository where they record.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::config::EngineConfig;
use super::model::{error_code, rfc3339, warning_code};
use super::planner::{After, Change};
use crate::lock::{ErrorClass, PortError, Refusal, Written};
use crate::store::{CodeRow, CodeStatus, EventRow, IssueKind, SlotState, StoreError, Tx};

/// Which write an attempt was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Put the code on the lock; `native` with an on-lock schedule.
    Set {
        native: bool,
    },
    /// Read the slot before using it.
    Probe,
    Clear,
}

impl Write {
    fn is_set(self) -> bool {
        !matches!(self, Write::Clear)
    }
}

/// How one attempt on the lock ended.
#[derive(Debug, Clone)]
pub enum Attempt {
    Done(Written),
    /// The lock heard and said no.
    Refused(Refusal),
    /// It did not get through (or no answer came in time).
    Failed(Failure),
}

/// Why an attempt did not get through.
#[derive(Debug, Clone)]
pub enum Failure {
    Port(PortError),
    /// The whole operation took longer than the engine allows.
    TimedOut(Duration),
}

impl Failure {
    pub fn class(&self) -> ErrorClass {
        match self {
            Failure::Port(e) => e.class,
            Failure::TimedOut(_) => ErrorClass::Transient,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Port(e) => write!(f, "{e}"),
            Failure::TimedOut(d) => write!(f, "no answer within {}s", d.as_secs()),
        }
    }
}

/// What a lock's refusal of a code says about the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// It holds codes of this PIN's length, and this many codes: that is all it takes.
    Capacity(u16),
    /// It holds codes of other lengths only: it does not take PINs of this length.
    Length(u8),
    /// Nothing known says why.
    Unknown,
}

/// Why the lock may have refused `pin` for code `this`, from what is known to be on it.
/// (A duplicate is told by the lock itself, in a notification.)
pub fn refusal_cause(
    pin: &str,
    this: &Uuid,
    codes: &[CodeRow],
    slots: &[crate::store::SlotRow],
) -> Cause {
    let others: Vec<&CodeRow> = codes
        .iter()
        .filter(|c| c.access_code_id != *this && c.slot.is_some() && c.programmed_code.is_some())
        .collect();
    let accepted: std::collections::BTreeSet<usize> = others
        .iter()
        .filter_map(|c| c.programmed_code.as_ref().map(String::len))
        .collect();
    let held: std::collections::BTreeSet<u16> = codes.iter().filter_map(|c| c.slot).collect();
    let unmanaged = slots
        .iter()
        .filter(|s| s.state.holds_code() && !held.contains(&s.slot))
        .count();
    let occupied = others.len() + unmanaged;
    if accepted.contains(&pin.len()) && occupied > 0 {
        Cause::Capacity(u16::try_from(occupied).unwrap_or(u16::MAX))
    } else if !accepted.is_empty() {
        Cause::Length(u8::try_from(pin.len()).unwrap_or(u8::MAX))
    } else {
        Cause::Unknown
    }
}

/// Backoff before the `attempts`-th retry: doubling from `retry_initial`, capped at `retry_max`.
pub fn retry_delay(config: &EngineConfig, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    (config.retry_initial * 2u32.pow(exp)).min(config.retry_max)
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Commit a plan's bookkeeping. Returns the events to publish.
pub fn changes(
    tx: &Tx<'_>,
    device: &Uuid,
    changes: &[Change],
    now: &DateTime<Utc>,
) -> Result<Vec<EventRow>, StoreError> {
    let mut events = Vec::new();
    for change in changes {
        let id = match change {
            Change::Forget { code, .. }
            | Change::Unslot { code }
            | Change::Assign { code, .. }
            | Change::NoSpace { code, .. }
            | Change::SpaceFound { code }
            | Change::OpenedOnLock { code }
            | Change::Hold { code } => *code,
        };
        let Some(mut c) = tx.code(&id)? else { continue };
        match change {
            Change::Forget { ended, .. } => {
                // Planned from a snapshot: forget only what is still deleted or ended, and
                // never a code that may be on the lock.
                let gone = c.desired == crate::store::Desired::Deleted
                    || c.ends_at.is_some_and(|e| *now >= e);
                if !gone || (super::planner::maybe_on_lock(&c) && c.slot.is_some()) {
                    continue;
                }
                c.deleted_at = Some(*now);
                c.slot = None;
                c.updated_at = *now;
                tx.put_code(&c)?;
                if *ended {
                    events.push(tx.add_event(
                        "access_code.deleted",
                        Some(device),
                        Some(&id),
                        now,
                        json!({ "code": c.code, "reason": "ended" }),
                    )?);
                }
            }
            Change::Hold { .. } => {
                c.status = CodeStatus::Unset;
                c.updated_at = *now;
                tx.put_code(&c)?;
            }
            Change::Unslot { .. } => {
                c.slot = None;
                c.status = CodeStatus::Unset;
                c.updated_at = *now;
                tx.put_code(&c)?;
            }
            Change::Assign { slot, .. } => {
                c.slot = Some(*slot);
                c.updated_at = *now;
                tx.put_code(&c)?;
            }
            Change::NoSpace { slots, .. } => {
                // Not being programmed: waiting for a slot.
                if c.status == CodeStatus::Setting
                    && c.slot.is_none()
                    && c.programmed_code.is_none()
                {
                    c.status = CodeStatus::Unset;
                    c.updated_at = *now;
                    tx.put_code(&c)?;
                }
                if !tx.has_issue(
                    &id,
                    IssueKind::Error,
                    error_code::NO_SPACE_FOR_ACCESS_CODE_ON_DEVICE,
                )? {
                    let msg = format!("all {slots} slots of the lock are in use; the code is placed as soon as one frees");
                    tx.set_issue(
                        &id,
                        IssueKind::Error,
                        error_code::NO_SPACE_FOR_ACCESS_CODE_ON_DEVICE,
                        &msg,
                        now,
                    )?;
                }
            }
            Change::SpaceFound { .. } => {
                if tx.clear_issue(
                    &id,
                    IssueKind::Error,
                    error_code::NO_SPACE_FOR_ACCESS_CODE_ON_DEVICE,
                )? {
                    tracing::info!(access_code_id = %id, "a slot freed up");
                }
            }
            Change::OpenedOnLock { .. } => {
                c.status = CodeStatus::Set;
                c.updated_at = *now;
                tx.put_code(&c)?;
                events.push(tx.add_event(
                    "access_code.set_on_device",
                    Some(device),
                    Some(&id),
                    now,
                    json!({ "code": c.code, "scheduled_on_device": true }),
                )?);
            }
        }
    }
    Ok(events)
}

/// Whether an action planned from a snapshot still fits the code as it is now (an update or
/// a delete may have been committed since): a set only for a code still wanted with that PIN,
/// a clear only of the slot it still holds.
pub fn still_planned(tx: &Tx<'_>, action: &super::planner::SlotAction) -> Result<bool, StoreError> {
    use super::planner::SlotAction;
    let Some(c) = tx.code(&action.code())? else {
        return Ok(false);
    };
    Ok(match action {
        SlotAction::Set { slot, pin, .. } => {
            c.desired == crate::store::Desired::Active
                && c.code == *pin
                && c.slot.is_none_or(|s| s == *slot)
        }
        SlotAction::Probe { .. } => c.desired == crate::store::Desired::Active && c.slot.is_none(),
        SlotAction::Clear { slot, .. } => c.slot == Some(*slot),
    })
}

/// Record that work on a code began (`Setting` or `Removing`), before anything goes out,
/// changing only the progress fields of the row as it is now (an update committed since the
/// plan is kept). False when the code is gone.
pub fn begin(
    tx: &Tx<'_>,
    code: &Uuid,
    phase: CodeStatus,
    now: &DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(mut c) = tx.code(code)? else {
        return Ok(false);
    };
    if c.status != phase {
        if phase == CodeStatus::Removing {
            // A new effort: its own delay and failure clock.
            c.attempts = 0;
            c.pending_since = Some(*now);
        }
        c.status = phase;
    }
    c.pending_since.get_or_insert(*now);
    c.updated_at = *now;
    tx.put_code(&c)?;
    Ok(true)
}

/// What the lock-wide consequence of an attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockWait {
    #[default]
    None,
    /// The lock did not answer: leave it alone this long.
    For(Duration),
    /// The stick is gone: wait for it.
    Stick,
}

/// What committing an attempt's outcome came to.
#[derive(Debug, Default)]
pub struct Finished {
    pub events: Vec<EventRow>,
    pub wait: LockWait,
    /// The engine gives up on the code's pending action attempts: (error type, message). It
    /// keeps working on the code itself.
    pub gave_up: Option<(&'static str, String)>,
}

/// Commit the outcome of a write on `code` in `slot`. `pin` is what was written (sets).
/// Returns the events and what the whole lock should do.
#[allow(clippy::too_many_arguments)]
pub fn finish(
    tx: &Tx<'_>,
    config: &EngineConfig,
    code: &Uuid,
    slot: u16,
    pin: Option<&str>,
    write: Write,
    attempt: &Attempt,
    now: &DateTime<Utc>,
) -> Result<Finished, StoreError> {
    let Some(mut c) = tx.code(code)? else {
        return Ok(Finished::default());
    };
    let mut gave_up: Option<(&'static str, String)> = None;
    let setting = write.is_set();
    let native = write == Write::Set { native: true };
    let device = c.device_id;
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
    let mut events = Vec::new();
    let mut event = |t: &str, payload: serde_json::Value| -> Result<(), StoreError> {
        events.push(tx.add_event(t, Some(&device), Some(code), now, payload)?);
        Ok(())
    };
    let mut wait = LockWait::None;
    match attempt {
        Attempt::Done(_) if write == Write::Probe => {
            // A probe only reads; its reading is recorded by the caller.
        }
        Attempt::Done(_) => {
            c.attempts = 0;
            c.next_attempt_at = None;
            c.pending_since = None;
            tx.clear_issue(code, IssueKind::Warning, warn_code)?;
            tx.clear_issue(code, IssueKind::Error, err_code)?;
            if setting {
                let pin = pin.unwrap_or(c.code.as_str()).to_string();
                c.is_scheduled_on_device = native;
                // Scheduled ahead of its window, the code is on the lock but not yet usable.
                let waiting = native && c.starts_at.is_some_and(|s| *now < s);
                c.status = if pin == c.code && !waiting {
                    CodeStatus::Set
                } else {
                    CodeStatus::Unset
                };
                tx.observe_slot(&device, slot, SlotState::Occupied, Some(&pin), now)?;
                c.programmed_code = Some(pin);
                forget_wrong_capacity(tx, &device)?;
                tx.clear_issue(code, IssueKind::Error, error_code::DUPLICATE_CODE_ON_DEVICE)?;
                if native {
                    event(
                        "access_code.scheduled_on_device",
                        json!({ "code": c.code, "starts_at": c.starts_at.as_ref().map(rfc3339), "ends_at": c.ends_at.as_ref().map(rfc3339) }),
                    )?;
                }
                if !waiting {
                    event(done_event, json!({ "code": c.code }))?;
                }
                // Put back: the outside change is undone, and says so for a while longer.
                let until = *now + chrono(config.external_modification_error_hold);
                for e in [
                    error_code::CODE_MODIFIED_EXTERNAL_TO_SEAM,
                    error_code::CONFLICTING_EXTERNAL_MODIFICATION,
                ] {
                    tx.expire_issue(code, IssueKind::Error, e, &until)?;
                }
            } else {
                c.is_scheduled_on_device = false;
                c.programmed_code = None;
                c.status = CodeStatus::Unset;
                tx.observe_slot(&device, slot, SlotState::Empty, None, now)?;
                event(done_event, json!({}))?;
            }
            tracing::info!(access_code_id = %code, slot, "{}", if setting { "code set on the lock" } else { "code removed from the lock" });
        }
        Attempt::Refused(refusal) => {
            let reason = format!(
                "{refusal}{}",
                if setting { "" } else { " (clearing the slot)" }
            );
            tracing::warn!(access_code_id = %code, slot, %reason, "lock refused");
            let mut said = None;
            if setting {
                // Not on the lock; try again much later (a refusal is not a lost frame).
                c.status = CodeStatus::Unset;
                c.next_attempt_at = Some(*now + chrono(config.refusal_retry));
                if matches!(refusal, Refusal::Rejected | Refusal::NotKept) {
                    let pin = pin.unwrap_or(c.code.as_str());
                    let codes = tx.device_codes(&device)?;
                    let slots = tx.slots(&device)?;
                    match refusal_cause(pin, code, &codes, &slots) {
                        Cause::Capacity(n) if c.programmed_code.is_none() => {
                            // The lock is full at n codes: the code waits for space like any
                            // other (the planner says so), and goes on when a code leaves.
                            tracing::info!(%device, capacity = n, "the lock holds no more codes than this");
                            tx.set_code_capacity(&device, Some(n))?;
                            c.slot = None;
                            c.next_attempt_at = None;
                            said = Some(String::new());
                        }
                        Cause::Length(l) => {
                            tx.add_refused_code_length(&device, l)?;
                            said = Some(format!(
                                "the lock refused a {l}-digit code (it holds codes of other lengths); give it a PIN of another length"
                            ));
                        }
                        _ => {}
                    }
                }
            } else {
                // A removal is never given up: retried on the normal backoff.
                c.attempts += 1;
                c.next_attempt_at = Some(*now + chrono(retry_delay(config, c.attempts)));
            }
            // A duplicate reported by the lock already says why, and a full lock says so with
            // no_space: do not pile on.
            let dup = tx.has_issue(code, IssueKind::Error, error_code::DUPLICATE_CODE_ON_DEVICE)?;
            if !dup && said.as_deref() != Some("") {
                let msg = match said {
                    Some(why) => format!("{why}; zwlock tries again later"),
                    None => format!("{reason}; zwlock tries again later"),
                };
                let new = !tx.has_issue(code, IssueKind::Error, err_code)?;
                tx.set_issue(code, IssueKind::Error, err_code, &msg, now)?;
                if new {
                    event(
                        fail_event,
                        json!({ "access_code_errors": [{ "error_code": err_code, "message": msg }] }),
                    )?;
                }
                gave_up = Some((err_code, msg));
            }
        }
        Attempt::Failed(failure) => {
            let class = failure.class();
            let reason = failure.to_string();
            wait = match class {
                ErrorClass::Unreachable { retry_after } => LockWait::For(retry_after),
                ErrorClass::NotConnected => LockWait::Stick,
                ErrorClass::Transient | ErrorClass::Permanent => LockWait::None,
            };
            if class == ErrorClass::NotConnected {
                // Not the lock's doing: the stick coming back wakes the lock again.
                c.next_attempt_at = None;
            } else {
                c.attempts += 1;
                let backoff = match class {
                    // No such node on the stick (yet): nothing soon will change that.
                    ErrorClass::Permanent => config.retry_max,
                    _ => retry_delay(config, c.attempts),
                };
                c.next_attempt_at = Some(*now + chrono(backoff));
            }
            let since = c.pending_since.unwrap_or(*now);
            let waited = (*now - since).to_std().unwrap_or_default();
            tracing::info!(access_code_id = %code, attempts = c.attempts, %reason, "attempt failed; will retry");
            if waited >= config.delay_warning_after
                && !tx.has_issue(code, IssueKind::Warning, warn_code)?
            {
                let msg = format!(
                    "still not {} the lock after {} tries: {reason}",
                    if setting { "on" } else { "off" },
                    c.attempts
                );
                tx.set_issue(code, IssueKind::Warning, warn_code, &msg, now)?;
                event(
                    delay_event,
                    json!({ "access_code_warnings": [{ "warning_code": warn_code, "message": msg }] }),
                )?;
            }
            if (c.attempts >= config.failure_attempts || waited >= config.failure_after)
                && !tx.has_issue(code, IssueKind::Error, err_code)?
            {
                let msg = format!("failed {} times: {reason}; still retrying", c.attempts);
                tx.set_issue(code, IssueKind::Error, err_code, &msg, now)?;
                event(
                    fail_event,
                    json!({ "access_code_errors": [{ "error_code": err_code, "message": msg }] }),
                )?;
                gave_up = Some((err_code, msg));
            }
        }
    }
    c.updated_at = *now;
    tx.put_code(&c)?;
    Ok(Finished {
        events,
        wait,
        gave_up,
    })
}

/// A lock that took a code while holding as many as zwlock thought it could: it can hold more.
fn forget_wrong_capacity(tx: &Tx<'_>, device: &Uuid) -> Result<(), StoreError> {
    let Some(cap) = tx.device(device)?.and_then(|d| d.code_capacity) else {
        return Ok(());
    };
    let held = tx
        .slots(device)?
        .iter()
        .filter(|s| s.state.holds_code())
        .count();
    if held > usize::from(cap) {
        tx.set_code_capacity(device, None)?;
    }
    Ok(())
}

/// After a confirmed removal: forget the code or let it wait, as planned (unless it changed
/// meanwhile: a code updated back into its window stays for the planner to set again).
pub fn removed(
    tx: &Tx<'_>,
    code: &Uuid,
    then: After,
    now: &DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(mut c) = tx.code(code)? else {
        return Ok(());
    };
    if c.programmed_code.is_some() || c.status != CodeStatus::Unset {
        return Ok(());
    }
    if then == After::Forget || c.desired == crate::store::Desired::Deleted {
        c.deleted_at = Some(*now);
        c.slot = None;
    } else if then == After::Wait {
        c.slot = None;
    }
    c.updated_at = *now;
    tx.put_code(&c)
}

/// The lock refused a code because the same PIN is already on it.
pub fn duplicate(
    tx: &Tx<'_>,
    config: &EngineConfig,
    c: &CodeRow,
    now: &DateTime<Utc>,
) -> Result<Vec<EventRow>, StoreError> {
    let msg = "the lock refused the code: the same PIN is already on the lock";
    let id = c.access_code_id;
    let had = tx.has_issue(&id, IssueKind::Error, error_code::DUPLICATE_CODE_ON_DEVICE)?;
    // Name the other code holding the PIN, when it is known.
    let codes = tx.device_codes(&c.device_id)?;
    let held: std::collections::BTreeSet<u16> = codes.iter().filter_map(|x| x.slot).collect();
    let details = if let Some(o) = codes
        .iter()
        .find(|o| o.access_code_id != id && o.code == c.code && o.programmed_code.is_some())
    {
        json!({ "managed_access_code_id": o.access_code_id })
    } else if let Some(s) = tx
        .slots(&c.device_id)?
        .into_iter()
        .find(|s| !held.contains(&s.slot) && s.code.as_deref() == Some(c.code.as_str()))
    {
        json!({ "unmanaged_access_code_id": s.unmanaged_id })
    } else {
        json!({})
    };
    tx.set_issue_with(
        &id,
        IssueKind::Error,
        error_code::DUPLICATE_CODE_ON_DEVICE,
        msg,
        now,
        &details,
    )?;
    tx.clear_issue(&id, IssueKind::Error, error_code::FAILED_TO_SET_ON_DEVICE)?;
    if let Some(mut row) = tx.code(&id)? {
        // Retried only much later (or at once when the PIN changes).
        row.status = CodeStatus::Unset;
        row.next_attempt_at = Some(*now + chrono(config.refusal_retry));
        row.updated_at = *now;
        tx.put_code(&row)?;
    }
    if had {
        return Ok(Vec::new());
    }
    Ok(vec![tx.add_event(
        "access_code.failed_to_set_on_device",
        Some(&c.device_id),
        Some(&id),
        now,
        json!({ "access_code_errors": [{ "error_code": error_code::DUPLICATE_CODE_ON_DEVICE, "message": msg }] }),
    )?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: u128, pin: &str, slot: u16) -> CodeRow {
        CodeRow {
            access_code_id: Uuid::from_u128(n),
            status: CodeStatus::Set,
            slot: Some(slot),
            programmed_code: Some(pin.into()),
            ..CodeRow::new(Uuid::nil(), pin.into(), Utc::now())
        }
    }

    #[test]
    fn a_refusal_is_read_from_what_the_lock_already_holds() {
        let me = Uuid::from_u128(99);
        let mine = CodeRow {
            access_code_id: me,
            slot: Some(3),
            ..CodeRow::new(Uuid::nil(), "123456".into(), Utc::now())
        };
        // It holds 4-digit codes only: the 6-digit one is a length it does not take.
        let codes = vec![set(1, "1111", 1), set(2, "2222", 2), mine.clone()];
        assert_eq!(refusal_cause("123456", &me, &codes, &[]), Cause::Length(6));
        // A 4-digit code refused by a lock holding two 4-digit codes: it is full at two.
        assert_eq!(refusal_cause("3333", &me, &codes, &[]), Cause::Capacity(2));
        // Nothing known on the lock: no guess.
        assert_eq!(refusal_cause("3333", &me, &[mine], &[]), Cause::Unknown);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let config = EngineConfig {
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(60),
            ..Default::default()
        };
        let d: Vec<u64> = (1..=6).map(|a| retry_delay(&config, a).as_secs()).collect();
        assert_eq!(d, [10, 20, 40, 60, 60, 60]);
        assert_eq!(retry_delay(&config, u32::MAX).as_secs(), 60);
    }
}
