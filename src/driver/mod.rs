//! The controller session: startup, node interview, per-node queues, transactions that pair a
//! command with its report, the unsolicited report stream, reconnection, and the recovery
//! ladder of a stick that jams ([`recovery`]: SendDataAbort, soft reset, reopening the port).
//!
//! No command that carries a PIN or works the door goes in clear to a lock that must be
//! reached securely, and none is taken from it ([`guard`]); such a lock is marked
//! ([`NodeInfo::security_failure`]) and its requests fail with
//! [`DriverError::SecurityRequired`].
//!
//! [`Driver::spawn`] starts the actor and returns a [`DriverHandle`] (cloneable) and the
//! stream of [`DriverEvent`]s. Errors keep their source and say what a caller can do about
//! them ([`DriverError::class`]); [`DriverHandle::ping`] is a round trip to the stick, and
//! [`feeds_watchdog`] says whether its outcome may feed systemd's watchdog. Knows nothing of
//! SQLite or HTTP.

mod actor;
pub mod dump;
mod error;
pub mod guard;
pub mod interview;
pub mod model;
pub mod node;
pub mod recovery;
mod secure;
pub mod startup;
pub mod transaction;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

pub use error::{DriverError, ErrorClass, LearnFailure, NotConnected};
pub use model::{ModelCache, ModelFacts, ModelKey};
pub use node::{NodeInfo, Reachability, SecurityFailure, UserCodeSupport};
pub use recovery::feeds_watchdog;
pub use startup::{ControllerInfo, StartupConfig};
pub use transaction::{Expect, Priority, ReportMatcher};

use crate::cc::{Command, SupervisionStatus};
use crate::serial::link::LinkConfig;
use crate::serial::transport::{PortUrl, SimConnector};
use crate::serialapi::application::NodeInformation;
use crate::serialapi::session::SessionConfig;
use crate::serialapi::{NodeId, TransmitStatus};

/// How the driver runs.
#[derive(Clone)]
pub struct DriverConfig {
    pub port: PortUrl,
    /// Supplies `sim://` ports.
    pub simulator: Option<Arc<dyn SimConnector>>,
    pub link: LinkConfig,
    pub session: SessionConfig,
    pub startup: StartupConfig,
    /// How long a node gets to answer a Get once the frame reached it (FLiRS locks are slow).
    pub report_timeout: Duration,
    /// SendData not accepted by the stick (busy): wait and retry this many times.
    pub not_accepted_retries: u8,
    pub not_accepted_wait: Duration,
    /// Sends of a frame whose callback reports a failure other than NoAck.
    pub send_attempts: u8,
    /// Backoff of a node that did not acknowledge: first wait, and the longest.
    pub node_backoff_initial: Duration,
    pub node_backoff_max: Duration,
    /// Backoff between reconnection attempts (also between reopens of a stuck stick).
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// Jobs waiting per node; more are refused with [`DriverError::QueueFull`].
    pub queue_depth: usize,
    /// Interview nodes after startup.
    pub interview: bool,
    pub tx_options: u8,
    /// Stick requests with no answer at all (no ACK, no RES) in a row before the stick is
    /// soft-reset (the recovery ladder, [`recovery`]).
    pub unresponsive_after: u32,
    /// SendData in a row that the stick did not accept, or whose callback it lost, before it
    /// is soft-reset. More than `not_accepted_retries`, so that one busy spell does not reset.
    pub stuck_after: u32,
    /// Reopens of the port tried after the soft reset before the stick is given up as
    /// unresponsive (the driver goes on trying; the watchdog is no longer fed).
    pub reopen_attempts: u32,
    /// The network keys (S0, S2); without them secure nodes cannot be spoken to.
    pub keys: Option<crate::security::keys::NetworkKeys>,
    /// What lock models can do, learnt by earlier interviews ([`model`]): the interview of a
    /// lock whose model is in it asks only what is the lock's own.
    pub model_cache: Option<Arc<dyn ModelCache>>,
}

impl DriverConfig {
    pub fn new(port: PortUrl) -> Self {
        DriverConfig {
            port,
            simulator: None,
            link: LinkConfig {
                dump: Some(dump::redacted_hex),
                ..LinkConfig::default()
            },
            session: SessionConfig::default(),
            startup: StartupConfig::default(),
            report_timeout: Duration::from_secs(5),
            not_accepted_retries: 3,
            not_accepted_wait: Duration::from_millis(500),
            send_attempts: 3,
            node_backoff_initial: Duration::from_secs(10),
            node_backoff_max: Duration::from_secs(600),
            reconnect_initial: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            queue_depth: 64,
            interview: true,
            tx_options: crate::serialapi::transmit::TX_OPTIONS_DEFAULT,
            unresponsive_after: 3,
            stuck_after: 5,
            reopen_attempts: 3,
            keys: None,
            model_cache: None,
        }
    }
}

