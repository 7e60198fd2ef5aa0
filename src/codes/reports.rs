//! What locks report on their own: keypad use, codes added or deleted there, codes they refused,
//! slot contents, battery and bolt. A report about a slot triggers a read of that slot only.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::alarms::{self, LockEvent};
use super::engine::Engine;
use super::external::{self, SlotReading};
use super::model::{error_code, status};
use crate::cc::notification::NotificationCommand;
use crate::cc::{BatteryCommand, Command, DoorLockCommand, UserCodeCommand};
use crate::driver::NodeInfo;
use crate::store::{CodeRow, DeviceRow, IssueKind, Store, StoreError};

/// Handle a command a lock sent on its own.
pub(super) fn on_report(
    engine: &Engine,
    node: u16,
    command: &Command,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(device) = engine.with_store(|s| Store::device_by_node(s.conn(), node))? else {
        return Ok(());
    };
    engine.with_store(|s| Store::touch_device(s.conn(), &device.device_id, &at))?;
    match command {
        Command::Notification(NotificationCommand::Report(r)) => {
            let manufacturer = device
                .info_json
                .as_deref()
                .and_then(|j| serde_json::from_str::<NodeInfo>(j).ok())
                .and_then(|i| i.manufacturer)
                .map(|m| m.manufacturer_id);
            if let Some(ev) = alarms::interpret(r, manufacturer) {
                on_lock_event(engine, &device, ev, at)?;
            }
        }
        Command::UserCode(UserCodeCommand::Report {
            user_id,
            user_id_status,
            user_code,
        }) => {
            let reading = SlotReading::from_report(u16::from(*user_id), *user_id_status, user_code);
            if external::observe(engine, &device.device_id, &[reading], &at)? {
                engine.wake(device.device_id);
            }
        }
        Command::Battery(b @ BatteryCommand::Report { .. }) => {
            engine.with_store(|s| {
                Store::set_device_state(s.conn(), &device.device_id, b.percent(), None)
            })?;
        }
        Command::DoorLock(DoorLockCommand::OperationReport(r)) => {
            engine.with_store(|s| {
                Store::set_device_state(s.conn(), &device.device_id, None, r.is_locked())
            })?;
        }
        _ => {}
    }
    Ok(())
}

fn code_in_slot(
    engine: &Engine,
    device: &DeviceRow,
    slot: u16,
) -> Result<Option<CodeRow>, StoreError> {
    engine.with_store(|s| {
        Ok(Store::device_codes(s.conn(), &device.device_id)?
            .into_iter()
            .find(|c| c.slot == Some(slot)))
    })
}

fn on_lock_event(
    engine: &Engine,
    device: &DeviceRow,
    ev: LockEvent,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tracing::debug!(node = device.node_id, ?ev, "lock event");
    let id = device.device_id;
    match ev {
        LockEvent::KeypadUnlock(slot) | LockEvent::KeypadLock(slot) => {
            let unlocked = matches!(ev, LockEvent::KeypadUnlock(_));
            let code = match slot {
                Some(s) => code_in_slot(engine, device, s)?,
                None => None,
            };
            engine.with_store(|s| Store::set_device_state(s.conn(), &id, None, Some(!unlocked)))?;
            engine.record(
                if unlocked {
                    "lock.unlocked"
                } else {
                    "lock.locked"
                },
                Some(&id),
                code.as_ref().map(|c| &c.access_code_id),
                json!({
                    "method": "keycode",
                    "access_code_is_managed": code.is_some(),
                    "slot": slot,
                    "occurred_at": super::model::rfc3339(&at),
                }),
            )?;
            // A one-time code has done its job: it comes off the lock.
            if let Some(c) = code.filter(|c| c.is_one_time_use && c.used_at.is_none() && unlocked) {
                let now = engine.now();
                engine.with_store(|s| {
                    if let Some(mut row) = Store::code(s.conn(), &c.access_code_id)? {
                        row.used_at = Some(now);
                        row.updated_at = now;
                        Store::put_code(s.conn(), &row)?;
                    }
                    Ok(())
                })?;
                engine.record(
                    "access_code.used",
                    Some(&id),
                    Some(&c.access_code_id),
                    json!({ "one_time_use": true }),
                )?;
                tracing::info!(access_code_id = %c.access_code_id, "one-time code used; removing it");
                engine.wake(id);
            }
            // A slot zwlock has never seen: learn what is there.
            if let Some(s) = slot {
                let known =
                    engine.with_store(|st| Ok(Store::slot(st.conn(), &id, s)?.is_some()))?;
                if !known {
                    engine.want_read(&id, [s]);
                }
            }
        }
        LockEvent::CodeAdded(slot) | LockEvent::CodeDeleted(slot) => engine.want_read(&id, [slot]),
        LockEvent::AllCodesDeleted => {
            tracing::warn!(node = device.node_id, "the lock reports all codes deleted");
            if external::all_deleted(engine, &id, &at)? {
                engine.forget_checksum(&id);
            }
            engine.wake(id);
        }
        LockEvent::Duplicate(slot) => {
            let Some(code) = code_in_slot(engine, device, slot)? else {
                return Ok(());
            };
            let now = engine.now();
            let msg = "the lock refused the code: the same PIN is already on the lock";
            let newly = engine.with_store(|s| {
                let tx = s.conn_mut_tx()?;
                let had = Store::has_issue(
                    &tx,
                    &code.access_code_id,
                    IssueKind::Error,
                    error_code::DUPLICATE_CODE_ON_DEVICE,
                )?;
                Store::set_issue(
                    &tx,
                    &code.access_code_id,
                    IssueKind::Error,
                    error_code::DUPLICATE_CODE_ON_DEVICE,
                    msg,
                    &now,
                )?;
                Store::clear_issue(
                    &tx,
                    &code.access_code_id,
                    IssueKind::Error,
                    error_code::FAILED_TO_SET_ON_DEVICE,
                )?;
                if let Some(mut c) = Store::code(&tx, &code.access_code_id)? {
                    // A permanent refusal: no blind retries until the code changes.
                    c.blocked = true;
                    c.status = status::UNSET.into();
                    Store::put_code(&tx, &c)?;
                }
                tx.commit()?;
                Ok(!had)
            })?;
            if newly {
                engine.record(
                    "access_code.failed_to_set_on_device",
                    Some(&id),
                    Some(&code.access_code_id),
                    json!({ "access_code_errors": [{ "error_code": error_code::DUPLICATE_CODE_ON_DEVICE, "message": msg }] }),
                )?;
            }
        }
    }
    Ok(())
}
