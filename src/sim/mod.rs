//! The simulator: a controller stick and keypad locks, in process, speaking real Serial API
//! bytes. It serves the demo, every integration test and the benchmarks.
//!
//! [`Simulator`] holds the networks of a [`SimConfig`]; it is the [`SimConnector`] behind
//! `sim://NAME` port URLs. Each network runs as one actor; [`SimHandle`] acts on it as a
//! person at the lock would (keypad, factory reset, out of range, battery) and injects
//! faults (unplug the stick, NAK/CAN, lost or duplicate callbacks, line noise).

pub mod control;
pub mod lock;
pub mod model;
pub mod rng;
pub mod secure;
pub mod secure_s0;
mod stick;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, oneshot};

pub use model::{Faults, JamClearedBy, LockModel, NetworkModel, SimConfig};

use crate::cc::schedule_entry_lock::YearDaySchedule;
use crate::cc::UserIdStatus;
use crate::serial::transport::{BoxedStream, SimConnector, TransportError};
use lock::Lock;

/// What a person does at a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeypadAction {
    /// Type a PIN; unlocks when a slot holds it.
    Enter { pin: String },
    /// Program a PIN into a slot (master code mode).
    Program { slot: u16, pin: String },
    /// Delete the code in a slot.
    Delete { slot: u16 },
    /// Factory reset: all codes gone.
    FactoryReset,
    /// The batteries come out and go back in: codes stay, S2 nonce state is lost.
    PowerCycle,
    /// Another controller or a vendor app writes a slot, silently.
    ExternalWrite { slot: u16, pin: Option<String> },
}

impl KeypadAction {
    /// Why the action cannot be done on `lock` at all (a slot it does not have), naming the
    /// field; nothing is changed then.
    fn refusal(&self, lock: &Lock) -> Option<String> {
        let slot = match self {
            KeypadAction::Program { slot, .. }
            | KeypadAction::Delete { slot }
            | KeypadAction::ExternalWrite { slot, .. } => *slot,
            _ => return None,
        };
        let slots = lock.model.slots;
        (slot == 0 || slot > slots).then(|| {
            format!(
                "slot {slot} is not on lock {}: it has slots 1-{slots}",
                lock.node_id()
            )
        })
    }

    /// Apply to the lock: (unlocked?, frames the lock sends).
    fn apply(&self, lock: &mut Lock, now: f64) -> (bool, Vec<Vec<u8>>) {
        let (unlocked, frames) = self.apply_plain(lock, now);
        (unlocked, lock.seal(frames))
    }

    fn apply_plain(&self, lock: &mut Lock, now: f64) -> (bool, Vec<Vec<u8>>) {
        match self {
            KeypadAction::Enter { pin } => lock.keypad_enter(pin, now),
            KeypadAction::Program { slot, pin } => (false, lock.keypad_program(*slot, pin)),
            KeypadAction::Delete { slot } => (false, lock.keypad_delete(*slot)),
            KeypadAction::FactoryReset => (false, lock.factory_reset()),
            KeypadAction::PowerCycle => {
                lock.power_cycle();
                (false, Vec::new())
            }
            KeypadAction::ExternalWrite { slot, pin } => {
                lock.write_slot(*slot, pin.as_deref());
                (false, Vec::new())
            }
        }
    }
}

/// One slot of a lock, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotSnapshot {
    pub slot: u16,
    pub status: UserIdStatus,
    /// The PIN (the simulator is a test tool; its snapshots are not logged).
    pub code: String,
}

/// The state of a simulated lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockSnapshot {
    pub node_id: u8,
    pub slots: Vec<SlotSnapshot>,
    pub locked: bool,
    pub battery_level: u8,
    pub in_range: bool,
    /// Commands the lock received over the air.
    pub commands_received: u64,
    /// In the network (false: waiting to be included).
    pub included: bool,
    /// The 5-digit PIN printed on a lock made to be included with S2 security.
    pub dsk_pin: Option<u16>,
    /// Supervision Reports the lock got for its own supervised notifications.
    pub supervision_reports_received: u64,
    #[serde(skip)]
    pub year_day_schedules: Vec<(u8, YearDaySchedule)>,
}

impl LockSnapshot {
    /// The PIN in a slot, if occupied.
    pub fn code(&self, slot: u16) -> Option<&str> {
        self.slots
            .iter()
            .find(|s| s.slot == slot)
            .map(|s| s.code.as_str())
    }
}

/// Counters of a simulated stick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StickStats {
    pub frames_from_host: u64,
    pub frames_to_host: u64,
    pub bytes_to_host: u64,
    pub send_data: u64,
    /// Soft resets the host asked for.
    pub soft_resets: u64,
    /// Times the host opened the port (connections accepted).
    pub connections: u64,
    /// SendDataAbort frames the host sent.
    pub send_data_aborts: u64,
    /// SendData refused because the stick was jammed.
    pub send_data_refused_jammed: u64,
    /// SendData or RequestNodeInfo refused ("not accepted") because the stick's own
    /// transaction was still in flight: a SendData before its callback, a RequestNodeInfo
    /// before the node information. A host that waits for each never causes one.
    pub refused_busy: u64,
}

