//! The objects users see, shaped like Seam's: access codes (managed and unmanaged), their
//! errors and warnings, events and action attempts. Built from store rows.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::store::{
    AttemptRow, CodeRow, CodeStatus, DeviceRow, EventRow, IssueKind, IssueRow, SlotRow, SlotState,
};

/// Error codes on access codes.
pub mod error_code {
    pub const FAILED_TO_SET_ON_DEVICE: &str = "failed_to_set_on_device";
    pub const FAILED_TO_REMOVE_FROM_DEVICE: &str = "failed_to_remove_from_device";
    pub const CODE_MODIFIED_EXTERNAL_TO_SEAM: &str = "code_modified_external_to_seam";
    /// Seam's current name for the same condition (carries the same details).
    pub const CONFLICTING_EXTERNAL_MODIFICATION: &str = "conflicting_external_modification";
    pub const DUPLICATE_CODE_ON_DEVICE: &str = "duplicate_code_on_device";
    pub const CONFLICTING_UNMANAGED_ACCESS_CODE_ID: &str = "conflicting_unmanaged_access_code_id";
    pub const NO_SPACE_FOR_ACCESS_CODE_ON_DEVICE: &str = "no_space_for_access_code_on_device";
    /// Device-level, copied onto codes.
    pub const DEVICE_DISCONNECTED: &str = "device_disconnected";
    pub const HUB_DISCONNECTED: &str = "hub_disconnected";
    /// Device-level: the lock must be reached securely and cannot be (no code goes to it).
    pub const SECURE_INCLUSION_FAILED: &str = "secure_inclusion_failed";
}

/// Warning codes on access codes.
pub mod warning_code {
    pub const DELAY_IN_SETTING_ON_DEVICE: &str = "delay_in_setting_on_device";
    pub const DELAY_IN_REMOVING_FROM_DEVICE: &str = "delay_in_removing_from_device";
    pub const CODE_MODIFIED_EXTERNAL_TO_SEAM: &str = "code_modified_external_to_seam";
    /// Seam's current name for an allowed outside change that stands.
    pub const EXTERNAL_MODIFICATION_IN_EFFECT: &str = "external_modification_in_effect";
}

pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An error on an access code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeError {
    pub error_code: String,
    pub message: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_access_code_error: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_device_error: Option<bool>,
    /// Fields particular to the error (e.g. `change_type`, `modified_fields`).
    #[serde(flatten)]
    pub details: serde_json::Map<String, Value>,
}

/// A warning on an access code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeWarning {
    pub warning_code: String,
    pub message: String,
    pub created_at: String,
    /// Fields particular to the warning.
    #[serde(flatten)]
    pub details: serde_json::Map<String, Value>,
}

/// How the lock shows a code's name: Z-Wave User Code locks store no names, so always null.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Appearance {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

/// A managed access code, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessCode {
    pub access_code_id: Uuid,
    pub device_id: Uuid,
    pub workspace_id: Uuid,
    pub code: Option<String>,
    pub name: Option<String>,
    pub common_code_key: Option<String>,
    /// Always null: Z-Wave User Code locks store no names.
    pub appearance: Option<Appearance>,
    #[serde(rename = "type")]
    pub code_type: &'static str,
    pub status: CodeStatus,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub created_at: String,
    pub errors: Vec<CodeError>,
    pub warnings: Vec<CodeWarning>,
    pub pending_mutations: Vec<Value>,
    pub is_managed: bool,
    pub is_scheduled_on_device: bool,
    pub is_backup_access_code_available: bool,
    pub is_backup: bool,
    pub pulled_backup_access_code_id: Option<Uuid>,
    pub is_waiting_for_code_assignment: bool,
    pub is_external_modification_allowed: bool,
    pub is_one_time_use: bool,
    pub is_offline_access_code: bool,
    /// The lock slot (user id) the code occupies, when it has one. Not a Seam field.
    pub slot: Option<u16>,
    /// When a one-time code was used at the keypad. Not a Seam field.
    pub used_at: Option<String>,
}

/// A code found on a lock that no managed code owns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnmanagedAccessCode {
    pub access_code_id: Uuid,
    pub device_id: Uuid,
    pub workspace_id: Uuid,
    /// Null when the lock hides its codes.
    pub code: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub code_type: &'static str,
    pub status: &'static str,
    pub created_at: String,
    pub errors: Vec<CodeError>,
    pub warnings: Vec<CodeWarning>,
    pub is_managed: bool,
    pub slot: u16,
}

