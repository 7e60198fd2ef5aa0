//! The retained state, kept equal to the database: a device topic per lock (as
//! `devices/get` has it), an access code topic per managed code (as `access_codes/list`
//! has it, PINs out unless `publish_codes`), an empty retained message when one is gone,
//! Home Assistant's configs and states, and every event on the events topic.
//!
//! After every connect the hub first sweeps: it subscribes to its own device and access code
//! topics, collects what the broker kept, and when its marker comes back (or after
//! [`SWEEP_WAIT`]) clears what the database no longer has (a code deleted, a lock removed
//! while the broker was away). Then it publishes everything. Between connects, each committed
//! event republishes what it touched, and every `resync_seconds` (or when the stick comes and
//! goes, which changes every code's errors) everything is compared again. What was published
//! is remembered as a hash per topic, so unchanged state is not sent again; the memory is
//! cleared at every connect.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

use super::bridge::Shared;
use super::redact::strip_pins;
use super::stopped;
use crate::codes::model;
use crate::codes::Engine;
use crate::store::{CodeFilter, EventRow};

/// How long the sweep waits for its marker.
pub const SWEEP_WAIT: Duration = Duration::from_secs(5);
/// How long a state message may wait for room in the outbound queue before it is dropped
/// (and published again at the next resync).
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Retained topics the sweep looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Device,
    AccessCode,
}

/// What the connection task tells the state task.
#[derive(Debug)]
pub enum StateMsg {
    Connected,
    Disconnected,
    Swept(Kind, Uuid),
    SweepDone,
}

/// One lock and its managed codes, as the API shows them.
#[derive(Debug, Clone)]
pub struct DeviceState {
    pub id: Uuid,
    pub device: Value,
    pub codes: Vec<(Uuid, Value)>,
}

/// Read one lock (None when it is gone).
pub fn read_device(engine: &Engine, id: &Uuid) -> Option<DeviceState> {
    let row = engine.device_row(id).ok()?;
    let device = engine.device_json(&row);
    let codes = engine
        .list(id)
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            (
                c.access_code_id,
                serde_json::to_value(c).unwrap_or(Value::Null),
            )
        })
        .collect();
    Some(DeviceState {
        id: *id,
        device,
        codes,
    })
}

/// Read every lock. None when the database cannot be read (nothing is cleared then).
pub fn read_all(engine: &Engine) -> Option<Vec<DeviceState>> {
    let devices = engine.devices().ok()?;
    Some(
        devices
            .iter()
            .filter_map(|d| read_device(engine, &d.device_id))
            .collect(),
    )
}

