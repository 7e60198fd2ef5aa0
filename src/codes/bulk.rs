//! Intents over several codes or locks: one code on many locks, updates by common key,
//! generated PINs, and the door itself.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::ctx::{Ctx, Request};
use super::error::EngineError;
use super::intents::{self, check_pin_free, pins_in_use};
use super::model::{self, AccessCode};
use super::requests::{CreateRequest, IdempotencyKey, UpdateRequest};
use super::validate;
use super::validate::rules;
use crate::store::{CodeFilter, Desired};

/// What to do when a lock cannot take the shared PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenCannotShare {
    /// Create nothing.
    #[default]
    Throw,
    /// Give that lock its own random PIN.
    CreateRandomCode,
}

/// Create one code on several locks. Without an explicit PIN, they share a generated PIN
/// and a new `common_code_key`.
pub(super) fn create_multiple(
    ctx: &Ctx,
    device_ids: &[Uuid],
    base: CreateRequest,
    when: WhenCannotShare,
) -> Result<Vec<AccessCode>, EngineError> {
    if device_ids.is_empty() {
        return Err(EngineError::invalid(
            "device_ids",
            "at least one device is required",
        ));
    }
    let unique: BTreeSet<&Uuid> = device_ids.iter().collect();
    if unique.len() != device_ids.len() {
        return Err(EngineError::invalid(
            "device_ids",
            "a device is listed twice",
        ));
    }
    let explicit = base.code.is_some();
    // A retry (its answer lost, or the daemon stopped part way) goes on with the shared PIN
    // and key the first request chose; the locks it did already answer with their code.
    let Made {
        locks: made,
        shared,
    } = match &base.idempotency {
        Some(k) => already_made(ctx, k)?,
        None => Made::default(),
    };
    // A PIN every lock accepts and none holds yet.
    let pin = match (&base.code, &shared) {
        (Some(c), _) => c.clone(),
        (None, Some((pin, _))) => pin.clone(),
        (None, None) => shared_pin(ctx, device_ids, base.preferred_code_length)?,
    };
    let key = (!explicit).then(|| {
        shared
            .map(|(_, key)| key)
            .or_else(|| base.common_code_key.clone())
            .unwrap_or_else(|| Uuid::new_v4().to_string())
    });
    // Check every lock before creating anything.
    let mut fits = Vec::new();
    for d in device_ids {
        if made.contains(d) {
            fits.push(true);
            continue;
        }
        let ok = ctx.repo.read(|tx| {
            let device = tx.device(d)?;
            Ok::<_, EngineError>(device.map(|dev| {
                rules(&dev).check(&pin).is_ok() && check_pin_free(tx, d, &pin, None, None).is_ok()
            }))
        })?;
        match ok {
            None => {
                return Err(EngineError::NotFound {
                    what: "device",
                    id: d.to_string(),
                })
            }
            Some(false) if when == WhenCannotShare::Throw => {
                return Err(EngineError::Conflict {
                    kind: "duplicate_access_code",
                    message: format!(
                        "device {d} cannot take the shared code (taken or not allowed)"
                    ),
                    other_id: None,
                })
            }
            Some(f) => fits.push(f),
        }
    }
    let mut out = Vec::new();
    for (d, fits) in device_ids.iter().zip(fits) {
        let req = CreateRequest {
            device_id: *d,
            code: fits.then(|| pin.clone()),
            common_code_key: if fits { key.clone() } else { None },
            ..base.clone()
        };
        out.push(intents::create(ctx, req)?.0);
    }
    Ok(out)
}

/// What an idempotency key made before: the locks it made a code on, and the PIN and
/// common key those codes share (if they do).
#[derive(Default)]
struct Made {
    locks: BTreeSet<Uuid>,
    shared: Option<(String, String)>,
}

/// What `key` made before. The key with other parameters is refused.
fn already_made(ctx: &Ctx, key: &IdempotencyKey) -> Result<Made, EngineError> {
    ctx.repo.read(|tx| {
        let made = tx.keyed(&key.route, &key.key, &ctx.now())?;
        if made.iter().any(|k| k.fingerprint != key.fingerprint) {
            return Err(EngineError::KeyReused);
        }
        let mut shared = None;
        for k in &made {
            if let Some(c) = tx.code(&k.access_code_id)? {
                if let (None, Some(common)) = (&shared, c.common_code_key) {
                    shared = Some((c.code, common));
                }
            }
        }
        Ok(Made {
            locks: made.iter().map(|k| k.device_id).collect(),
            shared,
        })
    })
}

fn shared_pin(
    ctx: &Ctx,
    device_ids: &[Uuid],
    preferred: Option<u8>,
) -> Result<String, EngineError> {
    ctx.repo
        .read(|tx| {
            let mut taken = BTreeSet::new();
            let mut len = preferred.unwrap_or(4);
            let mut chars: Option<String> = None;
            for d in device_ids {
                let Some(dev) = tx.device(d)? else {
                    continue;
                };
                let rules = rules(&dev);
                len = len.max(rules.min_length).min(rules.max_length);
                chars = Some(match chars {
                    None => rules.characters.clone(),
                    Some(prev) => prev
                        .chars()
                        .filter(|ch| rules.characters.contains(*ch))
                        .collect(),
                });
                let (codes, unmanaged) = pins_in_use(tx, d)?;
                taken.extend(codes.into_iter().map(|r| r.code));
                taken.extend(unmanaged.into_iter().filter_map(|s| s.code));
            }
            Ok::<_, EngineError>(validate::generate_pin(
                len,
                chars.as_deref().unwrap_or("0123456789"),
                &taken,
            ))
        })?
        .ok_or_else(|| EngineError::invalid("code", "no PIN is free on every device"))
}