/// The one workspace of a local hub: a fixed id, so clients that expect one get one.
pub fn workspace_id() -> Uuid {
    Uuid::from_u128(0x7a10_c0de_0000_4000_8000_0000_0000_0001)
}

/// Device-level conditions copied onto every code of a device.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceCondition {
    pub hub_connected: bool,
    pub device_online: bool,
    pub since: Option<DateTime<Utc>>,
    /// The lock must be reached securely and cannot be: nothing goes to it.
    pub secure_inclusion_failed: bool,
}

impl DeviceCondition {
    pub fn errors(&self) -> Vec<CodeError> {
        let at = rfc3339(&self.since.unwrap_or_else(Utc::now));
        let mut v = Vec::new();
        if self.secure_inclusion_failed {
            v.push(CodeError {
                error_code: error_code::SECURE_INCLUSION_FAILED.into(),
                message: "secure inclusion failed: exclude and include again".into(),
                created_at: at.clone(),
                is_access_code_error: None,
                is_device_error: Some(true),
                details: Default::default(),
            });
        }
        if !self.hub_connected {
            v.push(CodeError {
                error_code: error_code::HUB_DISCONNECTED.into(),
                message: "the Z-Wave stick is disconnected".into(),
                created_at: at.clone(),
                is_access_code_error: None,
                is_device_error: Some(true),
                details: Default::default(),
            });
        } else if !self.device_online {
            v.push(CodeError {
                error_code: error_code::DEVICE_DISCONNECTED.into(),
                message: "the lock does not answer (asleep, out of range or without battery)"
                    .into(),
                created_at: at,
                is_access_code_error: None,
                is_device_error: Some(true),
                details: Default::default(),
            });
        }
        v
    }
}

fn details(i: &IssueRow) -> serde_json::Map<String, Value> {
    match &i.details {
        Some(Value::Object(m)) => m.clone(),
        _ => Default::default(),
    }
}

impl AccessCode {
    /// The API object of a code; `issues` are its live errors and warnings (expired ones
    /// already left out).
    pub fn from_rows(
        row: &CodeRow,
        issues: &[IssueRow],
        device: DeviceCondition,
        backup_available: bool,
    ) -> Self {
        let mut errors: Vec<CodeError> = issues
            .iter()
            .filter(|i| i.kind == IssueKind::Error)
            .map(|i| CodeError {
                error_code: i.code.clone(),
                message: i.message.clone(),
                created_at: rfc3339(&i.created_at),
                is_access_code_error: Some(true),
                is_device_error: None,
                details: details(i),
            })
            .collect();
        errors.extend(device.errors());
        let warnings = issues
            .iter()
            .filter(|i| i.kind == IssueKind::Warning)
            .map(|i| CodeWarning {
                warning_code: i.code.clone(),
                message: i.message.clone(),
                created_at: rfc3339(&i.created_at),
                details: details(i),
            })
            .collect();
        let created = rfc3339(&row.created_at);
        let pending = pending_mutations(row);
        AccessCode {
            access_code_id: row.access_code_id,
            device_id: row.device_id,
            workspace_id: workspace_id(),
            code: Some(row.code.clone()),
            name: row.name.clone(),
            common_code_key: row.common_code_key.clone(),
            appearance: None,
            code_type: if row.starts_at.is_some() {
                "time_bound"
            } else {
                "ongoing"
            },
            status: row.status,
            starts_at: row.starts_at.as_ref().map(rfc3339),
            ends_at: row.ends_at.as_ref().map(rfc3339),
            created_at: created,
            errors,
            warnings,
            pending_mutations: pending,
            is_managed: true,
            is_scheduled_on_device: row.is_scheduled_on_device,
            is_backup_access_code_available: backup_available,
            is_backup: row.is_backup,
            pulled_backup_access_code_id: if row.is_backup {
                None
            } else {
                row.pulled_backup_access_code_id
            },
            is_waiting_for_code_assignment: false,
            is_external_modification_allowed: row.allow_external_modification,
            is_one_time_use: row.is_one_time_use,
            is_offline_access_code: false,
            slot: row.slot,
            used_at: row.used_at.as_ref().map(rfc3339),
        }
    }
}

