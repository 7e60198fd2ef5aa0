//! The routes: Seam's paths, methods, parameters and response keys.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::paging::{self, pagination};
use super::params::flex;
use super::Request;
use crate::codes::{model, CreateRequest, Engine, UpdateRequest, WhenCannotShare};
use crate::store::{CodeFilter, EventFilter};

/// A route's answer: the object to return under `ok: true`.
pub type Answer = Result<Value, ApiError>;

#[derive(Debug, Deserialize)]
struct AccessCodeId {
    access_code_id: Uuid,
}

#[derive(Debug, Deserialize)]
struct DeviceId {
    device_id: Uuid,
}

/// With `sync: true`, wait for the attempt to finish, and answer with the code as it is then.
fn synced(e: &Engine, sync: bool, attempt: Value) -> Result<Value, ApiError> {
    match attempt["action_attempt_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
    {
        Some(id) if sync && attempt["status"] == "pending" => Ok(e.wait_for_attempt(&id)?),
        _ => Ok(attempt),
    }
}

/// `attempt_for_offline_device: false` asks for a refusal when a lock is offline; zwlock
/// otherwise keeps the code and sets it when the lock is back.
fn refuse_if_offline(e: &Engine, r: &Request, devices: &[Uuid]) -> Result<(), ApiError> {
    if r.params.get("attempt_for_offline_device") != Some(&Value::Bool(false)) {
        return Ok(());
    }
    for d in devices {
        if !e.device_row(d)?.online {
            return Err(ApiError::field(
                "attempt_for_offline_device",
                format!(
                    "is false and lock {d} is offline: zwlock would keep the code and set it when the lock is back; leave attempt_for_offline_device out (or true) for that"
                ),
            ));
        }
    }
    Ok(())
}

pub fn create(e: &Engine, r: &Request) -> Answer {
    let mut req: CreateRequest = r.params()?;
    req.idempotency = r.idempotency_key()?;
    let sync = req.sync == Some(true);
    // A retry of a create that was made gets its code, whatever the lock's state now.
    let made = match &req.idempotency {
        Some(key) => e.keyed(key, &req.device_id)?,
        None => None,
    };
    let (code, attempt) = match made {
        Some(made) => made,
        None => {
            refuse_if_offline(e, r, &[req.device_id])?;
            e.create(req)?
        }
    };
    let attempt = synced(e, sync, attempt)?;
    let code = if sync {
        serde_json::to_value(e.get(&code.access_code_id)?).unwrap_or(Value::Null)
    } else {
        serde_json::to_value(code).unwrap_or(Value::Null)
    };
    Ok(json!({ "access_code": code, "action_attempt": attempt }))
}

#[derive(Debug, Deserialize)]
struct CreateMultiple {
    device_ids: Vec<Uuid>,
    #[serde(default)]
    behavior_when_code_cannot_be_shared: Option<WhenCannotShare>,
    #[serde(flatten)]
    base: Value,
}

pub fn create_multiple(e: &Engine, r: &Request) -> Answer {
    let req: CreateMultiple = r.params()?;
    for d in &req.device_ids {
        e.device_row(d)?;
    }
    refuse_if_offline(e, r, &req.device_ids)?;
    let mut base = match req.base {
        Value::Object(o) => o,
        _ => Default::default(),
    };
    // The base needs a device id to parse; each lock gets its own.
    base.insert("device_id".into(), json!(Uuid::nil()));
    let mut base: CreateRequest = super::params::from_object(base)?;
    base.idempotency = r.idempotency_key()?;
    let codes = e.create_multiple(
        &req.device_ids,
        base,
        req.behavior_when_code_cannot_be_shared.unwrap_or_default(),
    )?;
    Ok(json!({ "access_codes": codes }))
}

#[derive(Debug, Deserialize)]
struct GetParams {
    access_code_id: Option<Uuid>,
    device_id: Option<Uuid>,
    code: Option<String>,
}

pub fn get(e: &Engine, r: &Request) -> Answer {
    let p: GetParams = r.params()?;
    let code = match (p.access_code_id, p.device_id, p.code) {
        (Some(id), None, None) => e.get(&id)?,
        (None, Some(d), Some(c)) => e.get_by_code(&d, &c)?,
        _ => {
            return Err(ApiError::field(
                "access_code_id",
                "give access_code_id, or device_id and code",
            ))
        }
    };
    Ok(json!({ "access_code": code }))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    device_id: Option<Uuid>,
    #[serde(default, deserialize_with = "flex::opt_vec")]
    access_code_ids: Option<Vec<Uuid>>,
    search: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_usize")]
    limit: Option<usize>,
    page_cursor: Option<String>,
}

/// A list's answer as JSON text: its objects, the pagination, `"ok": true`; serialized
/// straight from the API objects.
fn written_list<T: serde::Serialize>(items: &[T], pagination: Value) -> Result<Bytes, ApiError> {
    #[derive(serde::Serialize)]
    struct Listed<'a, T> {
        access_codes: &'a [T],
        pagination: Value,
        ok: bool,
    }
    serde_json::to_vec(&Listed {
        access_codes: items,
        pagination,
        ok: true,
    })
    .map(Bytes::from)
    .map_err(|_| ApiError::internal("the answer could not be written"))
}