/// Change the name or window of every code sharing `common_code_key`.
pub(super) fn update_multiple(
    ctx: &Ctx,
    common_code_key: &str,
    name: Option<Option<String>>,
    starts_at: Option<Option<DateTime<Utc>>>,
    ends_at: Option<Option<DateTime<Utc>>>,
) -> Result<Vec<AccessCode>, EngineError> {
    let ids: Vec<Uuid> = ctx
        .repo
        .read(|tx| {
            tx.list_codes(&CodeFilter {
                common_code_key: Some(common_code_key.to_string()),
                ..Default::default()
            })
        })?
        .into_iter()
        .filter(|r| r.desired != Desired::Deleted)
        .map(|r| r.access_code_id)
        .collect();
    if ids.is_empty() {
        return Err(EngineError::NotFound {
            what: "access codes with that common_code_key",
            id: common_code_key.into(),
        });
    }
    // Validate the window once against the first, so nothing changes when it is bad.
    if let (Some(Some(s)), Some(Some(e))) = (&starts_at, &ends_at) {
        validate::check_window(Some(*s), Some(*e), ctx.now())
            .map_err(|e| EngineError::Invalid(vec![e]))?;
    }
    ids.iter()
        .map(|id| {
            intents::update(
                ctx,
                UpdateRequest {
                    access_code_id: *id,
                    name: name.clone(),
                    starts_at,
                    ends_at,
                    ..Default::default()
                },
            )
            .map(|(c, _)| c)
        })
        .collect()
}

/// A PIN valid for the lock and free on it, without creating anything.
pub(super) fn generate_code(ctx: &Ctx, device_id: &Uuid) -> Result<String, EngineError> {
    super::queries::device_row(ctx, device_id)?;
    shared_pin(ctx, &[*device_id], None)
}

/// Lock or unlock the door. Returns the pending action attempt; the engine task completes
/// it.
pub(super) fn set_door(ctx: &Ctx, device_id: &Uuid, lock: bool) -> Result<Value, EngineError> {
    super::queries::device_row(ctx, device_id)?;
    let now = ctx.now();
    let action = if lock { "LOCK_DOOR" } else { "UNLOCK_DOOR" };
    let attempt = ctx
        .repo
        .write(|tx| intents::attempt(tx, action, "pending", None, &now))?;
    ctx.request(Request::Bolt {
        device: *device_id,
        locked: lock,
        attempt: attempt.action_attempt_id,
    })?;
    Ok(model::attempt_json(&attempt))
}

/// Z-Wave User Code holds codes of 4 to 10 digits.
const ZWAVE_LENGTHS: std::ops::RangeInclusive<u8> = 4..=10;

/// Record the code lengths a user reports for a lock.
pub(super) fn report_device_constraints(
    ctx: &Ctx,
    device_id: &Uuid,
    supported: Option<Vec<u8>>,
    min: Option<u8>,
    max: Option<u8>,
) -> Result<(), EngineError> {
    use super::validate::FieldError;
    let bad =
        |field: &'static str, m: String| EngineError::Invalid(vec![FieldError::new(field, m)]);
    let range = |field: &'static str, l: u8| {
        if ZWAVE_LENGTHS.contains(&l) {
            Ok(l)
        } else {
            Err(bad(
                field,
                format!("{l}: Z-Wave locks hold codes of 4-10 digits"),
            ))
        }
    };
    let lengths: BTreeSet<u8> = match (supported, min, max) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(bad(
                "supported_code_lengths",
                "give supported_code_lengths or min_code_length/max_code_length, not both".into(),
            ))
        }
        (Some(v), None, None) if v.is_empty() => {
            return Err(bad("supported_code_lengths", "at least one length".into()))
        }
        (Some(v), None, None) => v
            .into_iter()
            .map(|l| range("supported_code_lengths", l))
            .collect::<Result<_, _>>()?,
        (None, min, max) => {
            let lo = range("min_code_length", min.unwrap_or(*ZWAVE_LENGTHS.start()))?;
            let hi = range("max_code_length", max.unwrap_or(*ZWAVE_LENGTHS.end()))?;
            if min.is_none() && max.is_none() {
                return Err(bad(
                    "supported_code_lengths",
                    "give supported_code_lengths or min_code_length/max_code_length".into(),
                ));
            }
            if lo > hi {
                return Err(bad(
                    "min_code_length",
                    format!("{lo} is more than max_code_length {hi}"),
                ));
            }
            (lo..=hi).collect()
        }
    };
    let (lo, hi) = (
        *lengths.first().expect("not empty"),
        *lengths.last().expect("not empty"),
    );
    let refused: Vec<u8> = (lo..=hi).filter(|l| !lengths.contains(l)).collect();
    ctx.repo.write(|tx| {
        tx.device(device_id)?.ok_or_else(|| EngineError::NotFound {
            what: "device",
            id: device_id.to_string(),
        })?;
        tx.set_code_lengths(device_id, lo, hi, &refused)?;
        Ok::<_, EngineError>(())
    })?;
    tracing::info!(%device_id, min = lo, max = hi, ?refused, "code lengths reported for the lock");
    Ok(())
}
