//! The driver actor: one task that owns the connection, the node queues and every pending
//! transaction.
//!
//! Exactly one stick operation (a SendData until its callback, or a RequestNodeInfo until the
//! node information arrives) is in flight at a time. Waiting for a node's report does not hold
//! the stick: other nodes' frames go out meanwhile, while the waiting node gets nothing new until
//! its report arrives or times out. A node that does not acknowledge is backed off, and its
//! background work fails fast, so a sleeping lock never holds up the others.
//!
//! The connection itself goes through the recovery ladder ([`super::recovery`]): starting the
//! stick (opening the port, or starting it again on the open port) runs beside the command
//! loop, so while the stick is down every request fails at once with a not-connected error.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

mod inclusion;
mod incoming;
mod lifecycle;
mod outgoing;

use super::node::{NodeInfo, SecurityFailure};
use super::recovery::{Ladder, LadderConfig};
use super::secure::{Opened, Protection, Sealed, Secure};
use super::startup::ControllerInfo;
use super::transaction::{expected_report, Expect, Priority};
use super::{
    interview, status_name, Answer, DriverCommand, DriverConfig, DriverError, DriverEvent,
    DriverHandle, DriverStats, Kind, LinkCountersView, NotConnected,
};
use crate::cc::{Command, RawCommand, SupervisionCommand, SupervisionStatus};
use crate::serial::link::LinkHandle;
use crate::serialapi::application::update_state;
use crate::serialapi::session::{Exchange, SessionError, SessionEvent, SessionHandle};
use crate::serialapi::{
    HostRequest, NodeId, SendDataRequest, StickRequest, StickResponse, TransmitStatus,
};

type Reply = oneshot::Sender<Result<Answer, DriverError>>;

enum Op {
    Command {
        command: Command,
        kind: Kind,
    },
    NodeInfo,
    /// Bytes sent as they are, plain (an S2 Nonce Report).
    Raw {
        bytes: Vec<u8>,
    },
    /// A request to the stick itself (learn mode, protocol info).
    Host(inclusion::HostJob),
}

struct Job {
    op: Op,
    priority: Priority,
    reply: Option<Reply>,
    /// Sends whose callback reported a failure (other than NoAck).
    attempts: u8,
    /// Times the stick refused to take it (busy).
    not_accepted: u8,
    protection: Protection,
    /// Sent again after the node could not decrypt it (stale SPAN).
    s2_resends: u8,
}

impl Job {
    fn new(op: Op, priority: Priority, reply: Option<Reply>, protection: Protection) -> Job {
        Job {
            op,
            priority,
            reply,
            attempts: 0,
            not_accepted: 0,
            protection,
            s2_resends: 0,
        }
    }

    fn finish(mut self, r: Result<Answer, DriverError>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(r);
        }
    }

    /// A protocol answer the node waits for (a nonce, a Supervision Report): it may go out
    /// while the node's own transaction waits for its report.
    fn is_answer(&self) -> bool {
        match &self.op {
            Op::Raw { .. } => true,
            Op::Command { kind, .. } => {
                *kind == Kind::Send && self.priority == Priority::High && self.reply.is_none()
            }
            Op::NodeInfo | Op::Host(_) => false,
        }
    }

    fn name(&self) -> &'static str {
        match &self.op {
            Op::Command { command, .. } => command.command_name(),
            Op::NodeInfo => "RequestNodeInfo",
            Op::Raw { .. } => "Security2",
            Op::Host(h) => h.name(),
        }
    }
}

struct Waiting {
    job: Job,
    expect: Expect,
    /// The command went out S2-encapsulated.
    sealed: bool,
    deadline: Instant,
    started: Instant,
}

#[derive(Default)]
struct NodeState {
    info: Option<NodeInfo>,
    queues: [VecDeque<Job>; 3],
    waiting: Option<Waiting>,
    /// Commands that came from the node while its frame was still on the stick.
    early: Vec<Command>,
    backoff: Duration,
    backoff_until: Option<Instant>,
    /// Not before this instant (the stick was busy).
    retry_at: Option<Instant>,
    reachable: bool,
    supervision_session: u8,
    interviewing: bool,
    interview_retry_at: Option<Instant>,
    interview_backoff: Duration,
    /// An S2 Nonce Report came while our Nonce Get was still on the stick.
    nonce_arrived: bool,
    /// Answers that asked the node for a nonce while another job waits for its report.
    parked: Vec<Job>,
}

