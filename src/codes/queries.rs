//! Reads for the API: codes (paginated), unmanaged codes, devices, events, action attempts.
//! They run on the read-only connection, so they never wait behind the engine's writes.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::ctx::Ctx;
use super::error::EngineError;
use super::model::{self, rfc3339, AccessCode, UnmanagedAccessCode};
use super::render::{condition, render, render_all};
use crate::store::{CodeFilter, DeviceRow, EventFilter, EventRow, Notifications, SlotRow, Tx};

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Cursors are opaque to clients: `created_at~id` of the last item of a page.
fn encode_cursor(t: &DateTime<Utc>, id: &Uuid) -> String {
    format!("{}~{id}", rfc3339(t))
}

fn decode_cursor(c: &str) -> Result<(DateTime<Utc>, Uuid), EngineError> {
    let bad = || {
        EngineError::Invalid(vec![super::validate::FieldError::new(
            "page_cursor",
            "not a cursor this server gave",
        )])
    };
    let (t, id) = c.split_once('~').ok_or_else(bad)?;
    let t = DateTime::parse_from_rfc3339(t)
        .map_err(|_| bad())?
        .with_timezone(&Utc);
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((t, id))
}

/// Occupied slots no managed code holds: the lock's unmanaged codes.
pub(super) fn unmanaged_slots(
    tx: &Tx<'_>,
    device_id: &Uuid,
) -> Result<Vec<SlotRow>, crate::store::StoreError> {
    let claimed: std::collections::BTreeSet<u16> = tx
        .device_codes(device_id)?
        .iter()
        .filter_map(|c| c.slot)
        .collect();
    Ok(tx
        .slots(device_id)?
        .into_iter()
        .filter(|s| s.state.holds_code() && !claimed.contains(&s.slot))
        .collect())
}

/// A managed code, by id (also while it is being removed after a delete).
pub(super) fn get(ctx: &Ctx, access_code_id: &Uuid) -> Result<AccessCode, EngineError> {
    ctx.repo
        .read(|tx| {
            tx.code(access_code_id)?
                .filter(|row| !row.removing_unmanaged)
                .map(|row| render(ctx, tx, &row))
                .transpose()
        })?
        .ok_or_else(|| EngineError::NotFound {
            what: "access code",
            id: access_code_id.to_string(),
        })
}

/// A managed code, by lock and PIN.
pub(super) fn get_by_code(
    ctx: &Ctx,
    device_id: &Uuid,
    code: &str,
) -> Result<AccessCode, EngineError> {
    ctx.repo
        .read(|tx| {
            let rows = tx.device_codes(device_id)?;
            rows.iter()
                .find(|r| {
                    r.code == code
                        && !r.removing_unmanaged
                        && (!r.is_backup || r.pulled_backup_access_code_id.is_some())
                })
                .map(|row| render(ctx, tx, row))
                .transpose()
        })?
        .ok_or_else(|| EngineError::NotFound {
            what: "access code",
            id: format!("device {device_id}, code ****"),
        })
}

