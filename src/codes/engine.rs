//! The engine's handle: what the API, the CLI and the daemon call. Intents (create, update,
//! delete) are validated and committed to the store before anything goes on the air, then
//! the engine task ([`super::task`]) is woken to make the lock match. Reads go to the store's
//! read-only connection. [`Engine::shutdown`] stops the task and the radio and returns when
//! both are gone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::bulk::WhenCannotShare;
use super::clock::Clock;
pub use super::config::EngineConfig;
use super::ctx::{Ctx, Request};
pub use super::error::EngineError;
use super::model::{AccessCode, UnmanagedAccessCode};
use super::network::IncludeRequest;
use super::planner;
use super::queries::Page;
pub use super::requests::{CreateRequest, IdempotencyKey, UpdateRequest};
use super::task::{Control, Task};
use crate::driver::{DriverEvent, DriverHandle};
use crate::lock::zwave::ZwavePort;
use crate::lock::{LockPort, PortEvent};
use crate::store::{
    CodeFilter, CodeStatus, DeviceRow, EventFilter, EventRow, Repo, Store, StoreError,
};

/// Locks a person can be played at: simulated ones (Seam's `simulate` routes).
pub trait Keypads: Send + Sync + 'static {
    /// Type `pin` at the lock's keypad; whether the door unlocked.
    fn enter<'a>(&'a self, node: u16, pin: &'a str) -> BoxFuture<'a, Result<bool, String>>;
    /// Program `pin` into `slot` at the keypad (as the owner would, with the master code).
    fn program<'a>(
        &'a self,
        node: u16,
        slot: u16,
        pin: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Handle to the engine (cloneable).
#[derive(Clone)]
pub struct Engine {
    ctx: Arc<Ctx>,
    control: mpsc::Sender<Control>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    driver: Option<DriverHandle>,
    keypads: Option<Arc<dyn Keypads>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

impl Engine {
    /// Start the engine on an open store and a running driver (its events are the engine's).
    pub fn start(
        store: Store,
        driver: DriverHandle,
        driver_events: mpsc::Receiver<DriverEvent>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let (port, events) = ZwavePort::new(driver.clone(), driver_events);
        Self::start_with_port(store, port, events, Some(driver), clock, config)
    }

    /// Start the engine on any lock port (tests use a scripted one). `driver`: for network
    /// management and metrics, when there is one.
    pub fn start_with_port(
        store: Store,
        port: Arc<dyn LockPort>,
        events: mpsc::Receiver<PortEvent>,
        driver: Option<DriverHandle>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let repo = Repo::new(store)?;
        let (ctx, requests) = Ctx::new(repo, clock, config);
        let ctx = Arc::new(ctx);
        let task = Task::new(ctx.clone(), port)?;
        let (control, control_rx) = mpsc::channel(16);
        let handle = tokio::spawn(task.run(events, requests, control_rx));
        Ok(Engine {
            ctx,
            control,
            task: Arc::new(Mutex::new(Some(handle))),
            driver,
            keypads: None,
        })
    }

    /// The same engine, with keypads to play at (simulated locks).
    pub fn with_keypads(mut self, keypads: Arc<dyn Keypads>) -> Engine {
        self.keypads = Some(keypads);
        self
    }

    fn keypads(&self) -> Result<&Arc<dyn Keypads>, EngineError> {
        self.keypads
            .as_ref()
            .ok_or_else(|| EngineError::NotAllowed {
                kind: "device_not_simulated",
                message: "only simulated locks (a sim:// port) can be played at; this lock is real"
                    .into(),
            })
    }

    /// Someone types `code` at a simulated lock (Seam's `locks/simulate/keypad_code_entry`).
    /// Blocks the calling thread (the API's handler threads) until the lock has answered.
    pub fn simulate_keypad_entry(
        &self,
        device_id: &Uuid,
        code: &str,
    ) -> Result<Value, EngineError> {
        // An unknown lock is a 404 before a real one is a 400.
        let device = self.device_row(device_id)?;
        let keypads = self.keypads()?.clone();
        let unlocked = tokio::runtime::Handle::current()
            .block_on(keypads.enter(device.node_id, code))
            .map_err(|m| EngineError::NotAllowed {
                kind: "simulation_failed",
                message: m,
            })?;
        let now = self.now();
        let a = self.ctx.repo.write(|tx| {
            super::intents::attempt(
                tx,
                "SIMULATE_KEYPAD_CODE_ENTRY",
                "success",
                Some(serde_json::json!({ "unlocked": unlocked })),
                &now,
            )
        })?;
        Ok(super::model::attempt_json(&a))
    }