impl NodeState {
    fn depth(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum::<usize>() + usize::from(self.waiting.is_some())
    }

    fn next_session_id(&mut self) -> u8 {
        self.supervision_session = (self.supervision_session + 1) % 64;
        self.supervision_session
    }
}

type StickFuture = Pin<Box<dyn Future<Output = Result<Exchange, SessionError>> + Send>>;

struct StickOp {
    node: NodeId,
    job: Job,
    expect: Expect,
    sealed: bool,
    /// A SendData (its outcome says whether the stick is jammed).
    send_data: bool,
    /// SendDataAbort frames the session had sent when this started.
    aborts_before: u64,
    fut: StickFuture,
}

struct Conn {
    link: LinkHandle,
    session: SessionHandle,
    events: mpsc::Receiver<SessionEvent>,
    controller: ControllerInfo,
    stick: Option<StickOp>,
    /// The node whose information frame is awaited (RequestNodeInfo has no callback id).
    nif_wait: Option<(NodeId, Waiting)>,
    next_callback: u8,
    cursor: usize,
}

impl Conn {
    fn new(
        link: LinkHandle,
        session: SessionHandle,
        events: mpsc::Receiver<SessionEvent>,
        controller: ControllerInfo,
    ) -> Conn {
        Conn {
            link,
            session,
            events,
            controller,
            stick: None,
            nif_wait: None,
            next_callback: 0,
            cursor: 0,
        }
    }
}

struct State {
    config: DriverConfig,
    handle: DriverHandle,
    events: mpsc::Sender<DriverEvent>,
    nodes: BTreeMap<NodeId, NodeState>,
    seeded: BTreeMap<NodeId, NodeInfo>,
    stats: DriverStats,
    conn: Option<Conn>,
    secure: Secure,
    /// An inclusion or exclusion in progress.
    learning: Option<inclusion::Learning>,
    /// Requests to the stick itself, sent before node traffic.
    host_jobs: VecDeque<inclusion::HostJob>,
    /// Asked to stop: answered once the connection is closed.
    stop: Option<oneshot::Sender<()>>,
    /// Pings waiting for the stick's answer (one GetControllerId answers them all).
    pings: Vec<oneshot::Sender<Result<(), DriverError>>>,
    /// Where the stick is on the recovery ladder.
    ladder: Ladder,
    /// The stick being started (the port opened, or the stick started again on it).
    starting: Option<lifecycle::StartFuture>,
    /// When to open the port next, while it is closed.
    reopen_at: Option<Instant>,
    /// Why the link was lost, and why the port could not be opened: what requests are told
    /// while the stick is down.
    lost_reason: String,
    open_error: Option<std::sync::Arc<crate::serial::transport::TransportError>>,
    /// The last open error logged (each distinct one is logged once).
    open_error_logged: Option<String>,
    /// An abort was logged since the stick last worked (step 1 is logged once).
    abort_logged: bool,
}

