//! What every part of the engine shares: the repository, the clock, the configuration, the
//! event broadcast, and the way to wake the engine task. Parts take a `&Ctx`; none of them
//! knows the engine task or the [`super::Engine`] handle, so data flows one way: API intents
//! and port events → repository → the task's plans → the lock port.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, Notify};
use uuid::Uuid;

use super::clock::Clock;
use super::config::EngineConfig;
use super::error::EngineError;
use super::watch::WatchConfig;
use crate::store::{EventRow, Repo, StoreError};

/// A request to the engine task that is more than "look at this lock again".
#[derive(Debug)]
pub(crate) enum Request {
    /// Read every slot of a lock again; these SYNC_ACCESS_CODES attempts finish with it.
    FullRead { device: Uuid, attempt: Option<Uuid> },
    /// Lock or unlock the door; the action attempt ends with the outcome.
    Bolt {
        device: Uuid,
        locked: bool,
        attempt: Uuid,
    },
}

/// Locks to look at again, coalesced (at most one entry per lock, so it cannot overflow).
#[derive(Default)]
pub(crate) struct Wakes {
    dirty: Mutex<BTreeSet<Uuid>>,
    notify: Notify,
}

impl Wakes {
    pub(crate) fn wake(&self, device: Uuid) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device);
        self.notify.notify_one();
    }

    pub(crate) fn take(&self) -> BTreeSet<Uuid> {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) async fn notified(&self) {
        self.notify.notified().await
    }
}

/// The engine's shared context.
pub struct Ctx {
    pub(crate) repo: Repo,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: EngineConfig,
    /// The watch budgets in force (SIGHUP may change them).
    pub(crate) watch_config: Mutex<WatchConfig>,
    events: broadcast::Sender<EventRow>,
    hub_connected: AtomicBool,
    pub(crate) wakes: Wakes,
    requests: mpsc::Sender<Request>,
    pub(crate) reconcile_failures: AtomicU64,
    /// The engine task has stopped: intents are refused.
    stopped: AtomicBool,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ctx")
    }
}

impl Ctx {
    pub(crate) fn new(
        repo: Repo,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> (Ctx, mpsc::Receiver<Request>) {
        let (events, _) = broadcast::channel(1024);
        let (requests, rx) = mpsc::channel(256);
        (
            Ctx {
                repo,
                clock,
                watch_config: Mutex::new(config.watch.clone()),
                config,
                events,
                hub_connected: AtomicBool::new(false),
                wakes: Wakes::default(),
                requests,
                reconcile_failures: AtomicU64::new(0),
                stopped: AtomicBool::new(false),
            },
            rx,
        )
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn hub_connected(&self) -> bool {
        self.hub_connected.load(Ordering::SeqCst)
    }

    /// Record the stick's state; returns what it was.
    pub(crate) fn set_hub_connected(&self, up: bool) -> bool {
        self.hub_connected.swap(up, Ordering::SeqCst)
    }

    pub(crate) fn set_stopped(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Refuse intents once the engine has stopped: nothing would carry them out.
    pub(crate) fn running(&self) -> Result<(), EngineError> {
        if self.stopped.load(Ordering::SeqCst) {
            Err(EngineError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Look at a lock again soon.
    pub(crate) fn wake(&self, device: Uuid) {
        self.wakes.wake(device);
    }

    /// Hand the task a request; refused (and said so) when its queue is full.
    pub(crate) fn request(&self, r: Request) -> Result<(), EngineError> {
        self.requests.try_send(r).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                EngineError::Busy("the engine has too much queued; try again shortly".into())
            }
            mpsc::error::TrySendError::Closed(_) => EngineError::Stopped,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EventRow> {
        self.events.subscribe()
    }

    /// Publish committed events (their ids and types go to the log; payloads never do).
    pub(crate) fn publish(&self, events: Vec<EventRow>) {
        for e in events {
            tracing::info!(
                event = %e.event_type,
                device_id = ?e.device_id,
                access_code_id = ?e.access_code_id,
                "event"
            );
            let _ = self.events.send(e);
        }
    }

    /// Record one event in its own transaction and publish it.
    pub(crate) fn record(
        &self,
        event_type: &str,
        device: Option<&Uuid>,
        code: Option<&Uuid>,
        payload: Value,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let ev = self
            .repo
            .write(|tx| tx.add_event(event_type, device, code, &now, payload))?;
        self.publish(vec![ev]);
        Ok(())
    }
}