impl std::fmt::Debug for DriverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverConfig")
            .field("port", &self.port.to_string())
            .field("report_timeout", &self.report_timeout)
            .finish_non_exhaustive()
    }
}

/// How a Set went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// Supervision SUCCESS: the lock applied it.
    Confirmed,
    /// The lock got the frame but cannot confirm (no Supervision): read it back to know.
    Transmitted,
    /// Supervision FAIL or NO_SUPPORT: the lock refused it. Retrying the same will not help.
    Refused(SupervisionStatus),
}

/// What completed a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Transmitted,
    Report(Command),
    Supervision(SupervisionStatus),
    NodeInfo(NodeInformation),
}

/// What the driver tells the layer above.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverEvent {
    /// The stick is up (after startup, and after every reconnection or recovery).
    Connected(ControllerInfo),
    /// The stick is gone or being recovered (soft reset, port reopened): sent once when it
    /// goes down, `Connected` follows when it is back. `reason` is a [`NotConnected`].
    Disconnected { reason: String },
    /// What is known of a node changed (interview progress, or seeded).
    NodeUpdated(NodeInfo),
    /// A node stopped or started answering.
    NodeReachability { node: NodeId, reachable: bool },
    /// A command a node sent on its own (notification, alarm, report), already answered if it
    /// needed an answer.
    Report {
        node: NodeId,
        command: Command,
        received_at: DateTime<Utc>,
    },
    /// The node left the network (excluded, or removed as failed).
    NodeRemoved { node: NodeId },
}

/// How an inclusion or exclusion is going.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum InclusionEvent {
    /// Learn mode is open: press the lock's button (or start its inclusion).
    Ready,
    NodeFound,
    Adding {
        node: NodeId,
    },
    Removing {
        node: NodeId,
    },
    /// S2 key exchange started with the new node.
    KeyExchange {
        node: NodeId,
    },
    Secured {
        node: NodeId,
        class: Option<crate::security::SecurityClass>,
    },
    SecurityFailed {
        node: NodeId,
        reason: String,
    },
}

/// Counters of the driver since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DriverStats {
    pub transactions: u64,
    pub send_data: u64,
    pub callbacks_failed: std::collections::BTreeMap<String, u64>,
    pub reports_unsolicited: u64,
    pub reconnects: u64,
    /// S2 frames from nodes that did not authenticate (dropped, never dispatched).
    pub security_failures: u64,
    /// User Code, Door Lock or Schedule Entry Lock commands from a node that must be heard
    /// securely, arriving without its granted class (dropped, never dispatched).
    pub insecure_dropped: u64,
    /// SendDataAbort sent for a SendData whose callback did not come (recovery step 1).
    pub stick_aborts: u64,
    /// Soft resets of a jammed stick (recovery step 2).
    pub stick_soft_resets: u64,
    /// Times the port of a stuck stick was closed and reopened (recovery step 3).
    pub stick_reopens: u64,
    pub link: Option<LinkCountersView>,
}

/// The link counters, as the driver exposes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkCountersView {
    pub frames_sent: u64,
    pub frames_received: u64,
    pub retransmissions: u64,
    pub naks_received: u64,
    pub cans_received: u64,
    pub naks_sent: u64,
    pub garbage_bytes: u64,
}

pub(crate) enum DriverCommand {
    Transaction {
        node: NodeId,
        command: Command,
        kind: Kind,
        priority: Priority,
        /// `Some(class)`: at this security class, whatever the node's (probing).
        class: Option<crate::security::SecurityClass>,
        reply: oneshot::Sender<Result<Answer, DriverError>>,
    },
    RequestNodeInfo {
        node: NodeId,
        reply: oneshot::Sender<Result<Answer, DriverError>>,
    },
    /// Open learn mode to add (`add`) or remove a node.
    Learn {
        add: bool,
        pin: Option<u16>,
        required: Option<crate::security::SecurityClass>,
        timeout: Duration,
        progress: mpsc::Sender<InclusionEvent>,
        reply: oneshot::Sender<Result<NodeId, DriverError>>,
    },
    RemoveFailed {
        node: NodeId,
        reply: oneshot::Sender<Result<NodeId, DriverError>>,
    },
    Nodes {
        reply: oneshot::Sender<Vec<NodeInfo>>,
    },
    Controller {
        reply: oneshot::Sender<Option<ControllerInfo>>,
    },
    SeedNode(Box<NodeInfo>),
    InterviewDone(Box<NodeInfo>, Option<DriverError>),
    /// What a running interview has learnt so far (the class a node was granted), so that
    /// its next commands are sealed at it.
    InterviewProgress(Box<NodeInfo>),
    Reinterview {
        node: NodeId,
    },
    QueueDepth {
        reply: oneshot::Sender<Vec<(NodeId, usize)>>,
    },
    Stats {
        reply: oneshot::Sender<DriverStats>,
    },
    /// Close the port and end the actor.
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// A request to the stick itself, answered when the stick answers.
    Ping {
        reply: oneshot::Sender<Result<(), DriverError>>,
    },
}

