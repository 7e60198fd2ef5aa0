//! What a slot read tells: the slot table is updated, and a managed code changed or removed
//! outside zwlock is put back (or, when external changes are allowed, accepted).
//!
//! Masked or unreadable read-backs never count as a modification, and a slot whose code is
//! being set or removed right now is the reconciler's business, not a change.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::engine::Engine;
use super::model::{error_code, status, warning_code};
use crate::store::{EventRow, IssueKind, SlotState, Store, StoreError};

/// What a read found in a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotReading {
    pub slot: u16,
    pub state: SlotState,
    pub pin: Option<String>,
}

impl SlotReading {
    /// From a User Code status and code bytes.
    pub fn from_report(
        slot: u16,
        status: crate::cc::UserIdStatus,
        code: &crate::cc::CodeBytes,
    ) -> Self {
        use crate::cc::UserIdStatus;
        let state = if status == UserIdStatus::NotAvailable {
            SlotState::Unavailable
        } else if !status.is_occupied() {
            SlotState::Empty
        } else if code.is_hidden() {
            SlotState::Hidden
        } else {
            SlotState::Occupied
        };
        SlotReading {
            slot,
            state,
            pin: if state == SlotState::Occupied {
                code.pin().map(str::to_string)
            } else {
                None
            },
        }
    }
}

/// Record readings of a device's slots and react to changes. Returns whether a managed code
/// needs putting back (the caller wakes the reconciler).
pub(super) fn observe(
    engine: &Engine,
    device_id: &Uuid,
    readings: &[SlotReading],
    at: &DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut put_back = false;
    let events = engine.with_store(|s| {
        let tx = s.conn_mut_tx()?;
        let mut events: Vec<EventRow> = Vec::new();
        let codes = Store::device_codes(&tx, device_id)?;
        for r in readings {
            let previous = Store::observe_slot(&tx, device_id, r.slot, r.state, r.pin.as_deref(), at)?;
            let managed = codes.iter().find(|c| c.slot == Some(r.slot));
            let Some(code) = managed else {
                // Unmanaged: tell when one appears or goes.
                let was = previous.as_ref().is_some_and(|p| p.state.holds_code());
                let changed = previous.as_ref().is_none_or(|p| p.state != r.state || p.code != r.pin);
                if r.state.holds_code() && changed {
                    let id = Store::slot(&tx, device_id, r.slot)?.map(|s| s.unmanaged_id);
                    events.push(Store::add_event(&tx, "access_code.unmanaged.created", Some(device_id), id.as_ref(), at, json!({ "slot": r.slot }))?);
                } else if was && !r.state.holds_code() {
                    let id = previous.as_ref().map(|p| p.unmanaged_id);
                    events.push(Store::add_event(&tx, "access_code.unmanaged.removed", Some(device_id), id.as_ref(), at, json!({ "slot": r.slot }))?);
                }
                continue;
            };
            // Only a code zwlock believes is on the lock, and is not busy with, can be changed.
            let settled = code.status == status::SET || (code.is_scheduled_on_device && code.programmed_code.is_some());
            let Some(programmed) = code.programmed_code.clone().filter(|_| settled) else {
                continue;
            };
            let removed = r.state == SlotState::Empty;
            let modified = r.state == SlotState::Occupied && r.pin.as_deref() != Some(programmed.as_str());
            if !removed && !modified {
                continue; // the same code, or hidden: nothing to say
            }
            let mut c = code.clone();
            let how = if removed { "removed" } else { "changed" };
            let event = if removed { "access_code.deleted_external_to_seam" } else { "access_code.modified_external_to_seam" };
            if c.allow_external_modification {
                let msg = format!("the code was {how} outside zwlock; the change stands");
                Store::set_issue(&tx, &c.access_code_id, IssueKind::Warning, warning_code::CODE_MODIFIED_EXTERNAL_TO_SEAM, &msg, at)?;
                if let Some(pin) = r.pin.clone().filter(|_| modified) {
                    // The code is what the lock now holds.
                    c.code = pin.clone();
                    c.programmed_code = Some(pin);
                } else {
                    c.programmed_code = None;
                    c.status = status::UNSET.into();
                    c.blocked = true;
                }
            } else {
                let msg = format!("the code was {how} outside zwlock (at the keypad or by other software); zwlock puts it back");
                Store::set_issue(&tx, &c.access_code_id, IssueKind::Error, error_code::CODE_MODIFIED_EXTERNAL_TO_SEAM, &msg, at)?;
                c.programmed_code = None;
                c.status = status::UNSET.into();
                c.attempts = 0;
                c.next_attempt_at = None;
                c.pending_since = None;
                put_back = true;
            }
            c.updated_at = *at;
            Store::put_code(&tx, &c)?;
            tracing::warn!(access_code_id = %c.access_code_id, slot = r.slot, how, allowed = c.allow_external_modification, "code changed outside zwlock");
            events.push(Store::add_event(&tx, event, Some(device_id), Some(&c.access_code_id), at, json!({ "slot": r.slot, "change_type": if removed { "removed" } else { "modified" } }))?);
            if event != "access_code.modified_external_to_seam" {
                // Clients matching on the generic event see it too.
                events.push(Store::add_event(&tx, "access_code.modified_external_to_seam", Some(device_id), Some(&c.access_code_id), at, json!({ "slot": r.slot, "change_type": "removed" }))?);
            }
        }
        tx.commit()?;
        Ok(events)
    })?;
    engine.publish(events);
    Ok(put_back)
}

/// Every code gone (a factory reset, "all user codes deleted"): each known slot reads empty.
pub(super) fn all_deleted(
    engine: &Engine,
    device_id: &Uuid,
    at: &DateTime<Utc>,
) -> Result<bool, StoreError> {
    let slots: Vec<u16> = engine.with_store(|s| {
        let mut v: Vec<u16> = Store::slots(s.conn(), device_id)?
            .iter()
            .filter(|s| s.state.holds_code())
            .map(|s| s.slot)
            .collect();
        v.extend(
            Store::device_codes(s.conn(), device_id)?
                .iter()
                .filter_map(|c| c.slot),
        );
        v.sort_unstable();
        v.dedup();
        Ok(v)
    })?;
    let readings: Vec<SlotReading> = slots
        .into_iter()
        .map(|slot| SlotReading {
            slot,
            state: SlotState::Empty,
            pin: None,
        })
        .collect();
    observe(engine, device_id, &readings, at)
}