pub(super) async fn run(
    config: DriverConfig,
    handle: DriverHandle,
    mut commands: mpsc::Receiver<DriverCommand>,
    events: mpsc::Sender<DriverEvent>,
) {
    let secure = Secure::new(config.keys.clone());
    let ladder = Ladder::new(LadderConfig {
        stuck_after: config.stuck_after.max(1),
        unresponsive_after: config.unresponsive_after.max(1),
        reopen_attempts: config.reopen_attempts,
        backoff_initial: config.reconnect_initial,
        backoff_max: config.reconnect_max.max(config.reconnect_initial),
    });
    let mut s = State {
        config,
        handle,
        events,
        nodes: BTreeMap::new(),
        seeded: BTreeMap::new(),
        stats: DriverStats::default(),
        conn: None,
        secure,
        learning: None,
        host_jobs: VecDeque::new(),
        stop: None,
        pings: Vec::new(),
        ladder,
        starting: None,
        reopen_at: Some(Instant::now()),
        lost_reason: String::new(),
        open_error: None,
        open_error_logged: None,
        abort_logged: false,
    };
    loop {
        if let Some(done) = s.stop.take() {
            // Every waiting job's reply is dropped with the state: its caller gets `Stopped`.
            s.starting = None;
            if let Some(conn) = s.conn.take() {
                drop(conn);
            }
            tracing::info!(port = %s.config.port, "driver stopped");
            let _ = done.send(());
            return;
        }
        s.maybe_open();
        let deadline = s.next_deadline();
        tokio::select! {
            biased;
            ev = conn_progress(s.conn.as_mut()) => match ev {
                ConnEvent::Stick(r) => s.on_stick_done(r),
                ConnEvent::Session(Some(SessionEvent::Closed { reason })) => s.link_lost(reason),
                ConnEvent::Session(None) => s.link_lost("serial session ended".into()),
                ConnEvent::Session(Some(ev)) => s.on_session_event(ev).await,
            },
            r = lifecycle::start_progress(&mut s.starting) => {
                s.starting = None;
                s.on_started(r).await;
            }
            cmd = commands.recv() => match cmd {
                Some(c) => s.on_command(c),
                None => return,
            },
            _ = sleep_until_opt(deadline) => s.on_timers(),
        }
        s.dispatch();
    }
}

enum ConnEvent {
    Stick(Result<Exchange, SessionError>),
    Session(Option<SessionEvent>),
}

/// The next thing the connection has: the stick operation done, or an event from the session.
async fn conn_progress(conn: Option<&mut Conn>) -> ConnEvent {
    let Some(conn) = conn else {
        return std::future::pending().await;
    };
    tokio::select! {
        biased;
        r = stick_progress(&mut conn.stick) => ConnEvent::Stick(r),
        ev = conn.events.recv() => ConnEvent::Session(ev),
    }
}