/// A page of managed codes matching `filter`.
pub(super) fn list_page(
    ctx: &Ctx,
    mut filter: CodeFilter,
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<Page<AccessCode>, EngineError> {
    if let Some(c) = cursor.filter(|c| !c.is_empty()) {
        filter.after = Some(decode_cursor(c)?);
    }
    let limit = limit.unwrap_or(55_000).clamp(1, 55_000);
    filter.limit = Some(limit + 1);
    let (mut items, more) = ctx.repo.read(|tx| {
        let mut rows = tx.list_codes(&filter)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let items = render_all(ctx, tx, &rows)?
            .into_iter()
            .zip(&rows)
            .map(|(a, r)| (a, r.created_at, r.access_code_id))
            .collect::<Vec<_>>();
        Ok::<_, EngineError>((items, more))
    })?;
    let next_cursor = if more {
        items.last().map(|(_, t, id)| encode_cursor(t, id))
    } else {
        None
    };
    Ok(Page {
        items: items.drain(..).map(|(a, _, _)| a).collect(),
        next_cursor,
    })
}

/// Unmanaged codes of a device: occupied slots no managed code owns.
pub(super) fn unmanaged(
    ctx: &Ctx,
    device_id: &Uuid,
) -> Result<Vec<UnmanagedAccessCode>, EngineError> {
    ctx.repo.read(|tx| {
        let Some(device) = tx.device(device_id)? else {
            return Ok(Vec::new());
        };
        Ok(unmanaged_slots(tx, device_id)?
            .iter()
            .map(|slot| UnmanagedAccessCode::from_slot(slot, &device))
            .collect())
    })
}

/// An unmanaged code by id, or by lock and PIN.
pub(super) fn unmanaged_get(
    ctx: &Ctx,
    id: Option<&Uuid>,
    device_and_code: Option<(&Uuid, &str)>,
) -> Result<UnmanagedAccessCode, EngineError> {
    let found = ctx.repo.read(|tx| {
        let slot = match (id, device_and_code) {
            (Some(id), _) => tx.slot_by_unmanaged_id(id)?,
            (None, Some((d, code))) => tx
                .slots(d)?
                .into_iter()
                .find(|s| s.code.as_deref() == Some(code)),
            _ => None,
        };
        let Some(slot) = slot else {
            return Ok::<_, EngineError>(None);
        };
        // Still unmanaged: occupied and no managed code holds the slot.
        if !unmanaged_slots(tx, &slot.device_id)?
            .iter()
            .any(|u| u.unmanaged_id == slot.unmanaged_id)
        {
            return Ok(None);
        }
        let device = tx.device(&slot.device_id)?;
        Ok(device.map(|d| UnmanagedAccessCode::from_slot(&slot, &d)))
    })?;
    found.ok_or_else(|| EngineError::NotFound {
        what: "unmanaged access code",
        id: id.map(Uuid::to_string).unwrap_or_default(),
    })
}

pub(super) fn device_row(ctx: &Ctx, id: &Uuid) -> Result<DeviceRow, EngineError> {
    ctx.repo
        .read(|tx| tx.device(id))?
        .ok_or_else(|| EngineError::NotFound {
            what: "device",
            id: id.to_string(),
        })
}

/// The device object of the API (Seam's shape, with a `zwave` section of our own).
pub(super) fn device_json(ctx: &Ctx, d: &DeviceRow) -> Value {
    let cond = condition(ctx, d);
    let errors: Vec<Value> = cond
        .errors()
        .into_iter()
        .map(|e| json!({ "error_code": e.error_code, "message": e.message, "created_at": e.created_at, "is_device_error": true }))
        .collect();
    let battery = d.battery_level.map(|b| f64::from(b.min(100)) / 100.0);
    let battery_status = d.battery_level.map(|b| match b {
        0..=10 => "critical",
        11..=25 => "low",
        26..=90 => "good",
        _ => "full",
    });
    let f = &d.facts;
    let manufacturer_name = f.manufacturer_id.map(|m| match m {
        0x0090 => "Kwikset".to_string(),
        0x003B => "Schlage".to_string(),
        0x0129 => "Yale".to_string(),
        other => format!("Z-Wave manufacturer 0x{other:04x}"),
    });
    let facts = json!({
        "manufacturer_id": f.manufacturer_id,
        "product_type": f.product_type,
        "product_id": f.product_id,
        "user_code_version": f.user_code_version,
        "supports_checksum": f.supports_checksum,
        "supports_bulk_reports": f.supports_bulk_reports,
        "supports_schedule": f.supports_schedule,
        "security_class": f.security_class,
        "notifications": match f.notifications {
            Notifications::AccessControl => "access_control",
            Notifications::LegacyAlarm => "legacy_alarm",
            Notifications::None => "none",
        },
    });
    let interview = json!({ "security_class": f.security_class });
    let rules = super::validate::rules(d);
    // What Seam's constraint types say of this lock: digits it lacks, and names (kept by
    // zwlock, not the lock) up to their limit.
    let mut constraints = vec![json!({
        "constraint_type": "name_length",
        "min_length": 1,
        "max_length": super::validate::MAX_NAME_CHARS,
    })];
    if !rules.characters.contains('0') {
        constraints.push(json!({ "constraint_type": "no_zeros" }));
    }
    let model_name = match (f.product_type, f.product_id) {
        (Some(t), Some(p)) => format!("0x{t:04x}/0x{p:04x}"),
        _ => "Z-Wave keypad lock".into(),
    };
    json!({
        "device_id": d.device_id,
        "device_type": "zwave_lock",
        "display_name": d.name,
        "nickname": d.name,
        "workspace_id": model::workspace_id(),
        "connected_account_id": model::workspace_id(),
        "created_at": rfc3339(&d.created_at),
        "is_managed": true,
        "custom_metadata": {},
        "space_ids": [],
        "capabilities_supported": ["access_code", "lock", "battery"],
        "can_program_online_access_codes": true,
        "can_program_offline_access_codes": false,
        "can_remotely_lock": true,
        "can_remotely_unlock": true,
        "errors": errors,
        "warnings": [],
        "properties": {
            "online": d.online && cond.hub_connected,
            "name": d.name,
            "appearance": { "name": d.name },
            "model": {
                "display_name": model_name,
                "manufacturer_display_name": manufacturer_name,
                "has_built_in_keypad": true,
            },
            "manufacturer": manufacturer_name,
            "locked": d.locked,
            "battery_level": battery,
            "battery": battery.map(|l| json!({ "level": l, "status": battery_status })),
            "supported_code_lengths": rules.supported_lengths(),
            "max_active_codes_supported": d.code_capacity.unwrap_or(d.slot_count),
            "code_constraints": constraints,
            "supports_backup_access_code_pool": true,
            "backup_access_code_pool_enabled": d.backup_pool_size > 0,
            "has_native_entry_events": f.notifications != Notifications::None,
            "zwave": {
                "node_id": d.node_id,
                "slot_count": d.slot_count,
                "code_capacity": d.code_capacity,
                "reserved_slots": d.reserved_slots,
                "code_characters": d.code_characters,
                "last_contact_at": d.last_contact_at.as_ref().map(rfc3339),
                "facts": facts,
                // What the interview learnt that users ask about.
                "interview": interview,
            },
        },
    })
}

/// An action attempt as the API returns it.
pub(super) fn action_attempt(ctx: &Ctx, id: &Uuid) -> Result<Value, EngineError> {
    ctx.repo
        .read(|tx| tx.attempt(id))?
        .map(|a| model::attempt_json(&a))
        .ok_or_else(|| EngineError::NotFound {
            what: "action attempt",
            id: id.to_string(),
        })
}

/// Events matching `filter`.
pub(super) fn events(ctx: &Ctx, filter: &EventFilter) -> Result<Vec<EventRow>, EngineError> {
    Ok(ctx.repo.read(|tx| tx.events(filter))?)
}
