//! Intents: what users ask of their access codes (create, update, delete). Each is
//! validated, then committed with its event and action attempt before any frame is sent.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::attempts;
use super::ctx::Ctx;
use super::error::EngineError;
use super::model::{self, error_code, rfc3339, warning_code, AccessCode};
use super::render::render;
use super::requests::{CreateRequest, IdempotencyKey, UpdateRequest};
use super::validate::{self, rules, CodeRules, FieldError};
use crate::store::{
    AttemptRow, CodeRow, CodeStatus, Desired, IssueKind, KeyRow, MutationKind, SlotRow, StoreError,
    Tx,
};

/// An action attempt that does not follow a code's work.
pub(super) fn attempt(
    tx: &Tx<'_>,
    action_type: &str,
    status: &str,
    result: Option<Value>,
    now: &DateTime<Utc>,
) -> Result<AttemptRow, StoreError> {
    attempts::new(tx, action_type, status, result, None, now)
}

/// The attempt of a create or update: pending while the lock has work to do for it.
fn code_attempt(
    ctx: &Ctx,
    tx: &Tx<'_>,
    action_type: &str,
    row: &CodeRow,
    radio: bool,
    now: &DateTime<Utc>,
) -> Result<AttemptRow, StoreError> {
    if radio {
        attempts::pending(tx, action_type, &row.access_code_id, now)
    } else {
        let code = render(ctx, tx, row)?;
        attempt(
            tx,
            action_type,
            "success",
            Some(json!({ "access_code": code })),
            now,
        )
    }
}

/// The live codes linked by a common_code_key (but `except`), oldest first.
fn group(tx: &Tx<'_>, key: &str, except: Option<&Uuid>) -> Result<Vec<CodeRow>, StoreError> {
    Ok(tx
        .list_codes(&crate::store::CodeFilter {
            common_code_key: Some(key.to_string()),
            include_backups: true,
            ..Default::default()
        })?
        .into_iter()
        .filter(|c| c.desired != Desired::Deleted && Some(&c.access_code_id) != except)
        .collect())
}

/// Whether the code should be on the lock now (and so is being set, not deferred).
fn wanted_now(ctx: &Ctx, row: &CodeRow, now: &DateTime<Utc>) -> bool {
    row.desired == Desired::Active
        && super::planner::in_window(row, now, ctx.clock.is_synchronized()) == Some(true)
}

/// PINs in use on a device: managed codes (not deleted) and readable unmanaged codes.
pub(super) fn pins_in_use(
    tx: &Tx<'_>,
    device_id: &Uuid,
) -> Result<(Vec<CodeRow>, Vec<SlotRow>), StoreError> {
    let codes = tx.device_codes(device_id)?;
    let claimed: BTreeSet<u16> = codes.iter().filter_map(|c| c.slot).collect();
    let unmanaged = tx
        .slots(device_id)?
        .into_iter()
        .filter(|s| s.state.holds_code() && !claimed.contains(&s.slot))
        .collect();
    Ok((codes, unmanaged))
}

pub(super) fn check_pin_free(
    tx: &Tx<'_>,
    device_id: &Uuid,
    pin: &str,
    except: Option<&Uuid>,
    same_key: Option<&str>,
) -> Result<(), EngineError> {
    // By index: a lock with thousands of codes costs no more than an empty one.
    let codes = tx.codes_with_pin(device_id, pin)?;
    if let Some(c) = codes.iter().find(|c| {
        c.desired != Desired::Deleted
            && !c.removing_unmanaged
            && Some(&c.access_code_id) != except
            && !(same_key.is_some() && c.common_code_key.as_deref() == same_key)
    }) {
        return Err(EngineError::Conflict {
            kind: "duplicate_access_code",
            message: "an access code with this PIN already exists on the lock".into(),
            other_id: Some(c.access_code_id),
        });
    }
    for s in tx.slots_with_pin(device_id, pin)? {
        if s.state.holds_code() && !tx.slot_held(device_id, s.slot)? {
            return Err(EngineError::Conflict {
                kind: error_code::CONFLICTING_UNMANAGED_ACCESS_CODE_ID,
                message: format!(
                    "an unmanaged code with this PIN is on the lock in slot {} (unmanaged access code {})",
                    s.slot, s.unmanaged_id
                ),
                other_id: Some(s.unmanaged_id),
            });
        }
    }
    Ok(())
}