async fn stick_progress(op: &mut Option<StickOp>) -> Result<Exchange, SessionError> {
    match op {
        Some(op) => op.fut.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl State {
    fn emit(&self, ev: DriverEvent) {
        if self.events.try_send(ev).is_err() {
            tracing::warn!("driver event queue full: event dropped");
        }
    }

    async fn on_connected(&mut self, conn: Conn, held: Vec<SessionEvent>) {
        tracing::info!(
            home_id = format_args!("{:08x}", conn.controller.home_id),
            node_id = %conn.controller.node_id,
            library = %conn.controller.library,
            nodes = conn.controller.nodes.len(),
            "stick ready"
        );
        let controller = conn.controller.clone();
        self.secure
            .on_connected(controller.node_id, controller.home_id);
        // Nodes the stick no longer lists are forgotten.
        let listed: Vec<NodeId> = controller.nodes.iter().map(|(n, _)| *n).collect();
        self.nodes.retain(|n, _| listed.contains(n));
        for (node, protocol) in &controller.nodes {
            let st = self.nodes.entry(*node).or_insert_with(|| NodeState {
                reachable: true,
                backoff: self.config.node_backoff_initial,
                interview_backoff: self.config.node_backoff_initial,
                ..NodeState::default()
            });
            if st.info.is_none() {
                st.info = Some(
                    self.seeded
                        .remove(node)
                        .unwrap_or_else(|| NodeInfo::new(*node, protocol)),
                );
            }
        }
        self.conn = Some(conn);
        self.emit(DriverEvent::Connected(controller));
        let infos: Vec<NodeInfo> = self.nodes.values().filter_map(|s| s.info.clone()).collect();
        for info in infos {
            self.emit(DriverEvent::NodeUpdated(info));
        }
        for ev in held {
            self.on_session_event(ev).await;
        }
        if self.config.interview {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for n in ids {
                self.start_interview(n);
            }
        }
    }

    fn start_interview(&mut self, node: NodeId) {
        let Some(st) = self.nodes.get_mut(&node) else {
            return;
        };
        let Some(info) = st.info.clone() else {
            return;
        };
        if info.interviewed || st.interviewing {
            return;
        }
        st.interviewing = true;
        st.interview_retry_at = None;
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let (info, err) = interview::run(&handle, info).await;
            handle.interview_done(info, err).await;
        });
    }

    fn on_command(&mut self, c: DriverCommand) {
        match c {
            DriverCommand::Transaction {
                node,
                command,
                kind,
                priority,
                class,
                reply,
            } => {
                let protection = class.map_or(Protection::Node, Protection::Class);
                let job = Job::new(
                    Op::Command { command, kind },
                    priority,
                    Some(reply),
                    protection,
                );
                self.enqueue(node, job);
            }
            DriverCommand::Learn {
                add,
                pin,
                required,
                timeout,
                progress,
                reply,
            } => self.start_learning(add, pin, required, timeout, progress, reply),
            DriverCommand::RemoveFailed { node, reply } => self.remove_failed(node, reply),
            DriverCommand::RequestNodeInfo { node, reply } => {
                let job = Job::new(
                    Op::NodeInfo,
                    Priority::Background,
                    Some(reply),
                    Protection::Plain,
                );
                self.enqueue(node, job);
            }
            DriverCommand::Nodes { reply } => {
                let _ = reply.send(self.nodes.values().filter_map(|s| s.info.clone()).collect());
            }
            DriverCommand::Controller { reply } => {
                let _ = reply.send(self.conn.as_ref().map(|c| c.controller.clone()));
            }
            DriverCommand::SeedNode(info) => {
                let node = info.node_id;
                match self.nodes.get_mut(&node) {
                    Some(st) if !st.interviewing => {
                        st.info = Some(*info.clone());
                        self.emit(DriverEvent::NodeUpdated(*info));
                    }
                    Some(_) => {}
                    None => {
                        self.seeded.insert(node, *info);
                    }
                }
            }
            DriverCommand::InterviewDone(info, err) => self.on_interview_done(*info, err),
            DriverCommand::InterviewProgress(info) => {
                if let Some(st) = self.nodes.get_mut(&info.node_id) {
                    if st.interviewing {
                        st.info = Some(*info);
                    }
                }
            }
            DriverCommand::Shutdown { reply } => self.stop = Some(reply),
            DriverCommand::Reinterview { node } => {
                if let Some(st) = self.nodes.get_mut(&node) {
                    if let Some(old) = st.info.as_mut() {
                        let fresh = NodeInfo {
                            node_id: old.node_id,
                            reachability: old.reachability,
                            generic_class: old.generic_class,
                            specific_class: old.specific_class,
                            command_classes: None,
                            versions: BTreeMap::new(),
                            manufacturer: None,
                            user_code: None,
                            notification: None,
                            battery_level: None,
                            door_locked: None,
                            interviewed: false,
                            // The class granted at inclusion does not change, nor does a
                            // failed key exchange.
                            security_class: old.security_class,
                            secure_command_classes: None,
                            security_failure: old
                                .security_failure
                                .filter(|f| *f == SecurityFailure::KeyExchangeFailed),
                        };
                        *old = fresh;
                    }
                }
                self.start_interview(node);
            }
            DriverCommand::QueueDepth { reply } => {
                let _ = reply.send(self.nodes.iter().map(|(n, s)| (*n, s.depth())).collect());
            }
            DriverCommand::Ping { reply } => self.ping(reply),
            DriverCommand::Stats { reply } => {
                let mut stats = self.stats.clone();
                stats.stick_soft_resets = self.ladder.soft_resets();
                stats.stick_reopens = self.ladder.reopens();
                stats.security_failures = self.secure.auth_failures;
                if let Some(c) = &self.conn {
                    let l = c.link.stats();
                    stats.link = Some(LinkCountersView {
                        frames_sent: l.frames_sent,
                        frames_received: l.frames_received,
                        retransmissions: l.retransmissions,
                        naks_received: l.naks_received,
                        cans_received: l.cans_received,
                        naks_sent: l.naks_sent,
                        garbage_bytes: l.garbage_bytes,
                    });
                }
                let _ = reply.send(stats);
            }
        }
    }

    fn on_interview_done(&mut self, info: NodeInfo, err: Option<DriverError>) {
        let node = info.node_id;
        let retry = self.config.node_backoff_max;
        let Some(st) = self.nodes.get_mut(&node) else {
            return;
        };
        st.interviewing = false;
        st.info = Some(info.clone());
        if let Some(e @ DriverError::SecurityRequired { .. }) = err {
            // Asking again cannot help: nothing more goes to it until it is included again.
            tracing::info!(%node, error = %e, "interview stopped");
        } else if let Some(e) = err {
            // Resume later where it stopped.
            st.interview_retry_at = Some(Instant::now() + st.interview_backoff);
            tracing::info!(%node, error = %e, after = ?st.interview_backoff, "interview interrupted, will resume");
            st.interview_backoff = (st.interview_backoff * 2).min(retry);
        } else {
            tracing::info!(%node, "interview complete");
        }
        self.emit(DriverEvent::NodeUpdated(info));
    }

    fn enqueue(&mut self, node: NodeId, job: Job) {
        if self.conn.is_none() {
            job.finish(Err(self.not_connected()));
            return;
        }
        let depth = self.config.queue_depth;
        let on_stick = self
            .conn
            .as_ref()
            .and_then(|c| c.stick.as_ref())
            .is_some_and(|op| op.node == node);
        let Some(st) = self.nodes.get_mut(&node) else {
            job.finish(Err(DriverError::UnknownNode { node }));
            return;
        };
        if let Op::Command {
            command,
            kind: Kind::Get,
        } = &job.op
        {
            if expected_report(command).is_none() {
                let name = command.command_name();
                job.finish(Err(DriverError::NotAGet { command: name }));
                return;
            }
        }
        // An unreachable node: background work fails fast; user work is tried anyway.
        if let Some(until) = st.backoff_until {
            let now = Instant::now();
            if until > now && job.priority == Priority::Background {
                job.finish(Err(DriverError::NodeUnreachable {
                    node,
                    retry_after: until - now,
                }));
                return;
            }
        }
        if st.depth() + usize::from(on_stick) >= depth {
            job.finish(Err(DriverError::QueueFull { node, depth }));
            return;
        }
        st.queues[job.priority as usize].push_back(job);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut take = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        for st in self.nodes.values() {
            take(st.waiting.as_ref().map(|w| w.deadline));
            take(st.retry_at);
            take(st.interview_retry_at);
            if st.queues.iter().any(|q| !q.is_empty()) {
                take(st.backoff_until);
            }
        }
        if let Some(c) = &self.conn {
            take(c.nif_wait.as_ref().map(|(_, w)| w.deadline));
        }
        take(self.learning_deadline());
        if self.conn.is_none() && self.starting.is_none() {
            take(self.reopen_at);
        }
        t
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let mut interviews = Vec::new();
        for (node, st) in self.nodes.iter_mut() {
            if st.waiting.as_ref().is_some_and(|w| now >= w.deadline) {
                let w = st.waiting.take().expect("checked");
                let waited = now - w.started;
                let command = w.job.name();
                tracing::debug!(%node, command, ?waited, "no report in time");
                w.job.finish(Err(DriverError::NoReport {
                    node: *node,
                    command,
                    waited,
                }));
            }
            if st.retry_at.is_some_and(|t| now >= t) {
                st.retry_at = None;
            }
            if st.interview_retry_at.is_some_and(|t| now >= t) {
                st.interview_retry_at = None;
                interviews.push(*node);
            }
        }
        if let Some(c) = self.conn.as_mut() {
            if c.nif_wait.as_ref().is_some_and(|(_, w)| now >= w.deadline) {
                let (node, w) = c.nif_wait.take().expect("checked");
                w.job.finish(Err(DriverError::NoReport {
                    node,
                    command: "RequestNodeInfo",
                    waited: now - w.started,
                }));
            }
        }
        for n in interviews {
            self.start_interview(n);
        }
        self.learning_timers(now);
    }

    fn events_reachable(&self, node: NodeId, reachable: bool) {
        self.emit(DriverEvent::NodeReachability { node, reachable });
    }
}
