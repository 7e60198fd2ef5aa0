//! Codes on a lock that no managed code owns: take them over, or remove them.

use serde_json::{json, Value};
use uuid::Uuid;

use super::ctx::Ctx;
use super::error::EngineError;
use super::intents::attempt;
use super::model::{self, AccessCode};
use crate::store::{CodeRow, CodeStatus, Desired, SlotRow, SlotState, Tx};

/// Make an unmanaged code managed: it keeps its slot and PIN, and is kept true from now on.
pub(super) fn convert_to_managed(
    ctx: &Ctx,
    unmanaged_id: &Uuid,
    allow_external_modification: bool,
) -> Result<AccessCode, EngineError> {
    let now = ctx.now();
    let (row, events) = ctx.repo.write(|tx| {
            let slot = unmanaged_slot(tx, unmanaged_id)?;
            if slot.state != SlotState::Occupied || slot.code.is_none() {
                return Err(EngineError::Unsupported(
                    "the lock hides this code's PIN, so it cannot be managed; delete it and create a new one".into(),
                ));
            }
            let pin = slot.code.clone().expect("checked");
            // It keeps the name it had as an unmanaged code.
            let name = tx
                .device(&slot.device_id)?
                .map(|d| model::UnmanagedAccessCode::from_slot(&slot, &d).name)
                .unwrap_or_default();
            let row = CodeRow {
                access_code_id: *unmanaged_id,
                name,
                status: CodeStatus::Set,
                slot: Some(slot.slot),
                programmed_code: Some(pin.clone()),
                allow_external_modification,
                ..CodeRow::new(slot.device_id, pin, now)
            };
            tx.put_code(&row)?;
            let ev = tx.add_event(
                "access_code.unmanaged.converted_to_managed",
                Some(&row.device_id),
                Some(&row.access_code_id),
                &now,
                json!({}),
            )?;
            Ok::<_, EngineError>((row, vec![ev]))
        })?;
    ctx.publish(events);
    ctx.wake(row.device_id);
    super::queries::get(ctx, &row.access_code_id)
}

/// Remove an unmanaged code from its lock. Returns the action attempt.
pub(super) fn delete_unmanaged(ctx: &Ctx, unmanaged_id: &Uuid) -> Result<Value, EngineError> {
    let now = ctx.now();
    let (device_id, attempt) = ctx.repo.write(|tx| {
        let slot = unmanaged_slot(tx, unmanaged_id)?;
        // A transient managed record that the reconciler removes and then forgets.
        let pin = slot.code.clone().unwrap_or_default();
        let row = CodeRow {
            access_code_id: *unmanaged_id,
            status: CodeStatus::Removing,
            desired: Desired::Deleted,
            slot: Some(slot.slot),
            programmed_code: Some(pin.clone()),
            pending_since: Some(now),
            removing_unmanaged: true,
            ..CodeRow::new(slot.device_id, pin, now)
        };
        tx.put_code(&row)?;
        let attempt = attempt(tx, "DELETE_ACCESS_CODE", "success", Some(json!({})), &now)?;
        Ok::<_, EngineError>((row.device_id, attempt))
    })?;
    ctx.record(
        "access_code.unmanaged.removed",
        Some(&device_id),
        Some(unmanaged_id),
        json!({}),
    )?;
    ctx.wake(device_id);
    Ok(model::attempt_json(&attempt))
}

fn unmanaged_slot(tx: &Tx<'_>, id: &Uuid) -> Result<SlotRow, EngineError> {
    let not_found = || EngineError::NotFound {
        what: "unmanaged access code",
        id: id.to_string(),
    };
    let slot = tx.slot_by_unmanaged_id(id)?.ok_or_else(not_found)?;
    if !super::queries::unmanaged_slots(tx, &slot.device_id)?
        .iter()
        .any(|u| u.unmanaged_id == *id)
    {
        return Err(not_found());
    }
    Ok(slot)
}

/// Make a managed code unmanaged (Seam's `update` with `is_managed: false`): it stays on the
/// lock as it is, under the same id, and zwlock stops keeping it.
pub(super) fn to_unmanaged(ctx: &Ctx, id: &Uuid) -> Result<Value, EngineError> {
    let now = ctx.now();
    let (device, attempt) = ctx.repo.write(|tx| {
        let row = tx
            .code(id)?
            .filter(|c| c.desired == Desired::Active && !c.removing_unmanaged)
            .ok_or_else(|| EngineError::NotFound {
                what: "access code",
                id: id.to_string(),
            })?;
        let (Some(slot), Some(pin), CodeStatus::Set) =
            (row.slot, row.programmed_code.clone(), row.status)
        else {
            return Err(EngineError::NotAllowed {
                kind: "access_code_not_on_device",
                message: "only a code that is on the lock can become unmanaged".into(),
            });
        };
        tx.observe_slot(&row.device_id, slot, SlotState::Occupied, Some(&pin), &now)?;
        tx.set_unmanaged_id(&row.device_id, slot, id)?;
        let mut forgotten = row.clone();
        forgotten.deleted_at = Some(now);
        forgotten.slot = None;
        forgotten.updated_at = now;
        tx.put_code(&forgotten)?;
        super::attempts::fail(
            tx,
            id,
            "access_code_unmanaged",
            "the code became unmanaged",
            &now,
        )?;
        let ev = tx.add_event(
            "access_code.unmanaged.created",
            Some(&row.device_id),
            Some(id),
            &now,
            json!({ "slot": slot, "converted_from_managed": true }),
        )?;
        let a = attempt(
            tx,
            super::attempts::UPDATE,
            "success",
            Some(json!({})),
            &now,
        )?;
        Ok::<_, EngineError>((row.device_id, (a, ev)))
    })?;
    ctx.publish(vec![attempt.1]);
    ctx.wake(device);
    Ok(model::attempt_json(&attempt.0))
}
