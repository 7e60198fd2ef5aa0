//! The access-code engine: the only writer of access-code state.
//!
//! Intents from the API (create, update, delete) are validated and committed to the store
//! before anything goes on the air; one reconciler per lock then makes the lock match (see
//! [`super::reconcile`]). Driver events (the stick, the interview, what locks report) update
//! devices and slots and wake the reconcilers.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, Notify};
use uuid::Uuid;

use super::clock::Clock;
use super::model::{
    self, error_code, rfc3339, status, AccessCode, DeviceCondition, UnmanagedAccessCode,
};
use super::validate::{self, CodeRules, FieldError};
use crate::driver::{DriverEvent, DriverHandle, NodeInfo};
use crate::store::{
    AttemptRow, CodeRow, DeviceFacts, DeviceRow, EventRow, IssueKind, Store, StoreError,
};

/// Timing of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A code still not set (or removed) this long after the first try gets a delay warning.
    pub delay_warning_after: Duration,
    /// ... and a failure error after this long, or after `failure_attempts` failed tries.
    pub failure_after: Duration,
    pub failure_attempts: u32,
    /// Backoff between tries of one code: first, and longest.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// After the lock refused a code (Supervision FAIL), try again only this much later.
    pub refusal_retry: Duration,
    /// Reconcilers look at their lock at least this often (also guards against clock jumps).
    pub tick: Duration,
    /// Slots never allocated to managed codes, on every lock (e.g. [1] for the owner's code).
    pub reserved_slots: Vec<u16>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            delay_warning_after: Duration::from_secs(5 * 60),
            failure_after: Duration::from_secs(30 * 60),
            failure_attempts: 5,
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(10 * 60),
            refusal_retry: Duration::from_secs(60 * 60),
            tick: Duration::from_secs(60),
            reserved_slots: Vec::new(),
        }
    }
}

/// Why an intent was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{what} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{message}")]
    Conflict {
        kind: &'static str,
        message: String,
        /// The code it conflicts with.
        other_id: Option<Uuid>,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        EngineError::Invalid(vec![FieldError::new(field, message)])
    }
}

/// A request to create an access code.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateRequest {
    pub device_id: Uuid,
    pub code: Option<String>,
    pub name: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub preferred_code_length: Option<u8>,
    pub common_code_key: Option<String>,
    pub allow_external_modification: Option<bool>,
    pub is_external_modification_allowed: Option<bool>,
    pub is_one_time_use: Option<bool>,
    pub is_offline_access_code: Option<bool>,
    pub prefer_native_scheduling: Option<bool>,
    pub use_backup_access_code_pool: Option<bool>,
}

/// A request to change an access code; absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpdateRequest {
    pub access_code_id: Uuid,
    pub code: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub starts_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "double_option")]
    pub ends_at: Option<Option<DateTime<Utc>>>,
    #[serde(rename = "type")]
    pub code_type: Option<String>,
    pub allow_external_modification: Option<bool>,
    pub is_external_modification_allowed: Option<bool>,
    pub is_one_time_use: Option<bool>,
    pub is_offline_access_code: Option<bool>,
    pub prefer_native_scheduling: Option<bool>,
}

/// `"field": null` means "unset it"; an absent field means "keep it".
fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

pub(super) struct Inner {
    pub(super) store: Mutex<Store>,
    pub(super) driver: DriverHandle,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: EngineConfig,
    reconcilers: Mutex<HashMap<Uuid, Arc<Notify>>>,
    events: broadcast::Sender<EventRow>,
    hub_connected: AtomicBool,
}

/// Handle to the engine (cloneable).
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