/// A random PIN free on the lock: tried by index first, the whole lock read only when the
/// lock is so full that random tries keep hitting taken PINs.
fn free_pin(
    tx: &Tx<'_>,
    device_id: &Uuid,
    len: u8,
    rules: &CodeRules,
) -> Result<Option<String>, EngineError> {
    let none = BTreeSet::new();
    for _ in 0..32 {
        let Some(pin) = validate::generate_pin(len, &rules.characters, &none) else {
            return Ok(None);
        };
        if check_pin_free(tx, device_id, &pin, None, None).is_ok() {
            return Ok(Some(pin));
        }
    }
    let (codes, unmanaged) = pins_in_use(tx, device_id)?;
    let taken: BTreeSet<String> = codes
        .iter()
        .map(|c| c.code.clone())
        .chain(unmanaged.iter().filter_map(|s| s.code.clone()))
        .collect();
    Ok(validate::generate_pin(len, &rules.characters, &taken))
}

/// Offline codes (algorithmic PINs) are for other kinds of locks.
fn offline(requested: Option<bool>) -> Option<FieldError> {
    (requested == Some(true)).then(|| {
        FieldError::new(
            "is_offline_access_code",
            "Z-Wave locks do not support offline access codes",
        )
    })
}

/// What a create's idempotency key made on its lock, as it is now: the code and its action
/// attempt (None: the key is new there). The key with other parameters is refused, and so is
/// a key whose code has since been deleted: a retry never brings a deleted code back.
pub(super) fn keyed(
    ctx: &Ctx,
    key: &IdempotencyKey,
    device_id: &Uuid,
    now: &DateTime<Utc>,
) -> Result<Option<(AccessCode, Value)>, EngineError> {
    ctx.repo.read(|tx| {
        let made = tx.keyed(&key.route, &key.key, now)?;
        if made.iter().any(|k| k.fingerprint != key.fingerprint) {
            return Err(EngineError::KeyReused);
        }
        let Some(k) = made.iter().find(|k| k.device_id == *device_id) else {
            return Ok(None);
        };
        let Some(row) = tx
            .code(&k.access_code_id)?
            .filter(|c| c.desired != Desired::Deleted)
        else {
            return Err(EngineError::Conflict {
                kind: "idempotency_key_used",
                message: format!(
                    "the access code this idempotency key created ({}) has since been deleted; use a new key for a new code",
                    k.access_code_id
                ),
                other_id: Some(k.access_code_id),
            });
        };
        let attempt = tx
            .attempt(&k.action_attempt_id)?
            .map(|a| model::attempt_json(&a))
            .unwrap_or(Value::Null);
        Ok(Some((render(ctx, tx, &row)?, attempt)))
    })
}

