//! What locks say on their own (port events), recorded in the store. Each event's handling
//! returns [`Effect`]s: what the engine task must do about it (look at a lock again, read a
//! slot, ...), so this module never touches the task's state.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::apply;
use super::ctx::Ctx;
use super::observe;
use crate::lock::{LockInfo, PortEvent};
use crate::store::{DeviceFacts, DeviceRow, LockFacts, Notifications, StoreError, Tx};

/// What the engine task does after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Plan the lock again.
    Look(Uuid),
    /// Read these slots of the lock.
    Read(Uuid, Vec<u16>),
    /// Read these slots soon, unless the lock reports them first.
    ReadSoon(Uuid, Vec<u16>),
    /// The lock reported these slots itself.
    Reported(Uuid, Vec<u16>),
    /// Something changed on the lock that zwlock did not do: plan it again, and the next
    /// checksum is a new baseline.
    Changed(Uuid),
    /// The lock answers again: stop leaving it alone.
    Answers(Uuid),
    /// The stick is back: every lock.
    StickBack,
    /// The lock left the network.
    Gone(Uuid),
}

fn device_of(ctx: &Ctx, node: u16) -> Result<Option<DeviceRow>, StoreError> {
    ctx.repo.read(|tx| tx.device_by_node(node))
}

/// Record what a lock said; returns what the engine task must do about it.
pub(crate) fn handle(ctx: &Ctx, ev: PortEvent) -> Result<Vec<Effect>, StoreError> {
    let mut effects = Vec::new();
    let now = ctx.now();
    match ev {
        PortEvent::Connected => {
            ctx.set_hub_connected(true);
            ctx.repo.write(|tx| tx.set_state("hub_connected", "true"))?;
            effects.push(Effect::StickBack);
        }
        PortEvent::Disconnected { reason } => {
            let was = ctx.set_hub_connected(false);
            ctx.repo
                .write(|tx| tx.set_state("hub_connected", "false"))?;
            if was {
                tracing::warn!(%reason, "the stick is gone; codes wait for it");
                for d in ctx.repo.read(|tx| tx.devices())? {
                    ctx.record(
                        "device.disconnected",
                        Some(&d.device_id),
                        None,
                        json!({ "error_code": "hub_disconnected", "reason": reason }),
                    )?;
                }
            }
        }
        PortEvent::Lock(info) => effects.push(on_lock(ctx, &info, &now)?),
        PortEvent::Reachable { node, reachable } => {
            let Some(d) = device_of(ctx, node)? else {
                return Ok(effects);
            };
            ctx.repo
                .write(|tx| tx.set_device_online(&d.device_id, reachable, &now))?;
            let (t, payload) = if reachable {
                ("device.connected", json!({}))
            } else {
                (
                    "device.disconnected",
                    json!({ "error_code": "device_disconnected" }),
                )
            };
            ctx.record(t, Some(&d.device_id), None, payload)?;
            if reachable {
                effects.push(Effect::Answers(d.device_id));
            }
        }
        PortEvent::Contact { node, at } => {
            if let Some(d) = device_of(ctx, node)? {
                ctx.repo.write(|tx| tx.touch_device(&d.device_id, &at))?;
            }
        }
        PortEvent::Slots { node, readings, at } => {
            if let Some(d) = device_of(ctx, node)? {
                let (events, put_back) = ctx
                    .repo
                    .write(|tx| observe::observe(tx, &d.device_id, &readings, &at))?;
                ctx.publish(events);
                effects.push(Effect::Reported(
                    d.device_id,
                    readings.iter().map(|r| r.slot).collect(),
                ));
                effects.push(if put_back {
                    Effect::Changed(d.device_id)
                } else {
                    Effect::Look(d.device_id)
                });
            }
        }
        PortEvent::Keypad {
            node,
            unlocked,
            slot,
            at,
        } => {
            if let Some(d) = device_of(ctx, node)? {
                effects.extend(on_keypad(ctx, &d, unlocked, slot, &at)?);
            }
        }
        PortEvent::SlotChanged { node, slot } => {
            if let Some(d) = device_of(ctx, node)? {
                effects.push(Effect::ReadSoon(d.device_id, vec![slot]));
            }
        }
        PortEvent::AllCleared { node, at } => {
            if let Some(d) = device_of(ctx, node)? {
                tracing::warn!(node, "the lock reports all codes deleted");
                let (events, _) = ctx
                    .repo
                    .write(|tx| observe::all_cleared(tx, &d.device_id, &at))?;
                ctx.publish(events);
                effects.push(Effect::Changed(d.device_id));
            }
        }
        PortEvent::Duplicate { node, slot } => {
            let Some(d) = device_of(ctx, node)? else {
                return Ok(effects);
            };
            let events = ctx.repo.write(|tx| {
                let code = tx
                    .device_codes(&d.device_id)?
                    .into_iter()
                    .find(|c| c.slot == Some(slot));
                match code {
                    Some(c) => apply::duplicate(tx, &ctx.config, &c, &now),
                    None => Ok(Vec::new()),
                }
            })?;
            ctx.publish(events);
        }
        PortEvent::Battery { node, level } => {
            if let Some(d) = device_of(ctx, node)? {
                ctx.repo
                    .write(|tx| tx.set_device_state(&d.device_id, Some(level), None))?;
            }
        }
        PortEvent::Bolt { node, locked } => {
            if let Some(d) = device_of(ctx, node)? {
                ctx.repo
                    .write(|tx| tx.set_device_state(&d.device_id, None, Some(locked)))?;
            }
        }
        PortEvent::Removed { node } => {
            let Some(d) = device_of(ctx, node)? else {
                return Ok(effects);
            };
            let codes = ctx.repo.write(|tx| {
                let codes = tx.device_codes(&d.device_id)?;
                tx.delete_device(&d.device_id)?;
                Ok::<_, StoreError>(codes)
            })?;
            tracing::info!(node, device_id = %d.device_id, codes = codes.len(), "lock left the network; its codes are forgotten");
            for c in codes {
                ctx.record(
                    "access_code.deleted",
                    Some(&d.device_id),
                    Some(&c.access_code_id),
                    json!({ "reason": "device_removed" }),
                )?;
            }
            ctx.record(
                "device.removed",
                Some(&d.device_id),
                None,
                json!({ "node_id": node }),
            )?;
            effects.push(Effect::Gone(d.device_id));
        }
    }
    Ok(effects)
}

