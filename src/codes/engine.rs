//! The access-code engine: the only writer of access-code state.
//!
//! Intents from the API (create, update, delete) are validated and committed to the store
//! before anything goes on the air; one reconciler per lock then makes the lock match (see
//! [`super::reconcile`]). Driver events (the stick, the interview, what locks report) update
//! devices and slots and wake the reconcilers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, Notify};
use uuid::Uuid;

use super::clock::Clock;
use super::model::{AccessCode, DeviceCondition};
use super::validate::FieldError;
use crate::driver::{DriverEvent, DriverHandle, NodeInfo};
use crate::store::{CodeRow, DeviceFacts, DeviceRow, EventRow, Store, StoreError};

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
    /// How locks are watched for changes made outside zwlock.
    pub watch: super::watch::WatchConfig,
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
            watch: Default::default(),
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
    pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
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
    /// A read-only connection for the API's reads: they need not wait behind writes.
    pub(super) reader: Mutex<Store>,
    pub(super) driver: DriverHandle,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: EngineConfig,
    reconcilers: Mutex<HashMap<Uuid, Arc<Notify>>>,
    events: broadcast::Sender<EventRow>,
    hub_connected: AtomicBool,
    pub(super) reconcile_failures: std::sync::atomic::AtomicU64,
    pub(super) stopping: AtomicBool,
    pub(super) watch: Mutex<super::watch::WatchMap>,
    /// The watch budgets in force (SIGHUP may change them).
    pub(super) watch_config: Mutex<super::watch::WatchConfig>,
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
        let reader = Store::open_read_only(store.path())?;
        let engine = Engine {
            inner: Arc::new(Inner {
                reader: Mutex::new(reader),
                store: Mutex::new(store),
                driver,
                clock,
                watch_config: Mutex::new(config.watch.clone()),
                config,
                reconcilers: Mutex::new(HashMap::new()),
                events,
                hub_connected: AtomicBool::new(false),
                reconcile_failures: Default::default(),
                stopping: AtomicBool::new(false),
                watch: Mutex::new(Default::default()),
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

    /// Run a read on the API's read-only connection.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self.inner.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(guard.conn())
    }

    /// The watch budgets in force.
    pub fn watch_config(&self) -> super::watch::WatchConfig {
        self.inner
            .watch_config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Change the watch budgets (a configuration reload); polls already scheduled keep their
    /// time, the next ones follow the new budget.
    pub fn set_watch_config(&self, config: super::watch::WatchConfig) {
        *self
            .inner
            .watch_config
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Whether the engine and the driver (and the link it owns) still answer: the store is not
    /// wedged and the driver actor replies within `within`. The stick itself may be absent.
    pub async fn responsive(&self, within: std::time::Duration) -> bool {
        let store_free = {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                let busy = matches!(
                    self.inner.store.try_lock(),
                    Err(std::sync::TryLockError::WouldBlock)
                );
                if !busy {
                    break true;
                }
                if tokio::time::Instant::now() >= deadline {
                    break false;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        store_free
            && matches!(
                tokio::time::timeout(within, self.inner.driver.stats()).await,
                Ok(Ok(_))
            )
    }

    /// New events, as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRow> {
        self.inner.events.subscribe()
    }

    /// Stop acting on locks and make the database file whole (WAL checkpoint). Everything
    /// declared is already committed; a frame in flight is abandoned safely, since its intent
    /// is redone at the next start.
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let _ = self.with_store(|s| {
            s.conn().pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
            Ok(())
        });
        self.wake_all();
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// The driver this engine drives.
    pub fn driver(&self) -> DriverHandle {
        self.inner.driver.clone()
    }

    /// Failed attempts to set or remove codes since start.
    pub fn reconcile_failures(&self) -> u64 {
        self.inner.reconcile_failures.load(Ordering::Relaxed)
    }

    /// Managed codes per status.
    pub fn codes_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT status, COUNT(*) FROM access_codes WHERE deleted_at IS NULL AND is_backup = 0 GROUP BY status ORDER BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
            rows.map(|r| r.map_err(StoreError::from)).collect()
        })
    }

    pub fn hub_connected(&self) -> bool {
        self.inner.hub_connected.load(Ordering::SeqCst)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub(super) fn publish(&self, events: Vec<EventRow>) {
        for e in events {
            tracing::info!(
                event = %e.event_type,
                device_id = ?e.device_id,
                access_code_id = ?e.access_code_id,
                "event"
            );
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
        let mut v = self.render_all(conn, std::slice::from_ref(row))?;
        Ok(v.pop().expect("one row in, one code out"))
    }

    /// The API objects of code rows; what they share per lock is looked up once.
    pub fn render_all(
        &self,
        conn: &rusqlite::Connection,
        rows: &[CodeRow],
    ) -> Result<Vec<AccessCode>, StoreError> {
        let mut per_device: std::collections::HashMap<Uuid, (DeviceCondition, bool)> =
            std::collections::HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (cond, backup) = match per_device.entry(row.device_id) {
                std::collections::hash_map::Entry::Occupied(e) => *e.get(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let facts = match Store::device(conn, &row.device_id)? {
                        Some(d) => {
                            let backup = d.backup_pool_size > 0
                                && super::backup::available(conn, &row.device_id)?;
                            (self.condition(&d), backup)
                        }
                        None => (DeviceCondition::default(), false),
                    };
                    *e.insert(facts)
                }
            };
            let issues = Store::issues(conn, &row.access_code_id)?;
            out.push(AccessCode::from_rows(
                row,
                &issues,
                cond,
                backup && !row.is_backup,
            ));
        }
        Ok(out)
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
            DriverEvent::NodeRemoved { node } => {
                if let Some(d) = self.with_store(|s| Store::device_by_node(s.conn(), node.0))? {
                    let codes = self.with_store(|s| Store::device_codes(s.conn(), &d.device_id))?;
                    self.with_store(|s| Store::delete_device(s.conn(), &d.device_id))?;
                    tracing::info!(node = node.0, device_id = %d.device_id, codes = codes.len(), "lock left the network; its codes are forgotten");
                    for c in codes {
                        self.record(
                            "access_code.deleted",
                            Some(&d.device_id),
                            Some(&c.access_code_id),
                            json!({ "reason": "device_removed" }),
                        )?;
                    }
                    self.record(
                        "device.removed",
                        Some(&d.device_id),
                        None,
                        json!({ "node_id": node.0 }),
                    )?;
                    self.wake(d.device_id);
                }
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

impl Store {
    /// A transaction on the connection behind a `&mut Store`.
    pub(crate) fn conn_mut_tx(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        Ok(self.conn_mut().transaction()?)
    }
}
