//! What a slot reading tells: the slot table is updated, and a managed code changed or removed
//! outside zwlock is put back, or, when outside changes are allowed for it, accepted.
//!
//! The decision is [`classify`], a pure function of the code and the reading; [`observe`]
//! commits what it means. Masked or unreadable read-backs never count as a modification, and a
//! slot whose code is being set or removed right now is the engine's own business.
//!
//! What the code carries afterwards (Seam's model): without permission, the error
//! `code_modified_external_to_seam` (and Seam's current name for it,
//! `conflicting_external_modification`) with `change_type` and `modified_fields`; it stays after
//! the put-back for `external_modification_error_hold` or until the code is updated. With
//! permission, the warning `code_modified_external_to_seam` (and `external_modification_in_effect`)
//! and the change stands: a new PIN becomes the code's PIN; a removal releases the code (its
//! slot is freed, it is not put back until it is updated). `modified_fields` never carries PINs:
//! `from` and `to` of the field `code` are null.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::model::{error_code, warning_code};
use crate::lock::{SlotContent, SlotReading};
use crate::store::{CodeRow, CodeStatus, Desired, EventRow, IssueKind, SlotState, StoreError, Tx};

/// How a reading differs from a managed code zwlock believes is on the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The slot reads empty (or the user id is gone).
    Removed,
    /// The slot holds another readable PIN.
    Modified { pin: String },
    /// The code is there but disabled at the lock.
    Disabled,
}

/// The slot-table state and readable PIN of a reading.
pub fn slot_state(content: &SlotContent) -> (SlotState, Option<&str>) {
    match content {
        SlotContent::Empty => (SlotState::Empty, None),
        SlotContent::Code(p) => (SlotState::Occupied, Some(p.as_str())),
        SlotContent::Hidden => (SlotState::Hidden, None),
        SlotContent::Unavailable => (SlotState::Unavailable, None),
    }
}

/// Whether zwlock believes `code` sits on the lock and is not busy with it.
pub fn settled(code: &CodeRow) -> bool {
    code.desired == Desired::Active
        && code.programmed_code.is_some()
        && (code.status == CodeStatus::Set || code.is_scheduled_on_device)
}

/// Compare a settled managed code with what its slot reads (`disabled`: the lock reports the
/// code disabled, so it does not open the door: a modification like any other).
pub fn classify_reading(code: &CodeRow, content: &SlotContent, disabled: bool) -> Option<Finding> {
    match classify(code, content) {
        None if disabled
            && settled(code)
            && !matches!(content, SlotContent::Empty | SlotContent::Unavailable) =>
        {
            Some(Finding::Disabled)
        }
        other => other,
    }
}

/// Compare a settled managed code with what its slot reads.
pub fn classify(code: &CodeRow, content: &SlotContent) -> Option<Finding> {
    if !settled(code) {
        return None;
    }
    let programmed = code.programmed_code.as_deref()?;
    match content {
        SlotContent::Empty | SlotContent::Unavailable => Some(Finding::Removed),
        SlotContent::Code(p) if p != programmed => Some(Finding::Modified { pin: p.clone() }),
        // The same code, or hidden: nothing to say.
        SlotContent::Code(_) | SlotContent::Hidden => None,
    }
}

fn details(finding: &Finding) -> Value {
    json!({
        "change_type": match finding { Finding::Removed => "removed", _ => "modified" },
        "modified_fields": [{ "field": "code", "from": null, "to": null }],
    })
}

