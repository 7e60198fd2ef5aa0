//! Intents over several codes or locks: one code on many locks, updates by common key,
//! generated PINs, and the door itself.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::engine::{CreateRequest, Engine, EngineError, UpdateRequest};
use super::model::{self, AccessCode};
use super::validate;
use crate::cc::{Command, DoorLockCommand};
use crate::driver::{Priority, SetOutcome};
use crate::serialapi::NodeId;
use crate::store::{AttemptRow, Store, StoreError};

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

impl Engine {
    /// Create one code on several locks. Without an explicit PIN, they share a generated PIN
    /// and a new `common_code_key`.
    pub fn create_multiple(
        &self,
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
        // A PIN every lock accepts and none holds yet.
        let pin = match &base.code {
            Some(c) => c.clone(),
            None => self.shared_pin(device_ids, base.preferred_code_length)?,
        };
        let key = (!explicit).then(|| {
            base.common_code_key
                .clone()
                .unwrap_or_else(|| Uuid::new_v4().to_string())
        });
        // Check every lock before creating anything.
        let mut fits = Vec::new();
        for d in device_ids {
            let ok = self.read(|c| {
                let device = Store::device(c, d)?;
                Ok(device.map(|dev| {
                    Self::rules(&dev).check(&pin).is_ok()
                        && Self::check_pin_free(c, d, &pin, None, None).is_ok()
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
            out.push(self.create(req)?.0);
        }
        Ok(out)
    }

    fn shared_pin(
        &self,
        device_ids: &[Uuid],
        preferred: Option<u8>,
    ) -> Result<String, EngineError> {
        self.read(|c| {
            let mut taken = BTreeSet::new();
            let mut len = preferred.unwrap_or(4);
            let mut chars: Option<String> = None;
            for d in device_ids {
                let Some(dev) = Store::device(c, d)? else {
                    continue;
                };
                let rules = Self::rules(&dev);
                len = len.max(rules.min_length).min(rules.max_length);
                chars = Some(match chars {
                    None => rules.characters.clone(),
                    Some(prev) => prev
                        .chars()
                        .filter(|ch| rules.characters.contains(*ch))
                        .collect(),
                });
                let (codes, unmanaged) = Self::pins_in_use(c, d)?;
                taken.extend(codes.into_iter().map(|r| r.code));
                taken.extend(unmanaged.into_iter().filter_map(|s| s.code));
            }
            Ok(validate::generate_pin(
                len,
                chars.as_deref().unwrap_or("0123456789"),
                &taken,
            ))
        })?
        .ok_or_else(|| EngineError::invalid("code", "no PIN is free on every device"))
    }

    /// Change the name or window of every code sharing `common_code_key`.
    pub fn update_multiple(
        &self,
        common_code_key: &str,
        name: Option<Option<String>>,
        starts_at: Option<Option<DateTime<Utc>>>,
        ends_at: Option<Option<DateTime<Utc>>>,
    ) -> Result<Vec<AccessCode>, EngineError> {
        let ids: Vec<Uuid> = self
            .read(|c| {
                Store::list_codes(
                    c,
                    &crate::store::CodeFilter {
                        common_code_key: Some(common_code_key.to_string()),
                        ..Default::default()
                    },
                )
            })?
            .into_iter()
            .filter(|r| r.desired == "active")
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
            validate::check_window(Some(*s), Some(*e), self.now())
                .map_err(|e| EngineError::Invalid(vec![e]))?;
        }
        ids.iter()
            .map(|id| {
                self.update(UpdateRequest {
                    access_code_id: *id,
                    name: name.clone(),
                    starts_at,
                    ends_at,
                    ..Default::default()
                })
                .map(|(c, _)| c)
            })
            .collect()
    }

    /// A PIN valid for the lock and free on it, without creating anything.
    pub fn generate_code(&self, device_id: &Uuid) -> Result<String, EngineError> {
        self.shared_pin(&[*device_id], None).and_then(|pin| {
            self.device_row(device_id)?;
            Ok(pin)
        })
    }

    /// Lock or unlock the door. Returns the pending action attempt; it completes in the
    /// background.
    pub fn set_door(&self, device_id: &Uuid, lock: bool) -> Result<Value, EngineError> {
        let device = self.device_row(device_id)?;
        let now = self.now();
        let action = if lock { "LOCK_DOOR" } else { "UNLOCK_DOOR" };
        let attempt =
            self.with_store(|s| Self::attempt(s.conn(), action, "pending", None, &now))?;
        let id = attempt.action_attempt_id;
        let engine = self.clone();
        tokio::spawn(async move {
            let mode = if lock {
                crate::cc::door_lock::mode::SECURED
            } else {
                crate::cc::door_lock::mode::UNSECURED
            };
            let r = engine
                .inner
                .driver
                .set(
                    NodeId(device.node_id),
                    Command::DoorLock(DoorLockCommand::OperationSet { mode }),
                    Priority::High,
                )
                .await;
            let now = engine.now();
            let (status, result, error) = match r {
                Ok(SetOutcome::Confirmed) => (
                    "success",
                    Some(json!({ "was_confirmed_by_device": true })),
                    None,
                ),
                Ok(SetOutcome::Transmitted) => (
                    "success",
                    Some(json!({ "was_confirmed_by_device": false })),
                    None,
                ),
                Ok(SetOutcome::Refused(s)) => (
                    "error",
                    None,
                    Some(
                        json!({ "type": "lock_refused", "message": format!("the lock refused (Supervision {})", s.name()) }),
                    ),
                ),
                Err(e) => (
                    "error",
                    None,
                    Some(
                        json!({ "type": if e.is_retryable() { "device_disconnected" } else { "failed" }, "message": e.to_string() }),
                    ),
                ),
            };
            let done = AttemptRow {
                action_attempt_id: id,
                action_type: action.into(),
                status: status.into(),
                result,
                error,
                created_at: attempt.created_at,
                updated_at: now,
            };
            let r: Result<(), StoreError> = engine.with_store(|s| {
                Store::put_attempt(s.conn(), &done)?;
                if status == "success" {
                    Store::set_device_state(s.conn(), &device.device_id, None, Some(lock))?;
                }
                Ok(())
            });
            if r.is_ok() && status == "success" {
                let _ = engine.record(
                    if lock { "lock.locked" } else { "lock.unlocked" },
                    Some(&device.device_id),
                    None,
                    json!({ "method": "remote", "action_attempt_id": id }),
                );
            }
        });
        Ok(model::attempt_json(&attempt))
    }
}