/// Create an access code. Returns it and the (already successful) action attempt.
pub(super) fn create(ctx: &Ctx, req: CreateRequest) -> Result<(AccessCode, Value), EngineError> {
    let now = ctx.now();
    // A retried create (its first answer lost, the daemon maybe restarted since) finds what
    // the first one made.
    if let Some(key) = &req.idempotency {
        if let Some(made) = keyed(ctx, key, &req.device_id, &now)? {
            return Ok(made);
        }
    }
    let mut errors: Vec<FieldError> = offline(req.is_offline_access_code).into_iter().collect();
    if let Some(n) = &req.name {
        if let Err(e) = validate::check_name(n) {
            errors.push(e);
        }
    }
    if let Err(e) = validate::check_window(req.starts_at, req.ends_at, now) {
        errors.push(e);
    }
    if req.use_backup_access_code_pool == Some(true) && req.ends_at.is_none() {
        errors.push(FieldError::new(
            "use_backup_access_code_pool",
            "the backup code pool is for time-bound codes only (give starts_at and ends_at)",
        ));
    }
    let allow_ext = req
        .allow_external_modification
        .or(req.is_external_modification_allowed)
        .unwrap_or(false);
    let is_one_time = req.is_one_time_use.unwrap_or(false);
    let (row, events, attempt) = ctx.repo.write(|tx| {
        let device = tx
            .device(&req.device_id)?
            .ok_or_else(|| EngineError::NotFound {
                what: "device",
                id: req.device_id.to_string(),
            })?;
        let rules = rules(&device);
        if let Some(l) = req.preferred_code_length {
            // Seam takes 4-20; a length inside that the lock does not take falls back to its
            // shortest (Seam's rule), one outside is a mistake.
            if !(4..=20).contains(&l) {
                errors.push(FieldError::new(
                    "preferred_code_length",
                    format!(
                        "expected 4-20 (this lock takes {:?})",
                        rules.supported_lengths()
                    ),
                ));
            }
        }
        if let Some(c) = &req.code {
            if let Err(e) = rules.check(c) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(EngineError::Invalid(errors));
        }
        // Codes sharing a common_code_key share one PIN (Seam's guarantee).
        let group_pin = match &req.common_code_key {
            Some(key) => group(tx, key, None)?.first().map(|c| c.code.clone()),
            None => None,
        };
        let pin = match (&req.code, group_pin) {
            (Some(c), Some(g)) if *c != g => {
                return Err(EngineError::invalid(
                    "code",
                    "codes with the same common_code_key share one PIN: give the group's PIN, or none to take it",
                ))
            }
            (_, Some(g)) => {
                rules.check(&g).map_err(|e| EngineError::Invalid(vec![e]))?;
                check_pin_free(tx, &device.device_id, &g, None, req.common_code_key.as_deref())?;
                g
            }
            (Some(c), None) => {
                check_pin_free(tx, &device.device_id, c, None, None)?;
                c.clone()
            }
            (None, None) => {
                let len = rules
                    .length_for(req.preferred_code_length)
                    .ok_or_else(|| {
                        EngineError::invalid(
                            "code",
                            "the lock takes no PIN length zwlock can offer",
                        )
                    })?;
                free_pin(tx, &device.device_id, len, &rules)?
                    .ok_or_else(|| EngineError::invalid("code", "no free PIN of that length"))?
            }
        };
        let mut row = CodeRow {
            name: req.name.clone(),
            common_code_key: req.common_code_key.clone(),
            starts_at: req.starts_at,
            ends_at: req.ends_at,
            allow_external_modification: allow_ext,
            is_one_time_use: is_one_time,
            prefer_native_scheduling: req.prefer_native_scheduling.unwrap_or(true),
            ..CodeRow::new(device.device_id, pin, now)
        };
        // Being set from the start (a code for later is deferred instead).
        let radio = wanted_now(ctx, &row, &now);
        if radio {
            row.status = CodeStatus::Setting;
            row.pending_since = Some(now);
        }
        tx.put_code(&row)?;
        if req.use_backup_access_code_pool == Some(true) {
            super::backup::enable(tx, &device)?;
        }
        let ev = tx.add_event(
            "access_code.created",
            Some(&row.device_id),
            Some(&row.access_code_id),
            &now,
            json!({}),
        )?;
        let attempt = code_attempt(ctx, tx, attempts::CREATE, &row, radio, &now)?;
        if let Some(key) = &req.idempotency {
            tx.put_key(&KeyRow {
                route: key.route.clone(),
                key: key.key.clone(),
                device_id: row.device_id,
                fingerprint: key.fingerprint.clone(),
                access_code_id: row.access_code_id,
                action_attempt_id: attempt.action_attempt_id,
                created_at: now,
            })?;
        }
        Ok::<_, EngineError>((row, vec![ev], attempt))
    })?;
    ctx.publish(events);
    ctx.wake(row.device_id);
    tracing::info!(access_code_id = %row.access_code_id, device_id = %row.device_id, "access code created");
    let code = ctx.repo.read(|tx| render(ctx, tx, &row))?;
    Ok((code, model::attempt_json(&attempt)))
}