/// Record readings of a device's slots and react to outside changes. Returns the events to
/// publish and whether a managed code needs putting back.
pub fn observe(
    tx: &Tx<'_>,
    device_id: &Uuid,
    readings: &[SlotReading],
    at: &DateTime<Utc>,
) -> Result<(Vec<EventRow>, bool), StoreError> {
    let mut put_back = false;
    let mut events: Vec<EventRow> = Vec::new();
    let codes = tx.device_codes(device_id)?;
    for r in readings {
        let (state, pin) = slot_state(&r.content);
        let previous = tx.observe_slot(device_id, r.slot, state, pin, at)?;
        if r.disabled {
            tx.set_slot_disabled(device_id, r.slot, true)?;
        }
        let managed = codes
            .iter()
            .find(|c| c.slot == Some(r.slot) && c.desired != Desired::Released);
        let Some(code) = managed else {
            // Unmanaged: tell when one appears or goes.
            let was = previous.as_ref().is_some_and(|p| p.state.holds_code());
            let changed = previous
                .as_ref()
                .is_none_or(|p| p.state != state || p.code.as_deref() != pin);
            if state.holds_code() && changed {
                let id = tx.slot(device_id, r.slot)?.map(|s| s.unmanaged_id);
                events.push(tx.add_event(
                    "access_code.unmanaged.created",
                    Some(device_id),
                    id.as_ref(),
                    at,
                    json!({ "slot": r.slot }),
                )?);
            } else if was && !state.holds_code() {
                let id = previous.as_ref().map(|p| p.unmanaged_id);
                events.push(tx.add_event(
                    "access_code.unmanaged.removed",
                    Some(device_id),
                    id.as_ref(),
                    at,
                    json!({ "slot": r.slot }),
                )?);
            }
            continue;
        };
        let Some(finding) = classify_reading(code, &r.content, r.disabled) else {
            continue;
        };
        let mut c = code.clone();
        let removed = finding == Finding::Removed;
        let how = match finding {
            Finding::Removed => "removed",
            Finding::Disabled => "disabled",
            Finding::Modified { .. } => "changed",
        };
        let d = details(&finding);
        if c.allow_external_modification {
            let msg = format!("the code was {how} outside zwlock; the change stands");
            for w in [
                warning_code::CODE_MODIFIED_EXTERNAL_TO_SEAM,
                warning_code::EXTERNAL_MODIFICATION_IN_EFFECT,
            ] {
                tx.set_issue_with(&c.access_code_id, IssueKind::Warning, w, &msg, at, &d)?;
            }
            match &finding {
                Finding::Modified { pin } => {
                    // The code is what the lock now holds.
                    c.code = pin.clone();
                    c.programmed_code = Some(pin.clone());
                }
                Finding::Removed => {
                    // Released: the slot is free, the code waits for an update.
                    c.desired = Desired::Released;
                    c.programmed_code = None;
                    c.status = CodeStatus::Unset;
                    c.slot = None;
                    c.is_scheduled_on_device = false;
                    c.attempts = 0;
                    c.next_attempt_at = None;
                    c.pending_since = None;
                }
                // Disabled at the lock, and allowed: it stays there as the lock has it.
                Finding::Disabled => {}
            }
        } else {
            let msg = format!(
                "the code was {how} outside zwlock (at the keypad or by other software); zwlock puts it back"
            );
            for e in [
                error_code::CODE_MODIFIED_EXTERNAL_TO_SEAM,
                error_code::CONFLICTING_EXTERNAL_MODIFICATION,
            ] {
                tx.set_issue_with(&c.access_code_id, IssueKind::Error, e, &msg, at, &d)?;
            }
            c.programmed_code = None;
            c.status = CodeStatus::Unset;
            c.attempts = 0;
            c.next_attempt_at = None;
            c.pending_since = None;
            put_back = true;
        }
        c.updated_at = *at;
        tx.put_code(&c)?;
        tracing::warn!(access_code_id = %c.access_code_id, slot = r.slot, how, allowed = c.allow_external_modification, "code changed outside zwlock");
        let change_type = if removed { "removed" } else { "modified" };
        let event = if removed {
            "access_code.deleted_external_to_seam"
        } else {
            "access_code.modified_external_to_seam"
        };
        events.push(tx.add_event(
            event,
            Some(device_id),
            Some(&c.access_code_id),
            at,
            json!({ "slot": r.slot, "change_type": change_type }),
        )?);
        if removed {
            // Clients matching on the generic event see it too.
            events.push(tx.add_event(
                "access_code.modified_external_to_seam",
                Some(device_id),
                Some(&c.access_code_id),
                at,
                json!({ "slot": r.slot, "change_type": "removed" }),
            )?);
        }
    }
    mark_conflicts(tx, device_id, at)?;
    Ok((events, put_back))
}