pub fn list(e: &Engine, r: &Request) -> Result<Bytes, ApiError> {
    let p: ListParams = r.params()?;
    if p.device_id.is_none() && p.access_code_ids.is_none() && p.search.is_none() {
        return Err(ApiError::field(
            "device_id",
            "give device_id, access_code_ids or search",
        ));
    }
    if p.search.as_deref() == Some("") {
        return Err(ApiError::field("search", "must not be empty"));
    }
    let limit = paging::limit(p.limit)?;
    let filter = CodeFilter {
        device_id: p.device_id,
        access_code_ids: p.access_code_ids,
        search: p.search,
        ..Default::default()
    };
    let page = e.list_page(filter, Some(limit), p.page_cursor.as_deref())?;
    written_list(
        &page.items,
        pagination(&r.path, &r.params, page.next_cursor),
    )
}

pub fn update(e: &Engine, r: &Request) -> Answer {
    let req: UpdateRequest = r.params()?;
    let on_device = r.params.get("device_id").and_then(Value::as_str);
    if on_device.is_some() || r.params.contains_key("attempt_for_offline_device") {
        let code = e.get(&req.access_code_id)?;
        if on_device.is_some_and(|d| d.parse() != Ok(code.device_id)) {
            return Err(ApiError::field(
                "device_id",
                "is not the device the access code is on; a code cannot move between locks",
            ));
        }
        refuse_if_offline(e, r, &[code.device_id])?;
    }
    if r.params.get("is_managed") == Some(&json!(false)) {
        return Ok(json!({ "action_attempt": e.unmanage(&req.access_code_id)? }));
    }
    let sync = req.sync == Some(true);
    let (_, attempt) = e.update(req)?;
    Ok(json!({ "action_attempt": synced(e, sync, attempt)? }))
}

#[derive(Debug, Deserialize)]
struct UpdateMultiple {
    common_code_key: String,
    #[serde(default, deserialize_with = "some")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "some")]
    starts_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "some")]
    ends_at: Option<Option<DateTime<Utc>>>,
}

fn some<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