/// Change an access code.
pub(super) fn update(ctx: &Ctx, req: UpdateRequest) -> Result<(AccessCode, Value), EngineError> {
    let now = ctx.now();
    let (row, events, attempt) = ctx.repo.write(|tx| {
        let mut row = tx
            .code(&req.access_code_id)?
            .filter(|c| c.desired != Desired::Deleted)
            .ok_or_else(|| EngineError::NotFound {
                what: "access code",
                id: req.access_code_id.to_string(),
            })?;
        let device = tx
            .device(&row.device_id)?
            .ok_or_else(|| EngineError::NotFound {
                what: "device",
                id: row.device_id.to_string(),
            })?;
        let before = row.clone();
        let mut errors: Vec<FieldError> =
            offline(req.is_offline_access_code).into_iter().collect();
        if let Some(n) = &req.name {
            if let Some(n) = n {
                if let Err(e) = validate::check_name(n) {
                    errors.push(e);
                }
            }
            row.name = n.clone();
        }
        if let Some(c) = &req.code {
            match rules(&device).check(c) {
                Ok(()) => row.code = c.clone(),
                Err(e) => errors.push(e),
            }
        }
        if let Some(s) = req.starts_at {
            row.starts_at = s;
        }
        if let Some(e) = req.ends_at {
            row.ends_at = e;
        }
        match req.code_type.as_deref() {
            None => {}
            Some("ongoing") => {
                row.starts_at = None;
                row.ends_at = None;
            }
            Some("time_bound") if row.starts_at.is_none() || row.ends_at.is_none() => errors.push(
                FieldError::new("type", "time_bound needs starts_at and ends_at"),
            ),
            Some("time_bound") => {}
            Some(other) => errors.push(FieldError::new(
                "type",
                format!("'{other}' is not ongoing or time_bound"),
            )),
        }
        if row.starts_at != before.starts_at || row.ends_at != before.ends_at {
            if let Err(e) = validate::check_window(row.starts_at, row.ends_at, now) {
                errors.push(e);
            }
        }
        if let Some(a) = req
            .allow_external_modification
            .or(req.is_external_modification_allowed)
        {
            row.allow_external_modification = a;
        }
        if let Some(o) = req.is_one_time_use {
            row.is_one_time_use = o;
        }
        if let Some(p) = req.prefer_native_scheduling {
            row.prefer_native_scheduling = p;
        }
        if !errors.is_empty() {
            return Err(EngineError::Invalid(errors));
        }
        if row.code != before.code {
            if let Some(key) = &row.common_code_key {
                let others = group(tx, key, Some(&row.access_code_id))?.len();
                if others > 0 {
                    return Err(EngineError::invalid(
                        "code",
                        format!("this code shares its PIN with {others} other code(s) by common_code_key; a PIN cannot be changed for one of them alone"),
                    ));
                }
            }
            check_pin_free(
                tx,
                &row.device_id,
                &row.code,
                Some(&row.access_code_id),
                None,
            )?;
            // A new PIN deserves a fresh start.
            row.attempts = 0;
            row.next_attempt_at = None;
            row.pending_since = None;
            for code in [
                error_code::FAILED_TO_SET_ON_DEVICE,
                error_code::DUPLICATE_CODE_ON_DEVICE,
            ] {
                tx.clear_issue(&row.access_code_id, IssueKind::Error, code)?;
            }
        }
        let changed = changed_properties(&before, &row);
        if !changed.is_empty() {
            // An update settles an outside change: what is declared now is what counts.
            for (kind, code) in [
                (IssueKind::Error, error_code::CODE_MODIFIED_EXTERNAL_TO_SEAM),
                (
                    IssueKind::Error,
                    error_code::CONFLICTING_EXTERNAL_MODIFICATION,
                ),
                (
                    IssueKind::Warning,
                    warning_code::CODE_MODIFIED_EXTERNAL_TO_SEAM,
                ),
                (
                    IssueKind::Warning,
                    warning_code::EXTERNAL_MODIFICATION_IN_EFFECT,
                ),
            ] {
                tx.clear_issue(&row.access_code_id, kind, code)?;
            }
            // A code released by an allowed outside removal is declared again (a new
            // name alone does not put it back on the lock).
            let only_name = changed.iter().all(|c| c["property"] == "name");
            if row.desired == Desired::Released && !only_name {
                row.desired = Desired::Active;
                row.attempts = 0;
                row.next_attempt_at = None;
                row.pending_since = None;
            }
        }
        row.updated_at = now;
        if row.is_scheduled_on_device
            && (row.starts_at != before.starts_at
                || row.ends_at != before.ends_at
                || row.prefer_native_scheduling != before.prefer_native_scheduling)
        {
            // The schedule on the lock is stale: reprogram (or remove) it.
            row.is_scheduled_on_device = false;
        }
        // What the lock has to catch up with, and since when.
        let on_lock = row.programmed_code.is_some();
        if let Some(old) = row
            .programmed_code
            .clone()
            .filter(|p| *p != row.code && row.code != before.code)
        {
            row.mutate(
                MutationKind::UpdatingCode,
                now,
                json!({ "code": old }),
                json!({ "code": row.code }),
            );
        }
        if row.programmed_code.as_deref() == Some(row.code.as_str()) {
            row.settle(&[MutationKind::UpdatingCode]);
        }
        let window_moved = row.starts_at != before.starts_at || row.ends_at != before.ends_at;
        if window_moved && (on_lock || before.is_scheduled_on_device) {
            let frame = |c: &CodeRow| {
                json!({
                    "starts_at": c.starts_at.as_ref().map(rfc3339),
                    "ends_at": c.ends_at.as_ref().map(rfc3339),
                })
            };
            row.mutate(
                MutationKind::UpdatingTimeFrame,
                now,
                frame(&before),
                frame(&row),
            );
        }
        let wanted = wanted_now(ctx, &row, &now);
        let stale_pin = row.programmed_code.as_deref() != Some(&row.code);
        if row.status == CodeStatus::Set && stale_pin {
            // Not usable as declared until the new PIN lands (updating_code says what changes).
            row.status = CodeStatus::Unset;
        }
        let radio = (wanted && (stale_pin || row.code != before.code))
            || (window_moved && (on_lock || wanted));
        tx.put_code(&row)?;
        let mut events = Vec::new();
        if !changed.is_empty() {
            events.push(tx.add_event(
                "access_code.changed",
                Some(&row.device_id),
                Some(&row.access_code_id),
                &now,
                json!({ "changed_properties": changed }),
            )?);
        }
        let attempt = code_attempt(ctx, tx, attempts::UPDATE, &row, radio, &now)?;
        Ok::<_, EngineError>((row, events, attempt))
    })?;
    ctx.publish(events);
    ctx.wake(row.device_id);
    let code = ctx.repo.read(|tx| render(ctx, tx, &row))?;
    Ok((code, model::attempt_json(&attempt)))
}