/// A managed code whose PIN an unmanaged code on the same lock also holds (programmed at the
/// keypad or by other software after the managed one was declared) carries
/// `conflicting_unmanaged_access_code_id`, naming the unmanaged code, while that lasts.
fn mark_conflicts(tx: &Tx<'_>, device_id: &Uuid, at: &DateTime<Utc>) -> Result<(), StoreError> {
    let codes = tx.device_codes(device_id)?;
    let held: std::collections::BTreeSet<u16> = codes.iter().filter_map(|c| c.slot).collect();
    let slots = tx.slots(device_id)?;
    let unmanaged: Vec<_> = slots
        .iter()
        .filter(|s| s.state == SlotState::Occupied && !held.contains(&s.slot))
        .collect();
    for c in codes
        .iter()
        .filter(|c| c.desired == Desired::Active && !c.removing_unmanaged)
    {
        let kind = error_code::CONFLICTING_UNMANAGED_ACCESS_CODE_ID;
        match unmanaged
            .iter()
            .find(|s| s.code.as_deref() == Some(c.code.as_str()))
        {
            Some(s) => {
                if !tx.has_issue(&c.access_code_id, IssueKind::Error, kind)? {
                    let msg = format!(
                        "an unmanaged code with the same PIN is on the lock (slot {}, unmanaged access code {})",
                        s.slot, s.unmanaged_id
                    );
                    let d = json!({ "unmanaged_access_code_id": s.unmanaged_id });
                    tx.set_issue_with(&c.access_code_id, IssueKind::Error, kind, &msg, at, &d)?;
                }
            }
            None => {
                tx.clear_issue(&c.access_code_id, IssueKind::Error, kind)?;
            }
        }
    }
    Ok(())
}

/// Every code gone (a factory reset, "all user codes deleted"): each known slot reads empty.
pub fn all_cleared(
    tx: &Tx<'_>,
    device_id: &Uuid,
    at: &DateTime<Utc>,
) -> Result<(Vec<EventRow>, bool), StoreError> {
    let mut slots: Vec<u16> = tx
        .slots(device_id)?
        .iter()
        .filter(|s| s.state.holds_code())
        .map(|s| s.slot)
        .collect();
    slots.extend(tx.device_codes(device_id)?.iter().filter_map(|c| c.slot));
    slots.sort_unstable();
    slots.dedup();
    let readings: Vec<SlotReading> = slots
        .into_iter()
        .map(|slot| SlotReading {
            slot,
            content: SlotContent::Empty,
            disabled: false,
        })
        .collect();
    observe(tx, device_id, &readings, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled_code() -> CodeRow {
        CodeRow {
            status: CodeStatus::Set,
            slot: Some(3),
            programmed_code: Some("2468".into()),
            ..CodeRow::new(Uuid::nil(), "2468".into(), Utc::now())
        }
    }

    #[test]
    fn only_real_differences_of_settled_codes_count() {
        let c = settled_code();
        assert_eq!(classify(&c, &SlotContent::Code("2468".into())), None);
        assert_eq!(
            classify(&c, &SlotContent::Hidden),
            None,
            "masked never counts"
        );
        assert_eq!(classify(&c, &SlotContent::Empty), Some(Finding::Removed));
        assert_eq!(
            classify(&c, &SlotContent::Unavailable),
            Some(Finding::Removed)
        );
        assert_eq!(
            classify(&c, &SlotContent::Code("1111".into())),
            Some(Finding::Modified { pin: "1111".into() })
        );
        // Being written, deleted or released: the engine's business, not an outside change.
        for status in [CodeStatus::Setting, CodeStatus::Removing] {
            let busy = CodeRow {
                status,
                ..settled_code()
            };
            assert_eq!(classify(&busy, &SlotContent::Empty), None, "{status}");
        }
        let deleted = CodeRow {
            desired: Desired::Deleted,
            ..settled_code()
        };
        assert_eq!(classify(&deleted, &SlotContent::Empty), None);
        let never = CodeRow {
            programmed_code: None,
            ..settled_code()
        };
        assert_eq!(classify(&never, &SlotContent::Empty), None);
    }

    #[test]
    fn details_never_carry_pins() {
        let d = details(&Finding::Modified { pin: "9753".into() });
        assert_eq!(d["change_type"], "modified");
        assert!(!d.to_string().contains("9753"));
        assert_eq!(d["modified_fields"][0]["field"], "code");
        assert_eq!(details(&Finding::Removed)["change_type"], "removed");
    }
}