    /// Someone programs `code` at a simulated lock's keypad, in its lowest free slot (Seam's
    /// `access_codes/simulate/create_unmanaged_access_code`); returns the unmanaged code once
    /// zwlock has learnt it (or as the slot reads, if that takes longer than a few seconds).
    pub fn simulate_unmanaged(
        &self,
        device_id: &Uuid,
        code: &str,
    ) -> Result<UnmanagedAccessCode, EngineError> {
        // An unknown lock is a 404 before a real one is a 400.
        let device = self.device_row(device_id)?;
        let keypads = self.keypads()?.clone();
        super::validate::CodeRules::default()
            .check(code)
            .map_err(|e| EngineError::Invalid(vec![e]))?;
        let slot = self.ctx.repo.read(|tx| {
            let held: std::collections::BTreeSet<u16> = tx
                .device_codes(device_id)?
                .iter()
                .filter_map(|c| c.slot)
                .chain(device.reserved_slots.iter().copied())
                .chain(self.ctx.config.reserved_slots.iter().copied())
                .collect();
            let used: std::collections::BTreeSet<u16> = tx
                .slots(device_id)?
                .iter()
                .filter(|s| s.state.holds_code())
                .map(|s| s.slot)
                .collect();
            Ok::<_, EngineError>(
                (1..=device.slot_count).find(|s| !held.contains(s) && !used.contains(s)),
            )
        })?;
        let slot = slot.ok_or_else(|| EngineError::NotAllowed {
            kind: "no_space_for_access_code_on_device",
            message: format!("all {} slots of the lock are in use", device.slot_count),
        })?;
        tokio::runtime::Handle::current()
            .block_on(keypads.program(device.node_id, slot, code))
            .map_err(|m| EngineError::NotAllowed {
                kind: "simulation_failed",
                message: m,
            })?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(u) = self
                .unmanaged(device_id)?
                .into_iter()
                .find(|u| u.slot == slot)
            {
                return Ok(u);
            }
            if std::time::Instant::now() >= deadline {
                return Err(EngineError::NotAllowed {
                    kind: "simulation_failed",
                    message: format!("the code was programmed in slot {slot}, but the lock did not report it in time"),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop acting on locks, close the radio and make the database file whole. Everything
    /// declared is already committed; work in flight is abandoned safely (its intent is redone
    /// at the next start). Returns once the engine task has ended.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// Whether the engine task has ended (after [`Engine::shutdown`]).
    pub fn is_stopped(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|h| h.is_finished())
    }

    /// Whether the engine answers: the store is not wedged and the engine task's loop replies
    /// within `within`. (The daemon's watchdog also asks the stick, through the driver.)
    pub async fn responsive(&self, within: Duration) -> bool {
        if !self.ctx.repo.writable_within(within).await {
            return false;
        }
        let (tx, rx) = oneshot::channel();
        if self.control.try_send(Control::Ping(tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(within, rx).await, Ok(Ok(())))
    }

    /// The watch budgets in force.
    pub fn watch_config(&self) -> super::watch::WatchConfig {
        self.ctx
            .watch_config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Change the watch budgets (a configuration reload); polls already scheduled keep their
    /// time, the next ones follow the new budget.
    pub fn set_watch_config(&self, config: super::watch::WatchConfig) {
        *self
            .ctx
            .watch_config
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// New events, as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRow> {
        self.ctx.subscribe()
    }

    /// The driver behind the engine, when it runs on one.
    pub fn driver(&self) -> Option<DriverHandle> {
        self.driver.clone()
    }

    /// Failed attempts to set or remove codes since start.
    pub fn reconcile_failures(&self) -> u64 {
        self.ctx.reconcile_failures.load(Ordering::Relaxed)
    }

    /// Managed codes per status.
    pub fn codes_by_status(&self) -> Result<Vec<(CodeStatus, u64)>, StoreError> {
        self.ctx.repo.read(|tx| tx.codes_by_status())
    }

    pub fn hub_connected(&self) -> bool {
        self.ctx.hub_connected()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.ctx.now()
    }

    /// One planning pass over a lock's codes, without acting on it or writing anything: what
    /// the engine would do next ("set", "clear", "probe", "idle" or "gone"). For diagnostics
    /// and benchmarks.
    pub fn plan_once(&self, device_id: &Uuid) -> Result<&'static str, StoreError> {
        let now = self.now();
        self.ctx.repo.read(|tx| {
            let Some(input) = super::task::PlanInput::read(tx, device_id)? else {
                return Ok("gone");
            };
            let plan = planner::plan(&input.view(
                &self.ctx.config.reserved_slots,
                now,
                self.ctx.clock.is_synchronized(),
                true,
            ));
            Ok(match plan.action {
                Some(planner::SlotAction::Set { .. }) => "set",
                Some(planner::SlotAction::Clear { .. }) => "clear",
                Some(planner::SlotAction::Probe { .. }) => "probe",
                None => "idle",
            })
        })
    }

    // Intents.

    /// Create an access code. Returns it and the (already successful) action attempt.
    pub fn create(&self, req: CreateRequest) -> Result<(AccessCode, Value), EngineError> {
        self.ctx.running()?;
        super::intents::create(&self.ctx, req)
    }

    /// What a create's idempotency key made on a lock (None: nothing yet), as it is now.
    pub fn keyed(
        &self,
        key: &IdempotencyKey,
        device_id: &Uuid,
    ) -> Result<Option<(AccessCode, Value)>, EngineError> {
        super::intents::keyed(&self.ctx, key, device_id, &self.ctx.now())
    }

    /// Change an access code.
    pub fn update(&self, req: UpdateRequest) -> Result<(AccessCode, Value), EngineError> {
        self.ctx.running()?;
        super::intents::update(&self.ctx, req)
    }

    /// Delete an access code: it is removed from the lock, then forgotten.
    pub fn delete(&self, access_code_id: &Uuid) -> Result<Value, EngineError> {
        self.ctx.running()?;
        super::intents::delete(&self.ctx, access_code_id)
    }

    /// Create one code on several locks.
    pub fn create_multiple(
        &self,
        device_ids: &[Uuid],
        base: CreateRequest,
        when: WhenCannotShare,
    ) -> Result<Vec<AccessCode>, EngineError> {
        self.ctx.running()?;
        super::bulk::create_multiple(&self.ctx, device_ids, base, when)
    }

    /// Change the name or window of every code sharing `common_code_key`.
    pub fn update_multiple(
        &self,
        common_code_key: &str,
        name: Option<Option<String>>,
        starts_at: Option<Option<DateTime<Utc>>>,
        ends_at: Option<Option<DateTime<Utc>>>,
    ) -> Result<Vec<AccessCode>, EngineError> {
        self.ctx.running()?;
        super::bulk::update_multiple(&self.ctx, common_code_key, name, starts_at, ends_at)
    }

    /// A PIN valid for the lock and free on it, without creating anything.
    pub fn generate_code(&self, device_id: &Uuid) -> Result<String, EngineError> {
        super::bulk::generate_code(&self.ctx, device_id)
    }

    /// Lock or unlock the door: a pending action attempt.
    pub fn set_door(&self, device_id: &Uuid, lock: bool) -> Result<Value, EngineError> {
        super::bulk::set_door(&self.ctx, device_id, lock)
    }

    /// Pull a backup code for a code: (original, backup).
    pub fn pull_backup(
        &self,
        access_code_id: &Uuid,
    ) -> Result<(AccessCode, AccessCode), EngineError> {
        self.ctx.running()?;
        super::intents::pull_backup(&self.ctx, access_code_id)
    }

    /// Make an unmanaged code managed.
    pub fn convert_to_managed(
        &self,
        unmanaged_id: &Uuid,
        allow_external_modification: bool,
    ) -> Result<AccessCode, EngineError> {
        self.ctx.running()?;
        super::unmanaged::convert_to_managed(&self.ctx, unmanaged_id, allow_external_modification)
    }

    /// Make a managed code unmanaged: it stays on its lock, and zwlock stops keeping it.
    pub fn unmanage(&self, access_code_id: &Uuid) -> Result<Value, EngineError> {
        self.ctx.running()?;
        super::unmanaged::to_unmanaged(&self.ctx, access_code_id)
    }

    /// Remove an unmanaged code from its lock.
    pub fn delete_unmanaged(&self, unmanaged_id: &Uuid) -> Result<Value, EngineError> {
        self.ctx.running()?;
        super::unmanaged::delete_unmanaged(&self.ctx, unmanaged_id)
    }

    /// Read every slot of a lock again.
    pub fn request_full_read(&self, device: &Uuid) {
        let _ = self.ctx.request(Request::FullRead {
            device: *device,
            attempt: None,
        });
    }

    /// Read every slot of a lock again (the API's sync): a pending SYNC_ACCESS_CODES action
    /// attempt that succeeds when the read is done.
    pub fn sync_access_codes(&self, device: &Uuid) -> Result<Value, EngineError> {
        super::queries::device_row(&self.ctx, device)?;
        let now = self.now();
        let attempt = self
            .ctx
            .repo
            .write(|tx| super::intents::attempt(tx, "SYNC_ACCESS_CODES", "pending", None, &now))?;
        self.ctx.request(Request::FullRead {
            device: *device,
            attempt: Some(attempt.action_attempt_id),
        })?;
        Ok(super::model::attempt_json(&attempt))
    }

    /// What a user reports of a lock's code lengths (Seam's `report_device_constraints`):
    /// `supported_code_lengths`, or `min_code_length`/`max_code_length`.
    pub fn report_device_constraints(
        &self,
        device_id: &Uuid,
        supported: Option<Vec<u8>>,
        min: Option<u8>,
        max: Option<u8>,
    ) -> Result<(), EngineError> {
        self.ctx.running()?;
        super::bulk::report_device_constraints(&self.ctx, device_id, supported, min, max)
    }

    /// Rename a lock (Seam's `devices/update` with `name`).
    pub fn rename_device(&self, device_id: &Uuid, name: &str) -> Result<DeviceRow, EngineError> {
        self.ctx.running()?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > super::validate::MAX_NAME_CHARS {
            return Err(EngineError::invalid(
                "name",
                format!("1-{} characters", super::validate::MAX_NAME_CHARS),
            ));
        }
        super::validate::check_name(name).map_err(|e| EngineError::Invalid(vec![e]))?;
        self.ctx.repo.write(|tx| {
            tx.device(device_id)?.ok_or_else(|| EngineError::NotFound {
                what: "device",
                id: device_id.to_string(),
            })?;
            tx.set_device_settings(device_id, Some(name), None, None)?;
            Ok::<_, EngineError>(())
        })?;
        self.ctx.record(
            "device.updated",
            Some(device_id),
            None,
            serde_json::json!({ "name": name }),
        )?;
        self.device_row(device_id)
    }

    // Adding and removing locks.

    fn network_driver(&self) -> Result<&DriverHandle, EngineError> {
        self.driver.as_ref().ok_or_else(|| {
            EngineError::Unsupported("this engine runs without a Z-Wave driver".into())
        })
    }

    /// Open learn mode for a lock to join.
    pub fn include(&self, req: IncludeRequest) -> Result<Value, EngineError> {
        super::network::include(&self.ctx, self.network_driver()?, req)
    }

    /// Open learn mode for a lock to leave.
    pub fn exclude(&self, timeout_seconds: Option<u64>) -> Result<Value, EngineError> {
        super::network::exclude(&self.ctx, self.network_driver()?, timeout_seconds)
    }

    /// Remove a lock that no longer answers.
    pub fn remove_failed(&self, device_id: &Uuid) -> Result<Value, EngineError> {
        super::network::remove_failed(&self.ctx, self.network_driver()?, device_id)
    }

    // Reads.

    /// A managed code, by id (also while it is being removed after a delete).
    pub fn get(&self, access_code_id: &Uuid) -> Result<AccessCode, EngineError> {
        super::queries::get(&self.ctx, access_code_id)
    }

    /// A managed code, by lock and PIN.
    pub fn get_by_code(&self, device_id: &Uuid, code: &str) -> Result<AccessCode, EngineError> {
        super::queries::get_by_code(&self.ctx, device_id, code)
    }

    /// Managed codes of a device (all of them).
    pub fn list(&self, device_id: &Uuid) -> Result<Vec<AccessCode>, EngineError> {
        let filter = CodeFilter {
            device_id: Some(*device_id),
            ..Default::default()
        };
        Ok(self.list_page(filter, None, None)?.items)
    }

    /// A page of managed codes matching `filter`.
    pub fn list_page(
        &self,
        filter: CodeFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<AccessCode>, EngineError> {
        super::queries::list_page(&self.ctx, filter, limit, cursor)
    }

    /// Unmanaged codes of a device.
    pub fn unmanaged(&self, device_id: &Uuid) -> Result<Vec<UnmanagedAccessCode>, EngineError> {
        super::queries::unmanaged(&self.ctx, device_id)
    }

    /// An unmanaged code by id, or by lock and PIN.
    pub fn unmanaged_get(
        &self,
        id: Option<&Uuid>,
        device_and_code: Option<(&Uuid, &str)>,
    ) -> Result<UnmanagedAccessCode, EngineError> {
        super::queries::unmanaged_get(&self.ctx, id, device_and_code)
    }

    pub fn device_by_node(&self, node: u16) -> Result<Option<DeviceRow>, EngineError> {
        Ok(self.ctx.repo.read(|tx| tx.device_by_node(node))?)
    }

    pub fn devices(&self) -> Result<Vec<DeviceRow>, EngineError> {
        Ok(self.ctx.repo.read(|tx| tx.devices())?)
    }

    pub fn device_row(&self, id: &Uuid) -> Result<DeviceRow, EngineError> {
        super::queries::device_row(&self.ctx, id)
    }

    /// The device object of the API.
    pub fn device_json(&self, d: &DeviceRow) -> Value {
        super::queries::device_json(&self.ctx, d)
    }

    /// Events matching `filter`.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<EventRow>, EngineError> {
        super::queries::events(&self.ctx, filter)
    }

    /// Wait (blocking the calling thread: for the API's handler threads) until an action
    /// attempt is no longer pending, at most the configured `sync_wait`; returns it as it is
    /// then.
    pub fn wait_for_attempt(&self, id: &Uuid) -> Result<Value, EngineError> {
        let deadline = std::time::Instant::now() + self.ctx.config.sync_wait;
        loop {
            let a = self.action_attempt(id)?;
            if a["status"] != "pending" || std::time::Instant::now() >= deadline {
                return Ok(a);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Action attempts by id (those that exist), as the API returns them.
    pub fn action_attempts(&self, ids: &[Uuid]) -> Result<Vec<Value>, EngineError> {
        Ok(self.ctx.repo.read(|tx| {
            let mut v = Vec::new();
            for id in ids {
                if let Some(a) = tx.attempt(id)? {
                    v.push(super::model::attempt_json(&a));
                }
            }
            Ok::<_, StoreError>(v)
        })?)
    }

    /// An event by id, or the latest of a type (and device).
    pub fn event(
        &self,
        event_id: Option<&Uuid>,
        device_id: Option<&Uuid>,
        event_type: Option<&str>,
    ) -> Result<Value, EngineError> {
        let found = match event_id {
            Some(id) => self.ctx.repo.read(|tx| tx.event(id))?,
            None => {
                let filter = EventFilter {
                    device_ids: device_id.map(|d| vec![*d]),
                    event_types: event_type.map(|t| vec![t.to_string()]),
                    ..Default::default()
                };
                self.events(&filter)?.into_iter().max_by_key(|e| e.seq)
            }
        };
        found
            .map(|e| super::model::event_json(&e))
            .ok_or_else(|| EngineError::NotFound {
                what: "event",
                id: event_id.map(Uuid::to_string).unwrap_or_default(),
            })
    }

    /// The one local workspace (its id is the one every object carries).
    pub fn workspace(&self) -> Value {
        serde_json::json!({
            "workspace_id": super::model::workspace_id(),
            "name": "zwlock",
            "company_name": "zwlock",
            "is_sandbox": false,
            "is_suspended": false,
            "connect_partner_name": null,
            "is_publishable_key_auth_enabled": false,
        })
    }

    /// An action attempt as the API returns it.
    pub fn action_attempt(&self, id: &Uuid) -> Result<Value, EngineError> {
        super::queries::action_attempt(&self.ctx, id)
    }
}
