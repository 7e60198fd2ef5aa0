//! What locks report on their own: keypad use, codes they refused, slot contents, battery and
//! bolt. (Changes made outside zwlock are handled in `external`.)

use chrono::{DateTime, Utc};
use serde_json::json;

use super::engine::Engine;
use super::model::error_code;
use crate::cc::notification::{access_control, NotificationCommand, NotificationReport};
use crate::cc::{BatteryCommand, Command, DoorLockCommand, UserCodeCommand};
use crate::store::{IssueKind, SlotState, Store, StoreError};

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
            on_notification(engine, &device, r, at)?
        }
        Command::UserCode(UserCodeCommand::Report {
            user_id,
            user_id_status,
            user_code,
        }) => {
            let state = if !user_id_status.is_occupied() {
                if *user_id_status == crate::cc::UserIdStatus::NotAvailable {
                    SlotState::Unavailable
                } else {
                    SlotState::Empty
                }
            } else if user_code.is_hidden() {
                SlotState::Hidden
            } else {
                SlotState::Occupied
            };
            engine.with_store(|s| {
                Store::observe_slot(
                    s.conn(),
                    &device.device_id,
                    u16::from(*user_id),
                    state,
                    user_code.pin(),
                    &at,
                )
                .map(|_| ())
            })?;
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

fn on_notification(
    engine: &Engine,
    device: &crate::store::DeviceRow,
    r: &NotificationReport,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(d) = &r.details else {
        return Ok(());
    };
    if d.notification_type != crate::cc::notification::types::ACCESS_CONTROL {
        return Ok(());
    }
    let user = r.user_id();
    tracing::debug!(
        event = d.event,
        ?user,
        node = device.node_id,
        "access control notification"
    );
    let code_in_slot = |slot: u16| -> Result<Option<crate::store::CodeRow>, StoreError> {
        engine.with_store(|s| {
            Ok(Store::device_codes(s.conn(), &device.device_id)?
                .into_iter()
                .find(|c| c.slot == Some(slot)))
        })
    };
    match d.event {
        access_control::KEYPAD_UNLOCK
        | access_control::UNLOCK_WITH_USER_CODE
        | access_control::KEYPAD_LOCK
        | access_control::LOCK_WITH_USER_CODE => {
            let unlocked = matches!(
                d.event,
                access_control::KEYPAD_UNLOCK | access_control::UNLOCK_WITH_USER_CODE
            );
            let code = match user {
                Some(u) => code_in_slot(u)?,
                None => None,
            };
            engine.with_store(|s| {
                Store::set_device_state(s.conn(), &device.device_id, None, Some(!unlocked))
            })?;
            engine.record(
                if unlocked {
                    "lock.unlocked"
                } else {
                    "lock.locked"
                },
                Some(&device.device_id),
                code.as_ref().map(|c| &c.access_code_id),
                json!({
                    "method": "keycode",
                    "access_code_is_managed": code.is_some(),
                    "slot": user,
                    "occurred_at": super::model::rfc3339(&at),
                }),
            )?;
        }
        access_control::NEW_USER_CODE_NOT_ADDED_DUPLICATE => {
            let Some(slot) = user else { return Ok(()) };
            if let Some(code) = code_in_slot(slot)? {
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
                        c.status = super::model::status::UNSET.into();
                        Store::put_code(&tx, &c)?;
                    }
                    tx.commit()?;
                    Ok(!had)
                })?;
                if newly {
                    engine.record(
                        "access_code.failed_to_set_on_device",
                        Some(&device.device_id),
                        Some(&code.access_code_id),
                        json!({ "access_code_errors": [{ "error_code": error_code::DUPLICATE_CODE_ON_DEVICE, "message": msg }] }),
                    )?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}