/// Read one code as `access_codes/list` shows it: (its device, the code), or None when the
/// list does not have it.
pub fn read_code(engine: &Engine, id: &Uuid) -> Option<(Uuid, Value)> {
    let filter = CodeFilter {
        access_code_ids: Some(vec![*id]),
        ..Default::default()
    };
    let page = engine.list_page(filter, Some(1), None).ok()?;
    page.items
        .into_iter()
        .next()
        .map(|c| (c.device_id, serde_json::to_value(c).unwrap_or(Value::Null)))
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// What was published, by topic kind.
#[derive(Debug, Default)]
struct Published {
    devices: HashMap<Uuid, u64>,
    /// code -> (its device, hash)
    codes: HashMap<Uuid, (Uuid, u64)>,
    /// Home Assistant configs and states, by topic.
    other: HashMap<String, u64>,
}

struct StateTask {
    shared: Arc<Shared>,
    published: Published,
    /// Retained ids seen during a sweep (None: not sweeping).
    sweep: Option<HashSet<(Kind, Uuid)>>,
    /// Something could not be queued: publish everything again soon.
    dirty: bool,
    version: &'static str,
}

enum Slot {
    Device(Uuid),
    Code(Uuid, Uuid),
    Other(String),
}

impl StateTask {
    fn settings(&self) -> &super::Settings {
        &self.shared.settings
    }

    fn prepare(&self, mut v: Value) -> Vec<u8> {
        if !self.settings().publish_codes {
            strip_pins(&mut v);
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Publish a retained message unless the same was published since the last connect.
    async fn put(&mut self, slot: Slot, topic: String, payload: Vec<u8>) {
        let h = hash(&payload);
        let same = match &slot {
            Slot::Device(id) => self.published.devices.get(id) == Some(&h),
            Slot::Code(id, _) => self.published.codes.get(id).map(|(_, x)| *x) == Some(h),
            Slot::Other(t) => self.published.other.get(t) == Some(&h),
        };
        if same || !self.shared.connected() {
            return;
        }
        if !self
            .shared
            .publish(topic, true, payload, None, QUEUE_WAIT)
            .await
        {
            self.dirty = true;
            return;
        }
        match slot {
            Slot::Device(id) => {
                self.published.devices.insert(id, h);
            }
            Slot::Code(id, device) => {
                self.published.codes.insert(id, (device, h));
            }
            Slot::Other(t) => {
                self.published.other.insert(t, h);
            }
        }
    }

    /// An empty retained message: the broker forgets the topic.
    async fn clear(&mut self, topic: String) -> bool {
        if !self.shared.connected() {
            return false;
        }
        let ok = self
            .shared
            .publish(topic, true, Vec::new(), None, QUEUE_WAIT)
            .await;
        self.dirty |= !ok;
        ok
    }

    async fn clear_code(&mut self, id: Uuid) {
        let topic = self.settings().topics.access_code(&id);
        if self.clear(topic).await {
            self.published.codes.remove(&id);
        }
    }

    async fn clear_device(&mut self, id: Uuid) {
        let topics = self
            .settings()
            .topics
            .device_topics(&id, self.settings().discovery);
        let mut all = true;
        for t in topics {
            all &= self.clear(t.clone()).await;
            self.published.other.remove(&t);
        }
        if all {
            self.published.devices.remove(&id);
        }
        let codes: Vec<Uuid> = self
            .published
            .codes
            .iter()
            .filter(|(_, (d, _))| *d == id)
            .map(|(c, _)| *c)
            .collect();
        for c in codes {
            self.clear_code(c).await;
        }
    }

    /// Publish one lock, its codes and its Home Assistant entities; clear its codes that
    /// are gone.
    async fn put_device(&mut self, d: DeviceState) {
        let topics = self.settings().topics.clone();
        let payload = self.prepare(d.device.clone());
        self.put(Slot::Device(d.id), topics.device(&d.id), payload)
            .await;
        let current: HashSet<Uuid> = d.codes.iter().map(|(c, _)| *c).collect();
        for (cid, code) in &d.codes {
            let payload = self.prepare(code.clone());
            self.put(Slot::Code(*cid, d.id), topics.access_code(cid), payload)
                .await;
        }
        let gone: Vec<Uuid> = self
            .published
            .codes
            .iter()
            .filter(|(c, (dev, _))| *dev == d.id && !current.contains(c))
            .map(|(c, _)| *c)
            .collect();
        for c in gone {
            self.clear_code(c).await;
        }
        if self.settings().discovery {
            let codes: Vec<Value> = d.codes.iter().map(|(_, c)| c.clone()).collect();
            let state = super::ha::state(&d.device, &codes);
            let t = topics.ha_state(&d.id);
            self.put(
                Slot::Other(t.clone()),
                t,
                serde_json::to_vec(&state).unwrap_or_default(),
            )
            .await;
            for (t, config) in super::ha::discovery(&topics, &d.device, self.version) {
                let payload = serde_json::to_vec(&config).unwrap_or_default();
                self.put(Slot::Other(t.clone()), t, payload).await;
            }
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Option<T> {
        let engine = self.shared.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine)).await.ok()
    }

    /// Publish everything that differs from what was published; clear what is gone.
    async fn publish_all(&mut self) {
        if !self.shared.connected() {
            return;
        }
        self.dirty = false;
        let Some(Some(all)) = self.read(read_all).await else {
            self.dirty = true;
            return;
        };
        let devices: HashSet<Uuid> = all.iter().map(|d| d.id).collect();
        let codes: HashSet<Uuid> = all
            .iter()
            .flat_map(|d| d.codes.iter().map(|(c, _)| *c))
            .collect();
        for d in all {
            self.put_device(d).await;
        }
        let gone: Vec<Uuid> = self
            .published
            .devices
            .keys()
            .filter(|d| !devices.contains(d))
            .copied()
            .collect();
        for d in gone {
            self.clear_device(d).await;
        }
        let gone: Vec<Uuid> = self
            .published
            .codes
            .keys()
            .filter(|c| !codes.contains(c))
            .copied()
            .collect();
        for c in gone {
            self.clear_code(c).await;
        }
    }

    /// The sweep is over: clear what the broker kept and the database does not have, then
    /// publish everything.
    async fn finish_sweep(&mut self) {
        let Some(seen) = self.sweep.take() else {
            return;
        };
        let t = self.settings().topics.clone();
        let filters: Vec<String> = t.sweep_filters().into_iter().collect();
        for f in filters {
            let _ = self.shared.client.try_unsubscribe(f);
        }
        if let Some(Some(all)) = self.read(read_all).await {
            let devices: HashSet<Uuid> = all.iter().map(|d| d.id).collect();
            let codes: HashSet<Uuid> = all
                .iter()
                .flat_map(|d| d.codes.iter().map(|(c, _)| *c))
                .collect();
            let mut stale = 0;
            for (kind, id) in seen {
                match kind {
                    Kind::Device if !devices.contains(&id) => {
                        stale += 1;
                        self.clear_device(id).await;
                    }
                    Kind::AccessCode if !codes.contains(&id) => {
                        stale += 1;
                        self.clear_code(id).await;
                    }
                    _ => {}
                }
            }
            if stale > 0 {
                tracing::info!(stale, "cleared retained state the database no longer has");
            }
        }
        self.publish_all().await;
    }

    /// An event: republish what it touched, then the event itself.
    async fn on_event(&mut self, e: EventRow) {
        if let Some(d) = e.device_id {
            match self.read(move |en| read_device(en, &d)).await {
                Some(Some(state)) => self.put_device(state).await,
                Some(None) => self.clear_device(d).await,
                None => self.dirty = true,
            }
        } else if let Some(c) = e.access_code_id {
            match self.read(move |en| read_code(en, &c)).await {
                Some(Some((device, code))) => {
                    let payload = self.prepare(code);
                    let topic = self.settings().topics.access_code(&c);
                    self.put(Slot::Code(c, device), topic, payload).await;
                }
                Some(None) => self.clear_code(c).await,
                None => self.dirty = true,
            }
        }
        if self.shared.connected() {
            let payload = self.prepare(model::event_json(&e));
            let topic = self.settings().topics.events();
            if !self
                .shared
                .publish(topic, false, payload, None, QUEUE_WAIT)
                .await
            {
                tracing::debug!(event = %e.event_type, "an event could not be queued for the broker");
            }
        }
    }
}

/// The state task.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut events: broadcast::Receiver<EventRow>,
    mut msgs: mpsc::Receiver<StateMsg>,
    mut stop: watch::Receiver<bool>,
) {
    let mut task = StateTask {
        shared: shared.clone(),
        published: Published::default(),
        sweep: None,
        dirty: false,
        version: env!("CARGO_PKG_VERSION"),
    };
    let mut resync = tokio::time::interval(shared.settings.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch_hub = tokio::time::interval(Duration::from_secs(1));
    let mut hub = shared.engine.hub_connected();
    let mut sweep_deadline: Option<tokio::time::Instant> = None;
    loop {
        let until_sweep_ends = async {
            match sweep_deadline {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            m = msgs.recv() => match m {
                None => break,
                Some(StateMsg::Connected) => {
                    task.published = Published::default();
                    task.sweep = Some(HashSet::new());
                    sweep_deadline = Some(tokio::time::Instant::now() + SWEEP_WAIT);
                }
                Some(StateMsg::Disconnected) => {
                    task.sweep = None;
                    sweep_deadline = None;
                }
                Some(StateMsg::Swept(kind, id)) => {
                    if let Some(seen) = task.sweep.as_mut() {
                        seen.insert((kind, id));
                    }
                }
                Some(StateMsg::SweepDone) => {
                    sweep_deadline = None;
                    task.finish_sweep().await;
                }
            },
            _ = until_sweep_ends => {
                tracing::debug!("the sweep marker did not come back; publishing anyway");
                sweep_deadline = None;
                task.finish_sweep().await;
            }
            e = events.recv() => match e {
                Ok(e) => {
                    if task.shared.connected() {
                        task.on_event(e).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "the MQTT bridge fell behind the events; publishing the whole state again");
                    task.publish_all().await;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = resync.tick() => {
                if task.sweep.is_none() {
                    task.publish_all().await;
                }
            }
            _ = watch_hub.tick() => {
                let now = shared.engine.hub_connected();
                if (now != hub || task.dirty) && task.sweep.is_none() {
                    hub = now;
                    task.publish_all().await;
                }
            }
        }
    }
    // Nothing to say at shutdown: `offline` comes from the connection task.
}