/// What kind of transaction to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Wait for the report that answers a Get.
    Get,
    /// Supervised when the node supports it, else just transmitted.
    Set,
    /// Transmit only.
    Send,
}

/// Cloneable handle to the driver.
#[derive(Clone)]
pub struct DriverHandle {
    commands: mpsc::Sender<DriverCommand>,
    s2_classes: Vec<crate::security::SecurityClass>,
    models: Option<Arc<model::Models>>,
}

impl std::fmt::Debug for DriverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DriverHandle")
    }
}

impl DriverHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> DriverCommand,
    ) -> Result<T, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)
    }

    async fn transaction(
        &self,
        node: NodeId,
        command: Command,
        kind: Kind,
        priority: Priority,
    ) -> Result<Answer, DriverError> {
        self.ask(|reply| DriverCommand::Transaction {
            node,
            command,
            kind,
            priority,
            class: None,
            reply,
        })
        .await?
    }

    /// Send a Get encapsulated at `class` (to learn whether the node was granted it).
    pub async fn get_at(
        &self,
        node: NodeId,
        command: Command,
        class: crate::security::SecurityClass,
    ) -> Result<Command, DriverError> {
        let answer = self
            .ask(|reply| DriverCommand::Transaction {
                node,
                command,
                kind: Kind::Get,
                priority: Priority::Background,
                class: Some(class),
                reply,
            })
            .await??;
        match answer {
            Answer::Report(c) => Ok(c),
            other => Err(unexpected(&other)),
        }
    }

    /// Include a node: learn mode opens, the node joins (its button pressed), and a node
    /// that speaks S2 gets its keys. `pin`: the 5-digit PIN printed on the lock (Authenticated
    /// and Access Control); `required`: a class the lock must ask for. Returns the new node
    /// (its interview follows).
    pub async fn include(
        &self,
        pin: Option<u16>,
        required: Option<crate::security::SecurityClass>,
        timeout: Duration,
        progress: mpsc::Sender<InclusionEvent>,
    ) -> Result<NodeId, DriverError> {
        self.ask(|reply| DriverCommand::Learn {
            add: true,
            pin,
            required,
            timeout,
            progress,
            reply,
        })
        .await?
    }

    /// Exclude a node: learn mode opens and the node whose button is pressed leaves.
    pub async fn exclude(
        &self,
        timeout: Duration,
        progress: mpsc::Sender<InclusionEvent>,
    ) -> Result<NodeId, DriverError> {
        self.ask(|reply| DriverCommand::Learn {
            add: false,
            pin: None,
            required: None,
            timeout,
            progress,
            reply,
        })
        .await?
    }

    /// Remove a node that no longer answers (the stick checks it has failed).
    pub async fn remove_failed(&self, node: NodeId) -> Result<NodeId, DriverError> {
        self.ask(|reply| DriverCommand::RemoveFailed { node, reply })
            .await?
    }

    /// The model cache and the models being learnt, when the driver has a cache.
    pub(crate) fn models(&self) -> Option<&Arc<model::Models>> {
        self.models.as_ref()
    }

    /// The S2 classes the driver holds keys for, highest first (empty without keys).
    pub fn s2_classes(&self) -> Vec<crate::security::SecurityClass> {
        self.s2_classes.clone()
    }

    /// Send a Get and return the report that answers it.
    pub async fn get(
        &self,
        node: NodeId,
        command: Command,
        priority: Priority,
    ) -> Result<Command, DriverError> {
        match self.transaction(node, command, Kind::Get, priority).await? {
            Answer::Report(c) => Ok(c),
            other => Err(unexpected(&other)),
        }
    }

    /// Send a command that changes the node, supervised when the node supports Supervision.
    pub async fn set(
        &self,
        node: NodeId,
        command: Command,
        priority: Priority,
    ) -> Result<SetOutcome, DriverError> {
        match self.transaction(node, command, Kind::Set, priority).await? {
            Answer::Supervision(SupervisionStatus::Success) => Ok(SetOutcome::Confirmed),
            Answer::Supervision(s) => Ok(SetOutcome::Refused(s)),
            Answer::Transmitted => Ok(SetOutcome::Transmitted),
            other => Err(unexpected(&other)),
        }
    }

    /// Transmit a command and wait only for the node's acknowledgement.
    pub async fn send(
        &self,
        node: NodeId,
        command: Command,
        priority: Priority,
    ) -> Result<(), DriverError> {
        self.transaction(node, command, Kind::Send, priority)
            .await
            .map(|_| ())
    }

    /// Ask the node for its node information frame.
    pub async fn request_node_info(&self, node: NodeId) -> Result<NodeInformation, DriverError> {
        match self
            .ask(|reply| DriverCommand::RequestNodeInfo { node, reply })
            .await??
        {
            Answer::NodeInfo(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// What is known of every node.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, DriverError> {
        self.ask(|reply| DriverCommand::Nodes { reply }).await
    }

    pub async fn node(&self, node: NodeId) -> Result<Option<NodeInfo>, DriverError> {
        Ok(self.nodes().await?.into_iter().find(|n| n.node_id == node))
    }

    /// The stick, when connected.
    pub async fn controller(&self) -> Result<Option<ControllerInfo>, DriverError> {
        self.ask(|reply| DriverCommand::Controller { reply }).await
    }

    /// Give the driver what an earlier interview learned (from the store), so it is not
    /// repeated. Takes effect for nodes the stick lists.
    pub async fn seed_node(&self, info: NodeInfo) -> Result<(), DriverError> {
        self.commands
            .send(DriverCommand::SeedNode(Box::new(info)))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// Interview a node again from scratch.
    pub async fn reinterview(&self, node: NodeId) -> Result<(), DriverError> {
        self.commands
            .send(DriverCommand::Reinterview { node })
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// Jobs waiting per node.
    pub async fn queue_depths(&self) -> Result<Vec<(NodeId, usize)>, DriverError> {
        self.ask(|reply| DriverCommand::QueueDepth { reply }).await
    }

    /// Stop the driver: the port is closed and every pending request fails with
    /// [`DriverError::Stopped`]. Returns once the actor has ended (at once if it had already).
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| DriverCommand::Shutdown { reply }).await;
    }

    pub async fn stats(&self) -> Result<DriverStats, DriverError> {
        self.ask(|reply| DriverCommand::Stats { reply }).await
    }

    /// A round trip to the stick: a GetControllerId through the driver and the serial session,
    /// answered by the stick within `within`. Fails at once, with [`DriverError::Disconnected`]
    /// and the reason, while the stick is not connected or being recovered, and with
    /// [`NotConnected::Unresponsive`] once the recovery ladder is exhausted; whether that
    /// should feed a watchdog is [`feeds_watchdog`].
    pub async fn ping(&self, within: Duration) -> Result<(), DriverError> {
        match tokio::time::timeout(within, self.ask(|reply| DriverCommand::Ping { reply })).await {
            Ok(r) => r?,
            Err(_) => Err(DriverError::PingTimeout { waited: within }),
        }
    }

    pub(crate) async fn interview_progress(&self, info: &NodeInfo) -> Result<(), DriverError> {
        self.commands
            .send(DriverCommand::InterviewProgress(Box::new(info.clone())))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    pub(crate) async fn interview_done(&self, info: NodeInfo, error: Option<DriverError>) {
        let _ = self
            .commands
            .send(DriverCommand::InterviewDone(Box::new(info), error))
            .await;
    }
}

/// Start the driver. It connects, runs startup, interviews nodes, and reconnects on its own.
pub struct Driver;

impl Driver {
    pub fn spawn(config: DriverConfig) -> (DriverHandle, mpsc::Receiver<DriverEvent>) {
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let s2_classes = secure::Secure::new(config.keys.clone()).s2_classes();
        let handle = DriverHandle {
            commands: cmd_tx,
            s2_classes,
            models: config.model_cache.clone().map(model::Models::new),
        };
        tokio::spawn(actor::run(config, handle.clone(), cmd_rx, ev_tx));
        (handle, ev_rx)
    }
}

pub(crate) fn status_name(s: TransmitStatus) -> String {
    s.name()
}

/// An answer of the wrong kind, named without its contents (a report may hold a PIN).
fn unexpected(answer: &Answer) -> DriverError {
    let answer = match answer {
        Answer::Transmitted => "transmitted".to_string(),
        Answer::Report(c) => format!("{} {}", c.class_name(), c.command_name()),
        Answer::Supervision(s) => format!("Supervision Report {s:?}"),
        Answer::NodeInfo(_) => "node information".to_string(),
    };
    DriverError::UnexpectedAnswer {
        context: "transaction",
        answer,
    }
}