fn on_lock(ctx: &Ctx, info: &LockInfo, now: &chrono::DateTime<Utc>) -> Result<Effect, StoreError> {
    let facts = DeviceFacts {
        node_id: info.node,
        name: ctx.config.lock_names.get(&info.node).cloned(),
        interview_cache: info.cache.clone(),
        facts: LockFacts {
            manufacturer_id: info.manufacturer.map(|m| m.0),
            product_type: info.manufacturer.map(|m| m.1),
            product_id: info.manufacturer.map(|m| m.2),
            user_code_version: info.caps.user_code_version,
            supports_checksum: info.caps.checksum,
            supports_bulk_reports: info.caps.bulk_reports,
            supports_schedule: info.caps.schedule,
            notifications: match info.notifications {
                crate::lock::Notifications::AccessControl => Notifications::AccessControl,
                crate::lock::Notifications::LegacyAlarm => Notifications::LegacyAlarm,
                crate::lock::Notifications::None => Notifications::None,
            },
            security_class: info.security_class,
            security_failure: info.security_failure.map(|f| match f {
                crate::driver::SecurityFailure::KeyExchangeFailed => {
                    crate::store::SecurityProblem::KeyExchangeFailed
                }
                crate::driver::SecurityFailure::NoKey => crate::store::SecurityProblem::NoKey,
            }),
        },
        slot_count: info.caps.slots,
        min_code_length: 4,
        max_code_length: 10,
        code_characters: info.characters.clone(),
        battery_level: info.battery_level,
        locked: info.locked,
    };
    let (device, events) = ctx.repo.write(|tx: &Tx<'_>| {
        let existed = tx.device_by_node(facts.node_id)?.is_some();
        let d = tx.upsert_device(&facts, now)?;
        let mut events = Vec::new();
        if !existed {
            events.push(tx.add_event(
                "device.added",
                Some(&d.device_id),
                None,
                now,
                json!({ "node_id": facts.node_id }),
            )?);
        }
        Ok::<_, StoreError>((d, events))
    })?;
    if !events.is_empty() {
        tracing::info!(node = facts.node_id, device_id = %device.device_id, slots = facts.slot_count, "lock added");
    }
    ctx.publish(events);
    Ok(Effect::Look(device.device_id))
}

fn on_keypad(
    ctx: &Ctx,
    device: &DeviceRow,
    unlocked: bool,
    slot: Option<u16>,
    at: &chrono::DateTime<Utc>,
) -> Result<Vec<Effect>, StoreError> {
    let id = device.device_id;
    let now = ctx.now();
    let (code, known, events) = ctx.repo.write(|tx| {
        let code = match slot {
            Some(s) => tx
                .device_codes(&id)?
                .into_iter()
                .find(|c| c.slot == Some(s)),
            None => None,
        };
        tx.set_device_state(&id, None, Some(!unlocked))?;
        let mut events = vec![tx.add_event(
            if unlocked {
                "lock.unlocked"
            } else {
                "lock.locked"
            },
            Some(&id),
            code.as_ref().map(|c| &c.access_code_id),
            &now,
            json!({
                "method": "keycode",
                "access_code_is_managed": code.is_some(),
                "slot": slot,
                "occurred_at": super::model::rfc3339(at),
            }),
        )?];
        // A one-time code has done its job: it comes off the lock.
        if let Some(c) = code
            .as_ref()
            .filter(|c| c.is_one_time_use && c.used_at.is_none() && unlocked)
        {
            if let Some(mut row) = tx.code(&c.access_code_id)? {
                row.used_at = Some(now);
                row.updated_at = now;
                tx.put_code(&row)?;
            }
            events.push(tx.add_event(
                "access_code.used",
                Some(&id),
                Some(&c.access_code_id),
                &now,
                json!({ "one_time_use": true }),
            )?);
            tracing::info!(access_code_id = %c.access_code_id, "one-time code used; removing it");
        }
        let known = match slot {
            Some(s) => tx.slot(&id, s)?.is_some(),
            None => true,
        };
        Ok::<_, StoreError>((code, known, events))
    })?;
    ctx.publish(events);
    let mut effects = Vec::new();
    if code.is_some() {
        effects.push(Effect::Look(id));
    }
    // A slot zwlock has never seen: learn what is there.
    if let (Some(s), false) = (slot, known) {
        effects.push(Effect::Read(id, vec![s]));
    }
    Ok(effects)
}