/// Delete an access code: it is removed from the lock, then forgotten.
pub(super) fn delete(ctx: &Ctx, access_code_id: &Uuid) -> Result<Value, EngineError> {
    let now = ctx.now();
    let (device_id, events, attempt) = ctx.repo.write(|tx| {
        let mut row = tx
            .code(access_code_id)?
            .filter(|c| c.desired != Desired::Deleted)
            .ok_or_else(|| EngineError::NotFound {
                what: "access code",
                id: access_code_id.to_string(),
            })?;
        mark_deleted(&mut row, &now);
        tx.put_code(&row)?;
        let on_lock = row.deleted_at.is_none();
        // Earlier attempts on the code are overtaken by the delete.
        attempts::fail(
            tx,
            &row.access_code_id,
            "access_code_deleted",
            "the code was deleted before this finished",
            &now,
        )?;
        // A backup pulled for this code goes with it.
        if let Some(mut b) = row
            .pulled_backup_access_code_id
            .map(|b| tx.code(&b))
            .transpose()?
            .flatten()
            .filter(|b| b.is_backup && b.desired != Desired::Deleted)
        {
            mark_deleted(&mut b, &now);
            tx.put_code(&b)?;
        }
        let ev = tx.add_event(
            "access_code.deleted",
            Some(&row.device_id),
            Some(&row.access_code_id),
            &now,
            json!({ "code": row.code }),
        )?;
        let attempt = if on_lock {
            attempts::pending(tx, attempts::DELETE, &row.access_code_id, &now)?
        } else {
            attempt(tx, attempts::DELETE, "success", Some(json!({})), &now)?
        };
        Ok::<_, EngineError>((row.device_id, vec![ev], attempt))
    })?;
    ctx.publish(events);
    ctx.wake(device_id);
    Ok(model::attempt_json(&attempt))
}

/// A code the user deleted: removed from the lock first when it may be there (its slot is
/// kept until the lock confirms), forgotten at once otherwise.
fn mark_deleted(row: &mut CodeRow, now: &chrono::DateTime<chrono::Utc>) {
    row.desired = Desired::Deleted;
    row.updated_at = *now;
    row.attempts = 0;
    row.next_attempt_at = None;
    row.pending_since = None;
    if super::planner::maybe_on_lock(row) && row.slot.is_some() {
        row.status = CodeStatus::Removing;
        row.settle(&[MutationKind::UpdatingCode, MutationKind::UpdatingTimeFrame]);
        row.mutate(MutationKind::Deleting, *now, json!(null), json!(null));
    } else {
        row.deleted_at = Some(*now);
        row.slot = None;
    }
}