pub(crate) enum Control {
    Keypad {
        node: u8,
        action: KeypadAction,
        reply: oneshot::Sender<Result<bool, String>>,
    },
    SetInRange {
        node: u8,
        in_range: bool,
        reply: oneshot::Sender<Result<(), String>>,
    },
    SetBattery {
        node: u8,
        level: u8,
        reply: oneshot::Sender<Result<(), String>>,
    },
    SetFaults {
        faults: Faults,
        reply: oneshot::Sender<()>,
    },
    Unplug {
        reply: oneshot::Sender<()>,
    },
    Plug {
        reply: oneshot::Sender<()>,
    },
    Snapshot {
        node: u8,
        reply: oneshot::Sender<Option<LockSnapshot>>,
    },
    Stats {
        reply: oneshot::Sender<StickStats>,
    },
    /// Someone presses the lock's inclusion button.
    Button {
        node: u8,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// Why a simulator control action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("the simulated network has stopped")]
    Stopped,
    #[error("{0}")]
    Refused(String),
}

/// Acts on one simulated network. Cloneable.
#[derive(Clone)]
pub struct SimHandle {
    name: String,
    control: mpsc::Sender<Control>,
    connections: mpsc::Sender<DuplexStream>,
    plugged: Arc<AtomicBool>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("name", &self.name)
            .finish()
    }
}

impl SimHandle {
    /// Start a network on the current tokio runtime.
    pub fn spawn(model: NetworkModel) -> SimHandle {
        let (control, control_rx) = mpsc::channel(64);
        let (connections, conn_rx) = mpsc::channel(4);
        let name = model.name.clone();
        let stick = stick::Stick::new(model);
        tokio::spawn(stick.run(conn_rx, control_rx));
        SimHandle {
            name,
            control,
            connections,
            plugged: Arc::new(AtomicBool::new(true)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to the stick, as opening its port would give. The previous one closes.
    pub fn connect(&self) -> Result<BoxedStream, TransportError> {
        let gone = || TransportError::DeviceNotFound {
            url: format!("sim://{}", self.name),
        };
        if !self.plugged.load(Ordering::SeqCst) {
            return Err(gone());
        }
        let (host, stick) = tokio::io::duplex(4096);
        self.connections.try_send(stick).map_err(|_| gone())?;
        Ok(Box::new(host))
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> Result<T, SimError> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(make(tx))
            .await
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }

    /// A person acts at the keypad of `node`. Returns whether the door unlocked.
    pub async fn keypad(&self, node: u8, action: KeypadAction) -> Result<bool, SimError> {
        self.ask(|reply| Control::Keypad {
            node,
            action,
            reply,
        })
        .await?
        .map_err(SimError::Refused)
    }

    /// Take a lock out of radio range (its frames get no ACK) or bring it back.
    pub async fn set_in_range(&self, node: u8, in_range: bool) -> Result<(), SimError> {
        self.ask(|reply| Control::SetInRange {
            node,
            in_range,
            reply,
        })
        .await?
        .map_err(SimError::Refused)
    }

    /// Set a lock's battery; 0 means it is dead and silent.
    pub async fn set_battery(&self, node: u8, level: u8) -> Result<(), SimError> {
        self.ask(|reply| Control::SetBattery { node, level, reply })
            .await?
            .map_err(SimError::Refused)
    }

    /// Replace the faults injected from now on; `jammed` jams the stick now (or clears a jam).
    pub async fn set_faults(&self, faults: Faults) -> Result<(), SimError> {
        self.ask(|reply| Control::SetFaults { faults, reply }).await
    }

    /// Pull the stick out: the connection closes and new ones are refused.
    pub async fn unplug(&self) -> Result<(), SimError> {
        self.plugged.store(false, Ordering::SeqCst);
        self.ask(|reply| Control::Unplug { reply }).await
    }

    /// Plug the stick back in.
    pub async fn plug(&self) -> Result<(), SimError> {
        self.ask(|reply| Control::Plug { reply }).await?;
        self.plugged.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Press a lock's inclusion button: it joins (or leaves) the network when the stick is in
    /// add (or remove) mode. Says what happened.
    pub async fn press_button(&self, node: u8) -> Result<String, SimError> {
        self.ask(|reply| Control::Button { node, reply })
            .await?
            .map_err(SimError::Refused)
    }

    pub async fn snapshot(&self, node: u8) -> Result<Option<LockSnapshot>, SimError> {
        self.ask(|reply| Control::Snapshot { node, reply }).await
    }

    pub async fn stats(&self) -> Result<StickStats, SimError> {
        self.ask(|reply| Control::Stats { reply }).await
    }
}

/// The simulated networks of a configuration, started on first use.
#[derive(Clone, Default)]
pub struct Simulator {
    config: SimConfig,
    running: Arc<Mutex<BTreeMap<String, SimHandle>>>,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        Simulator {
            config,
            running: Arc::default(),
        }
    }

    /// The handle of network `name`, starting it if needed. Needs a tokio runtime.
    pub fn network(&self, name: &str) -> Option<SimHandle> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = running.get(name) {
            return Some(h.clone());
        }
        let model = self.config.network(name)?.clone();
        let h = SimHandle::spawn(model);
        running.insert(name.to_string(), h.clone());
        Some(h)
    }

    pub fn names(&self) -> Vec<String> {
        self.config.network.iter().map(|n| n.name.clone()).collect()
    }
}

impl SimConnector for Simulator {
    fn connect(&self, name: &str) -> Result<BoxedStream, TransportError> {
        match self.network(name) {
            Some(h) => h.connect(),
            None => Err(TransportError::UnknownSimulation {
                name: name.to_string(),
                hint: if self.config.network.is_empty() {
                    " (the configuration defines no simulated network)".into()
                } else {
                    format!(" (defined: {})", self.names().join(", "))
                },
            }),
        }
    }
}