pub fn update_multiple(e: &Engine, r: &Request) -> Answer {
    let p: UpdateMultiple = r.params()?;
    e.update_multiple(&p.common_code_key, p.name, p.starts_at, p.ends_at)?;
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
struct DeleteParams {
    access_code_id: Uuid,
    #[serde(default)]
    sync: Option<bool>,
}

pub fn delete(e: &Engine, r: &Request) -> Answer {
    let p: DeleteParams = r.params()?;
    let attempt = e.delete(&p.access_code_id)?;
    Ok(json!({ "action_attempt": synced(e, p.sync == Some(true), attempt)? }))
}

pub fn generate_code(e: &Engine, r: &Request) -> Answer {
    let p: DeviceId = r.params()?;
    let code = e.generate_code(&p.device_id)?;
    Ok(json!({ "generated_code": { "device_id": p.device_id, "code": code } }))
}

pub fn pull_backup(e: &Engine, r: &Request) -> Answer {
    let p: AccessCodeId = r.params()?;
    let (original, backup) = e.pull_backup(&p.access_code_id)?;
    // The SDKs read `access_code`: the pulled backup. The spec also requires
    // `backup_access_code`; the original comes as `original_access_code`.
    Ok(json!({
        "access_code": backup,
        "backup_access_code": backup,
        "original_access_code": original,
    }))
}

#[derive(Debug, Deserialize)]
struct UnmanagedListParams {
    device_id: Uuid,
    search: Option<String>,
    limit: Option<usize>,
    page_cursor: Option<String>,
}

/// Whether `search` is in the name, the PIN or the id (Seam's partial match), ignoring case.
fn matches(search: &str, fields: &[Option<&str>]) -> bool {
    let s = search.to_lowercase();
    fields
        .iter()
        .flatten()
        .any(|f| f.to_lowercase().contains(&s))
}

pub fn unmanaged_list(e: &Engine, r: &Request) -> Result<Bytes, ApiError> {
    let p: UnmanagedListParams = r.params()?;
    if p.search.as_deref() == Some("") {
        return Err(ApiError::field("search", "must not be empty"));
    }
    let limit = paging::limit(p.limit)?;
    e.device_row(&p.device_id)?;
    let mut codes = e.unmanaged(&p.device_id)?;
    if let Some(s) = &p.search {
        codes.retain(|c| {
            let id = c.access_code_id.to_string();
            matches(s, &[c.name.as_deref(), c.code.as_deref(), Some(&id)])
        });
    }
    codes.sort_by_key(|c| c.slot);
    let (codes, next) = paging::page(
        codes,
        "slot",
        |c| u64::from(c.slot),
        limit,
        p.page_cursor.as_deref(),
    )?;
    written_list(&codes, pagination(&r.path, &r.params, next))
}

pub fn unmanaged_get(e: &Engine, r: &Request) -> Answer {
    let p: GetParams = r.params()?;
    let code = match (p.access_code_id, p.device_id, p.code.as_deref()) {
        (Some(id), None, None) => e.unmanaged_get(Some(&id), None)?,
        (None, Some(d), Some(c)) => e.unmanaged_get(None, Some((&d, c)))?,
        _ => {
            return Err(ApiError::field(
                "access_code_id",
                "give access_code_id, or device_id and code",
            ))
        }
    };
    Ok(json!({ "access_code": code }))
}

#[derive(Debug, Deserialize)]
struct ConvertParams {
    access_code_id: Uuid,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    allow_external_modification: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    is_external_modification_allowed: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    is_managed: Option<bool>,
}

pub fn unmanaged_convert(e: &Engine, r: &Request) -> Answer {
    let p: ConvertParams = r.params()?;
    let allow = p
        .allow_external_modification
        .or(p.is_external_modification_allowed)
        .unwrap_or(false);
    e.convert_to_managed(&p.access_code_id, allow)?;
    Ok(json!({}))
}

pub fn unmanaged_update(e: &Engine, r: &Request) -> Answer {
    let p: ConvertParams = r.params()?;
    match p.is_managed {
        Some(true) => {
            let allow = p
                .allow_external_modification
                .or(p.is_external_modification_allowed)
                .unwrap_or(false);
            e.convert_to_managed(&p.access_code_id, allow)?;
            Ok(json!({}))
        }
        Some(false) => {
            e.unmanaged_get(Some(&p.access_code_id), None)?;
            Err(ApiError::field(
                "is_managed",
                "the code is unmanaged already",
            ))
        }
        None => Err(ApiError::field("is_managed", "is required")),
    }
}

pub fn unmanaged_delete(e: &Engine, r: &Request) -> Answer {
    let p: AccessCodeId = r.params()?;
    let attempt = e.delete_unmanaged(&p.access_code_id)?;
    Ok(json!({ "action_attempt": attempt }))
}

#[derive(Debug, Deserialize)]
struct DeviceGet {
    device_id: Option<Uuid>,
    name: Option<String>,
}

pub fn devices_get(e: &Engine, r: &Request) -> Answer {
    let p: DeviceGet = r.params()?;
    let device = match (p.device_id, p.name) {
        (Some(id), _) => e.device_row(&id)?,
        (None, Some(name)) => e
            .devices()?
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| {
                ApiError::not_found("device_not_found", format!("no device named {name}"))
            })?,
        (None, None) => return Err(ApiError::field("device_id", "give device_id or name")),
    };
    Ok(json!({ "device": e.device_json(&device) }))
}

#[derive(Debug, Deserialize)]
struct DevicesListParams {
    device_ids: Option<Vec<Uuid>>,
    device_type: Option<String>,
    device_types: Option<Vec<String>>,
    limit: Option<usize>,
    page_cursor: Option<String>,
}