impl Engine {
    /// Start the engine on an open store and a running driver. Consumes the driver's events.
    pub fn start(
        store: Store,
        driver: DriverHandle,
        driver_events: mpsc::Receiver<DriverEvent>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let (events, _) = broadcast::channel(1024);
        let engine = Engine {
            inner: Arc::new(Inner {
                store: Mutex::new(store),
                driver,
                clock,
                config,
                reconcilers: Mutex::new(HashMap::new()),
                events,
                hub_connected: AtomicBool::new(false),
            }),
        };
        let devices = engine.with_store(|s| {
            Store::set_state(s.conn(), "hub_connected", "false")?;
            Store::devices(s.conn())
        })?;
        for d in &devices {
            // What the interview learned before: the driver need not ask again.
            if let Some(info) = d
                .info_json
                .as_deref()
                .and_then(|j| serde_json::from_str::<NodeInfo>(j).ok())
            {
                let driver = engine.inner.driver.clone();
                tokio::spawn(async move {
                    let _ = driver.seed_node(info).await;
                });
            }
            engine.ensure_reconciler(d.device_id);
        }
        let e = engine.clone();
        tokio::spawn(async move { e.event_loop(driver_events).await });
        Ok(engine)
    }

    pub(super) fn with_store<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// New events, as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRow> {
        self.inner.events.subscribe()
    }

    pub fn hub_connected(&self) -> bool {
        self.inner.hub_connected.load(Ordering::SeqCst)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub(super) fn publish(&self, events: Vec<EventRow>) {
        for e in events {
            let _ = self.inner.events.send(e);
        }
    }

    /// Wake the reconciler of a device (starting it if needed).
    pub(super) fn wake(&self, device_id: Uuid) {
        self.ensure_reconciler(device_id).notify_one();
    }

    fn wake_all(&self) {
        let all: Vec<Arc<Notify>> = self
            .inner
            .reconcilers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for n in all {
            n.notify_one();
        }
    }

    fn ensure_reconciler(&self, device_id: Uuid) -> Arc<Notify> {
        let mut map = self
            .inner
            .reconcilers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get(&device_id) {
            return n.clone();
        }
        let notify = Arc::new(Notify::new());
        map.insert(device_id, notify.clone());
        let e = self.clone();
        let n = notify.clone();
        tokio::spawn(async move { super::reconcile::run(e, device_id, n).await });
        notify
    }

    pub(super) fn condition(&self, device: &DeviceRow) -> DeviceCondition {
        DeviceCondition {
            hub_connected: self.hub_connected(),
            device_online: device.online,
            since: Some(device.updated_at),
        }
    }

    /// The API object of a code row.
    pub fn render(
        &self,
        conn: &rusqlite::Connection,
        row: &CodeRow,
    ) -> Result<AccessCode, StoreError> {
        let issues = Store::issues(conn, &row.access_code_id)?;
        let cond = match Store::device(conn, &row.device_id)? {
            Some(d) => self.condition(&d),
            None => DeviceCondition::default(),
        };
        Ok(AccessCode::from_rows(row, &issues, cond, false))
    }

    fn attempt(
        conn: &rusqlite::Connection,
        action_type: &str,
        status: &str,
        result: Option<Value>,
        now: &DateTime<Utc>,
    ) -> Result<AttemptRow, StoreError> {
        let a = AttemptRow {
            action_attempt_id: Uuid::new_v4(),
            action_type: action_type.into(),
            status: status.into(),
            result,
            error: None,
            created_at: *now,
            updated_at: *now,
        };
        Store::put_attempt(conn, &a)?;
        Ok(a)
    }

    fn rules(device: &DeviceRow) -> CodeRules {
        CodeRules::for_lock(
            device.min_code_length,
            device.max_code_length,
            &device.code_characters,
        )
    }

    /// PINs in use on a device: managed codes (not deleted) and readable unmanaged codes.
    fn pins_in_use(
        conn: &rusqlite::Connection,
        device_id: &Uuid,
    ) -> Result<(Vec<CodeRow>, Vec<crate::store::SlotRow>), StoreError> {
        let codes = Store::device_codes(conn, device_id)?;
        let claimed: BTreeSet<u16> = codes.iter().filter_map(|c| c.slot).collect();
        let unmanaged = Store::slots(conn, device_id)?
            .into_iter()
            .filter(|s| s.state.holds_code() && !claimed.contains(&s.slot))
            .collect();
        Ok((codes, unmanaged))
    }

    fn check_pin_free(
        conn: &rusqlite::Connection,
        device_id: &Uuid,
        pin: &str,
        except: Option<&Uuid>,
        same_key: Option<&str>,
    ) -> Result<(), EngineError> {
        let (codes, unmanaged) = Self::pins_in_use(conn, device_id)?;
        if let Some(c) = codes.iter().find(|c| {
            c.desired == "active"
                && c.code == pin
                && Some(&c.access_code_id) != except
                && !(same_key.is_some() && c.common_code_key.as_deref() == same_key)
        }) {
            return Err(EngineError::Conflict {
                kind: "duplicate_access_code",
                message: "an access code with this PIN already exists on the lock".into(),
                other_id: Some(c.access_code_id),
            });
        }
        if let Some(s) = unmanaged.iter().find(|s| s.code.as_deref() == Some(pin)) {
            return Err(EngineError::Conflict {
                kind: error_code::CONFLICTING_UNMANAGED_ACCESS_CODE_ID,
                message: format!(
                    "an unmanaged code with this PIN is on the lock in slot {} (unmanaged access code {})",
                    s.slot, s.unmanaged_id
                ),
                other_id: Some(s.unmanaged_id),
            });
        }
        Ok(())
    }

    /// Create an access code. Returns it and the (already successful) action attempt.
    pub fn create(&self, req: CreateRequest) -> Result<(AccessCode, Value), EngineError> {
        let now = self.now();
        let mut errors = Vec::new();
        if req.is_offline_access_code == Some(true) {
            errors.push(FieldError::new(
                "is_offline_access_code",
                "Z-Wave locks do not support offline access codes",
            ));
        }
        if req.use_backup_access_code_pool == Some(true) {
            errors.push(FieldError::new(
                "use_backup_access_code_pool",
                "backup code pools are not supported yet",
            ));
        }
        if let Some(n) = &req.name {
            if let Err(e) = validate::check_name(n) {
                errors.push(e);
            }
        }
        if let Err(e) = validate::check_window(req.starts_at, req.ends_at, now) {
            errors.push(e);
        }
        let allow_ext = req
            .allow_external_modification
            .or(req.is_external_modification_allowed)
            .unwrap_or(false);
        let is_one_time = req.is_one_time_use.unwrap_or(false);
        let (row, events, attempt) = {
            let mut guard = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
            let tx = guard.conn_mut_tx()?;
            let device =
                Store::device(&tx, &req.device_id)?.ok_or_else(|| EngineError::NotFound {
                    what: "device",
                    id: req.device_id.to_string(),
                })?;
            let rules = Self::rules(&device);
            if let Some(l) = req.preferred_code_length {
                if l < rules.min_length || l > rules.max_length {
                    errors.push(FieldError::new(
                        "preferred_code_length",
                        format!(
                            "the lock takes {}-{} digits",
                            rules.min_length, rules.max_length
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
            let pin = match &req.code {
                Some(c) => {
                    Self::check_pin_free(&tx, &device.device_id, c, None, None)?;
                    c.clone()
                }
                None => {
                    let (codes, unmanaged) = Self::pins_in_use(&tx, &device.device_id)?;
                    let taken: BTreeSet<String> = codes
                        .iter()
                        .map(|c| c.code.clone())
                        .chain(unmanaged.iter().filter_map(|s| s.code.clone()))
                        .collect();
                    let len = req.preferred_code_length.unwrap_or(rules.min_length.max(4));
                    validate::generate_pin(len, &rules.characters, &taken)
                        .ok_or_else(|| EngineError::invalid("code", "no free PIN of that length"))?
                }
            };
            let row = CodeRow {
                access_code_id: Uuid::new_v4(),
                device_id: device.device_id,
                code: pin,
                name: req.name.clone(),
                common_code_key: req.common_code_key.clone(),
                starts_at: req.starts_at,
                ends_at: req.ends_at,
                status: status::UNSET.into(),
                desired: "active".into(),
                slot: None,
                programmed_code: None,
                allow_external_modification: allow_ext,
                is_one_time_use: is_one_time,
                is_backup: false,
                pulled_backup_access_code_id: None,
                prefer_native_scheduling: req.prefer_native_scheduling.unwrap_or(true),
                is_scheduled_on_device: false,
                attempts: 0,
                next_attempt_at: None,
                pending_since: None,
                blocked: false,
                used_at: None,
                created_at: now,
                updated_at: now,
                deleted_at: None,
            };
            Store::put_code(&tx, &row)?;
            let ev = Store::add_event(
                &tx,
                "access_code.created",
                Some(&row.device_id),
                Some(&row.access_code_id),
                &now,
                json!({}),
            )?;
            let code = self.render(&tx, &row)?;
            let attempt = Self::attempt(
                &tx,
                "CREATE_ACCESS_CODE",
                "success",
                Some(json!({ "access_code": code })),
                &now,
            )?;
            tx.commit().map_err(StoreError::from)?;
            (row, vec![ev], attempt)
        };
        self.publish(events);
        self.wake(row.device_id);
        tracing::info!(access_code_id = %row.access_code_id, device_id = %row.device_id, "access code created");
        let code = self.with_store(|s| self.render(s.conn(), &row))?;
        Ok((code, model::attempt_json(&attempt)))
    }

    /// Change an access code.
    pub fn update(&self, req: UpdateRequest) -> Result<(AccessCode, Value), EngineError> {
        let now = self.now();
        let (row, events, attempt) = {
            let mut guard = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
            let tx = guard.conn_mut_tx()?;
            let mut row = Store::code(&tx, &req.access_code_id)?
                .filter(|c| c.desired == "active")
                .ok_or_else(|| EngineError::NotFound {
                    what: "access code",
                    id: req.access_code_id.to_string(),
                })?;
            let device =
                Store::device(&tx, &row.device_id)?.ok_or_else(|| EngineError::NotFound {
                    what: "device",
                    id: row.device_id.to_string(),
                })?;
            let before = row.clone();
            let mut errors = Vec::new();
            if req.is_offline_access_code == Some(true) {
                errors.push(FieldError::new(
                    "is_offline_access_code",
                    "Z-Wave locks do not support offline access codes",
                ));
            }
            if let Some(n) = &req.name {
                if let Some(n) = n {
                    if let Err(e) = validate::check_name(n) {
                        errors.push(e);
                    }
                }
                row.name = n.clone();
            }
            if let Some(c) = &req.code {
                match Self::rules(&device).check(c) {
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
                Some("time_bound") if row.starts_at.is_none() || row.ends_at.is_none() => errors
                    .push(FieldError::new(
                        "type",
                        "time_bound needs starts_at and ends_at",
                    )),
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
                Self::check_pin_free(
                    &tx,
                    &row.device_id,
                    &row.code,
                    Some(&row.access_code_id),
                    None,
                )?;
                // A new PIN deserves a fresh start.
                row.blocked = false;
                row.attempts = 0;
                row.next_attempt_at = None;
                row.pending_since = None;
                for code in [
                    error_code::FAILED_TO_SET_ON_DEVICE,
                    error_code::DUPLICATE_CODE_ON_DEVICE,
                ] {
                    Store::clear_issue(&tx, &row.access_code_id, IssueKind::Error, code)?;
                }
            }
            let changed = changed_properties(&before, &row);
            row.updated_at = now;
            if row.status == status::SET && row.programmed_code.as_deref() != Some(&row.code) {
                row.status = status::UNSET.into();
            }
            Store::put_code(&tx, &row)?;
            let mut events = Vec::new();
            if !changed.is_empty() {
                events.push(Store::add_event(
                    &tx,
                    "access_code.changed",
                    Some(&row.device_id),
                    Some(&row.access_code_id),
                    &now,
                    json!({ "changed_properties": changed }),
                )?);
            }
            let code = self.render(&tx, &row)?;
            let attempt = Self::attempt(
                &tx,
                "UPDATE_ACCESS_CODE",
                "success",
                Some(json!({ "access_code": code })),
                &now,
            )?;
            tx.commit().map_err(StoreError::from)?;
            (row, events, attempt)
        };
        self.publish(events);
        self.wake(row.device_id);
        let code = self.with_store(|s| self.render(s.conn(), &row))?;
        Ok((code, model::attempt_json(&attempt)))
    }

    /// Delete an access code: it is removed from the lock, then forgotten.
    pub fn delete(&self, access_code_id: &Uuid) -> Result<Value, EngineError> {
        let now = self.now();
        let (device_id, events, attempt) = {
            let mut guard = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
            let tx = guard.conn_mut_tx()?;
            let mut row = Store::code(&tx, access_code_id)?
                .filter(|c| c.desired == "active")
                .ok_or_else(|| EngineError::NotFound {
                    what: "access code",
                    id: access_code_id.to_string(),
                })?;
            row.desired = "deleted".into();
            row.updated_at = now;
            row.attempts = 0;
            row.next_attempt_at = None;
            row.pending_since = None;
            row.blocked = false;
            let on_lock = row.programmed_code.is_some() || row.status == status::SETTING;
            if on_lock {
                row.status = status::REMOVING.into();
            } else {
                row.deleted_at = Some(now);
                row.slot = None;
            }
            Store::put_code(&tx, &row)?;
            let ev = Store::add_event(
                &tx,
                "access_code.deleted",
                Some(&row.device_id),
                Some(&row.access_code_id),
                &now,
                json!({ "code": row.code }),
            )?;
            let attempt =
                Self::attempt(&tx, "DELETE_ACCESS_CODE", "success", Some(json!({})), &now)?;
            tx.commit().map_err(StoreError::from)?;
            (row.device_id, vec![ev], attempt)
        };
        self.publish(events);
        self.wake(device_id);
        Ok(model::attempt_json(&attempt))
    }

    /// A managed code, by id (also while it is being removed after a delete).
    pub fn get(&self, access_code_id: &Uuid) -> Result<AccessCode, EngineError> {
        let row = self
            .with_store(|s| Store::code(s.conn(), access_code_id))?
            .ok_or_else(|| EngineError::NotFound {
                what: "access code",
                id: access_code_id.to_string(),
            })?;
        Ok(self.with_store(|s| self.render(s.conn(), &row))?)
    }

    /// Managed codes of a device.
    pub fn list(&self, device_id: &Uuid) -> Result<Vec<AccessCode>, EngineError> {
        Ok(self.with_store(|s| {
            let rows = Store::device_codes(s.conn(), device_id)?;
            rows.iter()
                .filter(|r| !r.is_backup || r.pulled_backup_access_code_id.is_some())
                .map(|r| self.render(s.conn(), r))
                .collect()
        })?)
    }

    /// Unmanaged codes of a device: occupied slots no managed code owns.
    pub fn unmanaged(&self, device_id: &Uuid) -> Result<Vec<UnmanagedAccessCode>, EngineError> {
        Ok(self.with_store(|s| {
            let Some(device) = Store::device(s.conn(), device_id)? else {
                return Ok(Vec::new());
            };
            let (_, unmanaged) = Self::pins_in_use(s.conn(), device_id)?;
            Ok(unmanaged
                .iter()
                .map(|slot| UnmanagedAccessCode::from_slot(slot, &device))
                .collect())
        })?)
    }

    pub fn device_by_node(&self, node: u16) -> Result<Option<DeviceRow>, EngineError> {
        Ok(self.with_store(|s| Store::device_by_node(s.conn(), node))?)
    }

    pub fn devices(&self) -> Result<Vec<DeviceRow>, EngineError> {
        Ok(self.with_store(|s| Store::devices(s.conn()))?)
    }

    /// Record an event in its own transaction and publish it.
    pub(super) fn record(
        &self,
        event_type: &str,
        device_id: Option<&Uuid>,
        access_code_id: Option<&Uuid>,
        payload: Value,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let ev = self.with_store(|s| {
            Store::add_event(
                s.conn(),
                event_type,
                device_id,
                access_code_id,
                &now,
                payload,
            )
        })?;
        self.publish(vec![ev]);
        Ok(())
    }

    async fn event_loop(&self, mut events: mpsc::Receiver<DriverEvent>) {
        while let Some(ev) = events.recv().await {
            if let Err(e) = self.on_driver_event(ev) {
                tracing::error!(error = %e, "could not record a driver event");
            }
        }
    }

    fn on_driver_event(&self, ev: DriverEvent) -> Result<(), StoreError> {
        match ev {
            DriverEvent::Connected(_) => {
                self.inner.hub_connected.store(true, Ordering::SeqCst);
                self.with_store(|s| Store::set_state(s.conn(), "hub_connected", "true"))?;
                self.wake_all();
            }
            DriverEvent::Disconnected { reason } => {
                let was = self.inner.hub_connected.swap(false, Ordering::SeqCst);
                self.with_store(|s| Store::set_state(s.conn(), "hub_connected", "false"))?;
                if was {
                    for d in self.with_store(|s| Store::devices(s.conn()))? {
                        self.record(
                            "device.disconnected",
                            Some(&d.device_id),
                            None,
                            json!({ "error_code": "hub_disconnected", "reason": reason }),
                        )?;
                    }
                }
            }
            DriverEvent::NodeUpdated(info) => self.on_node_updated(&info)?,
            DriverEvent::NodeReachability { node, reachable } => {
                let now = self.now();
                if let Some(d) = self.with_store(|s| Store::device_by_node(s.conn(), node.0))? {
                    self.with_store(|s| {
                        Store::set_device_online(s.conn(), &d.device_id, reachable, &now)
                    })?;
                    let t = if reachable {
                        "device.connected"
                    } else {
                        "device.disconnected"
                    };
                    let payload = if reachable {
                        json!({})
                    } else {
                        json!({ "error_code": "device_disconnected" })
                    };
                    self.record(t, Some(&d.device_id), None, payload)?;
                    if reachable {
                        self.wake(d.device_id);
                    }
                }
            }
            DriverEvent::Report {
                node,
                command,
                received_at,
            } => {
                super::reports::on_report(self, node.0, &command, received_at)?;
            }
        }
        Ok(())
    }

    fn on_node_updated(&self, info: &NodeInfo) -> Result<(), StoreError> {
        if !info.is_lock() {
            return Ok(());
        }
        let Some(uc) = &info.user_code else {
            return Ok(());
        };
        let now = self.now();
        let facts = DeviceFacts {
            node_id: info.node_id.0,
            info_json: serde_json::to_string(info).ok(),
            slot_count: uc.slots,
            min_code_length: 4,
            max_code_length: 10,
            code_characters: uc.characters.clone(),
            battery_level: info.battery_level,
            locked: info.door_locked,
        };
        let (device, new) = self.with_store(|s| {
            let existed = Store::device_by_node(s.conn(), facts.node_id)?.is_some();
            let d = Store::upsert_device(s.conn(), &facts, &now)?;
            if !existed {
                Store::add_event(
                    s.conn(),
                    "device.added",
                    Some(&d.device_id),
                    None,
                    &now,
                    json!({ "node_id": facts.node_id }),
                )
                .map(|e| self.publish(vec![e]))?;
            }
            Ok((d, !existed))
        })?;
        if new {
            tracing::info!(node = facts.node_id, device_id = %device.device_id, slots = uc.slots, "lock added");
        }
        self.wake(device.device_id);
        Ok(())
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

impl Store {
    /// A transaction on the connection behind a `&mut Store`.
    pub(crate) fn conn_mut_tx(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        Ok(self.conn_mut().transaction()?)
    }
}