/// What the lock has not caught up with yet, in Seam's vocabulary: recorded changes (a new PIN
/// or window for a code on the lock, a delete), with the time each was asked for, and what the
/// code's state implies (being created; deferred until its window).
pub fn pending_mutations(row: &CodeRow) -> Vec<Value> {
    use crate::store::MutationKind;
    let mut pending = Vec::new();
    let has = |k: MutationKind| row.mutations.iter().any(|m| m.kind == k);
    for m in &row.mutations {
        let at = rfc3339(&m.created_at);
        pending.push(match m.kind {
            MutationKind::UpdatingCode => json!({
                "mutation_code": "updating_code", "created_at": at,
                "message": "putting the new PIN on the lock",
                "from": m.from, "to": m.to,
            }),
            MutationKind::UpdatingTimeFrame => json!({
                "mutation_code": "updating_time_frame", "created_at": at,
                "message": "applying the new window on the lock",
                "from": m.from, "to": m.to,
            }),
            MutationKind::Deleting => json!({
                "mutation_code": "deleting", "created_at": at,
                "message": "removing the code from the lock",
            }),
        });
    }
    let since = rfc3339(&row.pending_since.unwrap_or(row.updated_at));
    match row.status {
        CodeStatus::Setting if row.programmed_code.is_none() && !has(MutationKind::Deleting) => {
            pending.push(json!({
                "mutation_code": "creating", "created_at": rfc3339(&row.created_at),
                "message": "programming the code on the lock",
            }))
        }
        // Coming off the lock without a delete: its window ended (or a one-time code was used).
        CodeStatus::Removing
            if !has(MutationKind::Deleting) && !has(MutationKind::UpdatingTimeFrame) =>
        {
            pending.push(json!({
                "mutation_code": "deleting", "created_at": since,
                "message": "removing the code from the lock",
            }))
        }
        CodeStatus::Unset
            if row.starts_at.is_some()
                && row.programmed_code.is_none()
                && !has(MutationKind::UpdatingTimeFrame) =>
        {
            pending.push(json!({
                "mutation_code": "deferring_creation", "created_at": rfc3339(&row.created_at),
                "message": "the code is programmed when its window starts",
                "scheduled_at": row.starts_at.as_ref().map(rfc3339),
            }))
        }
        _ => {}
    }
    pending
}

impl UnmanagedAccessCode {
    pub fn from_slot(slot: &SlotRow, device: &DeviceRow) -> Self {
        UnmanagedAccessCode {
            access_code_id: slot.unmanaged_id,
            device_id: slot.device_id,
            workspace_id: workspace_id(),
            code: if slot.state == SlotState::Occupied {
                slot.code.clone()
            } else {
                None
            },
            name: Some(format!("{} slot {}", device.name, slot.slot)),
            code_type: "ongoing",
            // Seam has no "disabled": `unset` is its status for a code that exists on the
            // device but does not work there.
            status: if slot.disabled { "unset" } else { "set" },
            created_at: rfc3339(&slot.reported_at),
            errors: Vec::new(),
            warnings: Vec::new(),
            is_managed: false,
            slot: slot.slot,
        }
    }
}

/// An event, as the API returns it.
pub fn event_json(e: &EventRow) -> Value {
    let mut v = json!({
        "event_id": e.event_id,
        "event_type": e.event_type,
        "workspace_id": workspace_id(),
        "created_at": rfc3339(&e.created_at),
        "occurred_at": rfc3339(&e.occurred_at),
    });
    let obj = v.as_object_mut().expect("object");
    if let Some(d) = e.device_id {
        obj.insert("device_id".into(), json!(d));
    }
    if let Some(c) = e.access_code_id {
        obj.insert("access_code_id".into(), json!(c));
        obj.insert("connected_account_id".into(), json!(workspace_id()));
    }
    if let Some(p) = e.payload.as_object() {
        for (k, val) in p {
            obj.entry(k.clone()).or_insert_with(|| val.clone());
        }
    }
    v
}

/// An action attempt, as the API returns it.
pub fn attempt_json(a: &AttemptRow) -> Value {
    json!({
        "action_attempt_id": a.action_attempt_id,
        "action_type": a.action_type,
        "status": a.status,
        "result": a.result,
        "error": a.error,
    })
}