pub fn devices_list(e: &Engine, r: &Request) -> Answer {
    let p: DevicesListParams = r.params()?;
    let limit = paging::limit(p.limit)?;
    let types: Option<Vec<String>> = match (p.device_type, p.device_types) {
        (None, None) => None,
        (a, b) => Some(a.into_iter().chain(b.unwrap_or_default()).collect()),
    };
    let mut devices: Vec<(u16, Value)> = e
        .devices()?
        .iter()
        .filter(|d| {
            p.device_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&d.device_id))
        })
        .map(|d| (d.node_id, e.device_json(d)))
        .filter(|(_, j)| {
            types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| j["device_type"] == t.as_str()))
        })
        .collect();
    devices.sort_by_key(|(node, _)| *node);
    let (devices, next) = paging::page(
        devices,
        "node",
        |(node, _)| u64::from(*node),
        limit,
        p.page_cursor.as_deref(),
    )?;
    let devices: Vec<Value> = devices.into_iter().map(|(_, j)| j).collect();
    Ok(json!({ "devices": devices, "pagination": pagination(&r.path, &r.params, next) }))
}

#[derive(Debug, Deserialize)]
struct DeviceUpdate {
    device_id: Uuid,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    properties: Option<DeviceUpdateProperties>,
    #[serde(default)]
    is_managed: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct DeviceUpdateProperties {
    #[serde(default)]
    name: Option<String>,
}

pub fn devices_update(e: &Engine, r: &Request) -> Answer {
    let p: DeviceUpdate = r.params()?;
    if p.is_managed == Some(false) {
        return Err(ApiError::field(
            "is_managed",
            "zwlock manages every lock on its stick; exclude the lock to let it go",
        ));
    }
    let name = p.name.or(p.properties.and_then(|pr| pr.name));
    match name {
        Some(n) => {
            e.rename_device(&p.device_id, &n)?;
        }
        None => {
            e.device_row(&p.device_id)?;
        }
    }
    Ok(json!({}))
}

pub fn lock_door(e: &Engine, r: &Request) -> Answer {
    let p: DeviceId = r.params()?;
    Ok(json!({ "action_attempt": e.set_door(&p.device_id, true)? }))
}

pub fn zwave_include(e: &Engine, r: &Request) -> Answer {
    let req: crate::codes::network::IncludeRequest = r.params()?;
    Ok(json!({ "action_attempt": e.include(req)? }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExcludeParams {
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

pub fn zwave_exclude(e: &Engine, r: &Request) -> Answer {
    let p: ExcludeParams = r.params()?;
    Ok(json!({ "action_attempt": e.exclude(p.timeout_seconds)? }))
}

pub fn zwave_remove_failed(e: &Engine, r: &Request) -> Answer {
    let p: DeviceId = r.params()?;
    Ok(json!({ "action_attempt": e.remove_failed(&p.device_id)? }))
}

pub fn sync_access_codes(e: &Engine, r: &Request) -> Answer {
    let p: DeviceId = r.params()?;
    Ok(json!({ "action_attempt": e.sync_access_codes(&p.device_id)? }))
}

pub fn unlock_door(e: &Engine, r: &Request) -> Answer {
    let p: DeviceId = r.params()?;
    Ok(json!({ "action_attempt": e.set_door(&p.device_id, false)? }))
}

#[derive(Debug, Deserialize)]
struct EventsParams {
    since: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "flex::opt_vec")]
    between: Option<Vec<DateTime<Utc>>>,
    device_id: Option<Uuid>,
    #[serde(default, deserialize_with = "flex::opt_vec")]
    device_ids: Option<Vec<Uuid>>,
    access_code_id: Option<Uuid>,
    #[serde(default, deserialize_with = "flex::opt_vec")]
    access_code_ids: Option<Vec<Uuid>>,
    event_type: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_vec")]
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flex::opt_usize")]
    limit: Option<usize>,
}

pub fn events_list(e: &Engine, r: &Request) -> Answer {
    let p: EventsParams = r.params()?;
    let (since, until) = match (p.since, p.between) {
        (Some(s), None) => (Some(s), None),
        (None, Some(b)) if b.len() == 2 => (Some(b[0]), Some(b[1])),
        (None, Some(_)) => return Err(ApiError::field("between", "must be two timestamps")),
        (Some(_), Some(_)) => {
            return Err(ApiError::field("since", "give since or between, not both"))
        }
        (None, None) => return Err(ApiError::field("since", "give since or between")),
    };
    let join = |one: Option<Uuid>, many: Option<Vec<Uuid>>| -> Option<Vec<Uuid>> {
        match (one, many) {
            (None, None) => None,
            (a, b) => Some(a.into_iter().chain(b.unwrap_or_default()).collect()),
        }
    };
    let types = match (p.event_type, p.event_types) {
        (None, None) => None,
        (a, b) => Some(a.into_iter().chain(b.unwrap_or_default()).collect()),
    };
    let filter = EventFilter {
        since,
        until,
        after_seq: None,
        device_ids: join(p.device_id, p.device_ids),
        access_code_ids: join(p.access_code_id, p.access_code_ids),
        event_types: types,
        limit: Some(p.limit.unwrap_or(500).clamp(1, 10_000)),
    };
    let events: Vec<Value> = e.events(&filter)?.iter().map(model::event_json).collect();
    Ok(json!({ "events": events }))
}

#[derive(Debug, Deserialize)]
struct AttemptParams {
    action_attempt_id: Uuid,
}

pub fn action_attempts_get(e: &Engine, r: &Request) -> Answer {
    let p: AttemptParams = r.params()?;
    Ok(json!({ "action_attempt": e.action_attempt(&p.action_attempt_id)? }))
}

pub fn health(e: &Engine, _r: &Request) -> Answer {
    let devices = e.devices()?;
    Ok(json!({
        "msg": if e.hub_connected() { "zwlock is running and the stick is connected" } else { "zwlock is running; the stick is not connected" },
        "service_health_statuses": [
            { "service": "stick", "status": if e.hub_connected() { "healthy" } else { "degraded" } },
            { "service": "locks", "status": if devices.iter().all(|d| d.online) { "healthy" } else { "degraded" },
              "count": devices.len() },
        ],
    }))
}

#[derive(Debug, Deserialize)]
struct ReportConstraints {
    device_id: Uuid,
    #[serde(default)]
    supported_code_lengths: Option<Vec<u8>>,
    #[serde(default)]
    min_code_length: Option<u8>,
    #[serde(default)]
    max_code_length: Option<u8>,
}

pub fn report_device_constraints(e: &Engine, r: &Request) -> Answer {
    let p: ReportConstraints = r.params()?;
    e.report_device_constraints(
        &p.device_id,
        p.supported_code_lengths,
        p.min_code_length,
        p.max_code_length,
    )?;
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
struct SimulateCode {
    device_id: Uuid,
    code: String,
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
}

pub fn simulate_create_unmanaged(e: &Engine, r: &Request) -> Answer {
    let p: SimulateCode = r.params()?;
    let code = e.simulate_unmanaged(&p.device_id, &p.code)?;
    Ok(json!({ "access_code": code }))
}

pub fn simulate_keypad_code_entry(e: &Engine, r: &Request) -> Answer {
    let p: SimulateCode = r.params()?;
    Ok(json!({ "action_attempt": e.simulate_keypad_entry(&p.device_id, &p.code)? }))
}

#[derive(Debug, Deserialize)]
struct AttemptIds {
    #[serde(default)]
    action_attempt_ids: Vec<Uuid>,
}

pub fn action_attempts_list(e: &Engine, r: &Request) -> Answer {
    let p: AttemptIds = r.params()?;
    if p.action_attempt_ids.is_empty() {
        return Err(ApiError::field(
            "action_attempt_ids",
            "give at least one id",
        ));
    }
    let attempts = e.action_attempts(&p.action_attempt_ids)?;
    Ok(json!({ "action_attempts": attempts, "pagination": pagination(&r.path, &r.params, None) }))
}

#[derive(Debug, Deserialize)]
struct EventGet {
    #[serde(default)]
    event_id: Option<Uuid>,
    #[serde(default)]
    device_id: Option<Uuid>,
    #[serde(default)]
    event_type: Option<String>,
}

pub fn events_get(e: &Engine, r: &Request) -> Answer {
    let p: EventGet = r.params()?;
    if p.event_id.is_none() && p.device_id.is_none() && p.event_type.is_none() {
        return Err(ApiError::field(
            "event_id",
            "give event_id, or device_id and/or event_type",
        ));
    }
    let ev = e.event(
        p.event_id.as_ref(),
        p.device_id.as_ref(),
        p.event_type.as_deref(),
    )?;
    Ok(json!({ "event": ev }))
}

pub fn workspaces_get(e: &Engine, _r: &Request) -> Answer {
    Ok(json!({ "workspace": e.workspace() }))
}
