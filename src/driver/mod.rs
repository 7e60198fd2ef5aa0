//! The controller session: startup, node interview, per-node queues, transactions that pair a
//! command with its report, the unsolicited report stream, and reconnection.
//!
//! [`Driver::spawn`] starts the actor and returns a [`DriverHandle`] (cloneable) and the
//! stream of [`DriverEvent`]s. Knows nothing of SQLite or HTTP.

mod actor;
pub mod dump;
pub mod interview;
pub mod node;
mod secure;
pub mod startup;
pub mod transaction;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

pub use node::{NodeInfo, Reachability, UserCodeSupport};
pub use startup::{ControllerInfo, StartupConfig};
pub use transaction::{Expect, Priority, ReportMatcher};

use crate::cc::{Command, SupervisionStatus};
use crate::serial::link::{LinkConfig, LinkError};
use crate::serial::transport::{PortUrl, SimConnector, TransportError};
use crate::serialapi::application::NodeInformation;
use crate::serialapi::session::{SessionConfig, SessionError};
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
    /// Backoff between reconnection attempts.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// Jobs waiting per node; more are refused with [`DriverError::QueueFull`].
    pub queue_depth: usize,
    /// Interview nodes after startup.
    pub interview: bool,
    pub tx_options: u8,
    /// Stick requests that time out in a row before the stick is reset.
    pub unresponsive_after: u32,
    /// The network keys (S0, S2); without them secure nodes cannot be spoken to.
    pub keys: Option<crate::security::keys::NetworkKeys>,
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
            keys: None,
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

/// Why the driver could not do what was asked. Device refusals (a Supervision FAIL) are not
/// errors: they come back as [`SetOutcome::Refused`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("node {node} did not acknowledge (asleep, out of range or gone); retry after {retry_after:?}")]
    NodeUnreachable { node: NodeId, retry_after: Duration },
    #[error("node {node} did not answer {command} within {waited:?}")]
    NoReport {
        node: NodeId,
        command: &'static str,
        waited: Duration,
    },
    #[error("the stick could not transmit to node {node}: {status}")]
    TransmitFailed { node: NodeId, status: String },
    #[error("the stick stayed busy")]
    StickBusy,
    #[error("the stick is disconnected: {reason}")]
    Disconnected { reason: String },
    #[error("node {node} has {depth} jobs waiting; try again later")]
    QueueFull { node: NodeId, depth: usize },
    #[error("no node {node} in the network")]
    UnknownNode { node: NodeId },
    #[error("{command} is not a Get this driver can pair with a report")]
    NotAGet { command: &'static str },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("node {node}: security: {reason}")]
    Security { node: NodeId, reason: String },
    #[error("the driver has stopped")]
    Stopped,
}

/// What a caller can do about a [`DriverError`]: the class the engine acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again soon: the stick was busy, a frame was lost, a queue was full.
    Transient,
    /// The node did not answer (asleep, out of range, gone): try that node again after this.
    Unreachable { retry_after: Duration },
    /// The stick is not connected (unplugged, reconnecting, recovering): nothing reaches any
    /// node until it is back. The API answers 503; codes show `hub_disconnected`.
    NotConnected,
    /// Retrying the same request cannot help (no such node, not a Get, the driver stopped).
    Permanent,
}

impl DriverError {
    /// What a caller can do about this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            DriverError::NodeUnreachable { retry_after, .. } => ErrorClass::Unreachable {
                retry_after: *retry_after,
            },
            DriverError::Disconnected { .. } => ErrorClass::NotConnected,
            DriverError::UnknownNode { .. }
            | DriverError::NotAGet { .. }
            | DriverError::Stopped => ErrorClass::Permanent,
            DriverError::NoReport { .. }
            | DriverError::TransmitFailed { .. }
            | DriverError::StickBusy
            | DriverError::QueueFull { .. }
            // A node that could not open our frame resynchronises on the next one.
            | DriverError::Security { .. }
            | DriverError::Protocol(_) => ErrorClass::Transient,
        }
    }

    /// Whether trying again later can help.
    pub fn is_retryable(&self) -> bool {
        self.class() != ErrorClass::Permanent
    }
}

impl From<SessionError> for DriverError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Link(LinkError::Closed { reason }) => {
                DriverError::Disconnected { reason }
            }
            SessionError::Stopped => DriverError::Disconnected {
                reason: "serial session stopped".into(),
            },
            other => DriverError::Protocol(other.to_string()),
        }
    }
}

impl From<LinkError> for DriverError {
    fn from(e: LinkError) -> Self {
        SessionError::Link(e).into()
    }
}

impl From<TransportError> for DriverError {
    fn from(e: TransportError) -> Self {
        DriverError::Disconnected {
            reason: e.to_string(),
        }
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
    /// The stick is up (after startup, and after every reconnection).
    Connected(ControllerInfo),
    /// The stick is gone; the driver is reconnecting.
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
    Reinterview {
        node: NodeId,
    },
    QueueDepth {
        reply: oneshot::Sender<Vec<(NodeId, usize)>>,
    },
    Stats {
        reply: oneshot::Sender<DriverStats>,
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
            other => Err(DriverError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
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
            other => Err(DriverError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
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
            other => Err(DriverError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
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
            other => Err(DriverError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
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

    pub async fn stats(&self) -> Result<DriverStats, DriverError> {
        self.ask(|reply| DriverCommand::Stats { reply }).await
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
        };
        tokio::spawn(actor::run(config, handle.clone(), cmd_rx, ev_tx));
        (handle, ev_rx)
    }
}

pub(crate) fn status_name(s: TransmitStatus) -> String {
    s.name()
}