/// Properties that differ between two versions of a code, for `access_code.changed`.
fn changed_properties(a: &CodeRow, b: &CodeRow) -> Vec<Value> {
    let mut v = Vec::new();
    let mut diff = |name: &str, x: Option<String>, y: Option<String>| {
        if x != y {
            v.push(json!({ "property": name, "from": x, "to": y }));
        }
    };
    diff("code", Some(a.code.clone()), Some(b.code.clone()));
    diff("name", a.name.clone(), b.name.clone());
    diff(
        "starts_at",
        a.starts_at.as_ref().map(rfc3339),
        b.starts_at.as_ref().map(rfc3339),
    );
    diff(
        "ends_at",
        a.ends_at.as_ref().map(rfc3339),
        b.ends_at.as_ref().map(rfc3339),
    );
    diff(
        "is_external_modification_allowed",
        Some(a.allow_external_modification.to_string()),
        Some(b.allow_external_modification.to_string()),
    );
    diff(
        "is_one_time_use",
        Some(a.is_one_time_use.to_string()),
        Some(b.is_one_time_use.to_string()),
    );
    v
}

/// Pull a backup code for `access_code_id`: a spare that already works on the lock takes the
/// original's name and window. Pulling again returns the same backup. Returns (original,
/// backup).
pub(super) fn pull_backup(
    ctx: &Ctx,
    access_code_id: &Uuid,
) -> Result<(AccessCode, AccessCode), EngineError> {
    let now = ctx.now();
    let (original, backup, events) = ctx.repo.write(|tx| {
        let mut original = tx
            .code(access_code_id)?
            .filter(|c| !c.is_backup && c.desired == Desired::Active)
            .ok_or_else(|| EngineError::NotFound {
                what: "access code",
                id: access_code_id.to_string(),
            })?;
        let device = tx
            .device(&original.device_id)?
            .ok_or_else(|| EngineError::NotFound {
                what: "device",
                id: original.device_id.to_string(),
            })?;
        if original.ends_at.is_none() {
            return Err(EngineError::NotAllowed {
                kind: "access_code_not_time_bound",
                message: "backup codes are pulled for time-bound codes only".into(),
            });
        }
        if device.backup_pool_size == 0 {
            return Err(EngineError::Unsupported("the lock has no backup code pool (create a code with use_backup_access_code_pool: true)".into()));
        }
        if let Some(b) = original.pulled_backup_access_code_id {
            let backup = tx.code(&b)?.ok_or_else(|| EngineError::NotFound {
                what: "access code",
                id: b.to_string(),
            })?;
            return Ok((original, backup, Vec::new()));
        }
        let mut backup = super::backup::spares(tx, &device.device_id)?
            .into_iter()
            .find(|c| c.status == CodeStatus::Set)
            .ok_or_else(|| EngineError::Conflict {
                kind: "empty_backup_access_code_pool",
                message: "no backup code is ready on the lock yet".into(),
                other_id: None,
            })?;
        backup.pulled_backup_access_code_id = Some(original.access_code_id);
        backup.name = original.name.clone();
        // It works at once (it is already on the lock) and until the original ends.
        backup.starts_at = original.starts_at.map(|s| s.min(now));
        backup.ends_at = original.ends_at;
        backup.updated_at = now;
        original.pulled_backup_access_code_id = Some(backup.access_code_id);
        original.updated_at = now;
        tx.put_code(&backup)?;
        tx.put_code(&original)?;
        let ev = tx.add_event(
            "access_code.backup_access_code_pulled",
            Some(&original.device_id),
            Some(&original.access_code_id),
            &now,
            json!({ "backup_access_code_id": backup.access_code_id }),
        )?;
        Ok((original, backup, vec![ev]))
    })?;
    ctx.publish(events);
    ctx.wake(original.device_id);
    Ok((
        super::queries::get(ctx, &original.access_code_id)?,
        super::queries::get(ctx, &backup.access_code_id)?,
    ))
}
