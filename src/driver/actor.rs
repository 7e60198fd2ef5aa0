//! The driver actor: one task that owns the connection, the node queues and every pending
//! transaction.
//!
//! Exactly one stick operation (a SendData until its callback, or a RequestNodeInfo until the
//! node information arrives) is in flight at a time. Waiting for a node's report does not hold
//! the stick: other nodes' frames go out meanwhile, while the waiting node gets nothing new until
//! its report arrives or times out. A node that does not acknowledge is backed off, and its
//! background work fails fast, so a sleeping lock never holds up the others.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

mod inclusion;

use super::node::NodeInfo;
use super::secure::{Opened, Protection, Sealed, Secure};
use super::startup::{self, ControllerInfo};
use super::transaction::{expected_report, Expect, Priority};
use super::{
    interview, status_name, Answer, DriverCommand, DriverConfig, DriverError, DriverEvent,
    DriverHandle, DriverStats, Kind, LinkCountersView,
};
use crate::cc::{Command, RawCommand, SupervisionCommand, SupervisionStatus};
use crate::serial::link::{self, LinkHandle};
use crate::serial::transport;
use crate::serialapi::application::update_state;
use crate::serialapi::session::{self, Exchange, SessionError, SessionEvent, SessionHandle};
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
    stick_failures: u32,
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
}

pub(super) async fn run(
    config: DriverConfig,
    handle: DriverHandle,
    mut commands: mpsc::Receiver<DriverCommand>,
    events: mpsc::Sender<DriverEvent>,
) {
    let secure = Secure::new(config.keys.clone());
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
    };
    let mut backoff = s.config.reconnect_initial;
    let mut last_error: Option<String> = None;
    loop {
        if s.conn.is_none() {
            match connect(&s.config).await {
                Ok((conn, held)) => {
                    if last_error.take().is_some() {
                        tracing::info!(port = %s.config.port, "stick connected again");
                    }
                    backoff = s.config.reconnect_initial;
                    s.on_connected(conn, held).await;
                }
                Err(e) => {
                    let msg = e.to_string();
                    if last_error.as_deref() != Some(&msg) {
                        tracing::warn!(port = %s.config.port, error = %msg, "cannot reach the stick; retrying with backoff");
                        last_error = Some(msg.clone());
                    }
                    let until = Instant::now() + backoff;
                    backoff = (backoff * 2).min(s.config.reconnect_max);
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(until) => break,
                            cmd = commands.recv() => match cmd {
                                Some(c) => s.on_command(c),
                                None => return,
                            },
                        }
                    }
                    continue;
                }
            }
        }
        let deadline = s.next_deadline();
        let conn = s.conn.as_mut().expect("connected");
        tokio::select! {
            biased;
            r = stick_progress(&mut conn.stick) => s.on_stick_done(r),
            ev = conn.events.recv() => match ev {
                Some(SessionEvent::Closed { reason }) => s.disconnected(reason).await,
                None => s.disconnected("serial session ended".into()).await,
                Some(ev) => s.on_session_event(ev).await,
            },
            cmd = commands.recv() => match cmd {
                Some(c) => s.on_command(c),
                None => return,
            },
            _ = sleep_until_opt(deadline) => s.on_timers(),
        }
        s.dispatch();
    }
}

async fn connect(config: &DriverConfig) -> Result<(Conn, Vec<SessionEvent>), DriverError> {
    let stream = transport::open(&config.port, config.simulator.as_deref()).await?;
    let (link, link_events, _task) = link::spawn(stream, config.link.clone());
    let (session, mut events) = session::spawn(link.clone(), link_events, config.session.clone());
    let (controller, held) = startup::run(&link, &session, &mut events, &config.startup).await?;
    Ok((
        Conn {
            link,
            session,
            events,
            controller,
            stick: None,
            nif_wait: None,
            next_callback: 0,
            cursor: 0,
            stick_failures: 0,
        },
        held,
    ))
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

    async fn disconnected(&mut self, reason: String) {
        tracing::warn!(%reason, "stick disconnected");
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let err = || DriverError::Disconnected {
            reason: reason.clone(),
        };
        if let Some(op) = conn.stick.take() {
            op.job.finish(Err(err()));
        }
        if let Some((_, w)) = conn.nif_wait.take() {
            w.job.finish(Err(err()));
        }
        for st in self.nodes.values_mut() {
            if let Some(w) = st.waiting.take() {
                w.job.finish(Err(err()));
            }
            for q in st.queues.iter_mut() {
                for j in q.drain(..) {
                    j.finish(Err(err()));
                }
            }
            for j in st.parked.drain(..) {
                j.finish(Err(err()));
            }
            st.nonce_arrived = false;
            st.interviewing = false;
        }
        for hj in std::mem::take(&mut self.host_jobs) {
            hj.fail(self, err());
        }
        self.end_learning(Err(err()));
        self.stats.reconnects += 1;
        self.emit(DriverEvent::Disconnected { reason });
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
                            // The class granted at inclusion does not change.
                            security_class: old.security_class,
                        };
                        *old = fresh;
                    }
                }
                self.start_interview(node);
            }
            DriverCommand::QueueDepth { reply } => {
                let _ = reply.send(self.nodes.iter().map(|(n, s)| (*n, s.depth())).collect());
            }
            DriverCommand::Stats { reply } => {
                let mut stats = self.stats.clone();
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
        if let Some(e) = err {
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
            job.finish(Err(DriverError::Disconnected {
                reason: "the stick is not connected".into(),
            }));
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

    /// Start the next job on the stick, if it is free.
    fn dispatch(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.stick.is_some() {
            return;
        }
        if let Some(hj) = self.host_jobs.pop_front() {
            let session = conn.session.clone();
            let req = hj.request();
            self.stats.transactions += 1;
            let fut: StickFuture = Box::pin(async move { session.request(req).await });
            conn.stick = Some(StickOp {
                node: NodeId(0),
                job: Job::new(Op::Host(hj), Priority::High, None, Protection::Plain),
                expect: Expect::Transmit,
                sealed: false,
                fut,
            });
            return;
        }
        let now = Instant::now();
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        for prio in [Priority::High, Priority::Normal, Priority::Background] {
            for k in 0..ids.len() {
                let idx = (conn.cursor + k) % ids.len();
                let node = ids[idx];
                let st = self.nodes.get_mut(&node).expect("listed");
                let answer_first = st.queues[prio as usize].front().is_some_and(Job::is_answer);
                if (st.waiting.is_some() && !answer_first)
                    || st.queues[prio as usize].is_empty()
                    || st.retry_at.is_some_and(|t| t > now)
                {
                    continue;
                }
                let in_backoff = st.backoff_until.is_some_and(|t| t > now);
                if in_backoff && prio != Priority::High {
                    continue;
                }
                let is_nif = matches!(
                    st.queues[prio as usize].front().map(|j| &j.op),
                    Some(Op::NodeInfo)
                );
                if is_nif && conn.nif_wait.is_some() {
                    continue;
                }
                let job = st.queues[prio as usize].pop_front().expect("non-empty");
                conn.cursor = (idx + 1) % ids.len();
                if start_job(
                    &self.config,
                    conn,
                    st,
                    node,
                    job,
                    &mut self.stats,
                    &mut self.secure,
                ) {
                    return;
                }
            }
        }
    }

    fn on_stick_done(&mut self, r: Result<Exchange, SessionError>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let Some(op) = conn.stick.take() else {
            return;
        };
        let node = op.node;
        let now = Instant::now();
        let ex = match r {
            Ok(ex) => {
                conn.stick_failures = 0;
                ex
            }
            Err(e) => {
                conn.stick_failures += 1;
                if conn.stick_failures >= self.config.unresponsive_after {
                    tracing::warn!(
                        failures = conn.stick_failures,
                        "stick unresponsive; reconnecting with a soft reset"
                    );
                    // Closing the link ends the session; the driver reconnects and resets.
                    conn.stick_failures = 0;
                    drop_link(conn);
                }
                if let Op::Host(hj) = op.job.op {
                    hj.fail(self, e.into());
                } else {
                    op.job.finish(Err(e.into()));
                }
                return;
            }
        };
        let op = match op.job.op {
            Op::Host(hj) => {
                self.on_host_job_done(hj, ex.callback, ex.response);
                return;
            }
            _ => op,
        };
        let Some(st) = self.nodes.get_mut(&node) else {
            op.job.finish(Err(DriverError::UnknownNode { node }));
            return;
        };
        if let Op::NodeInfo = op.job.op {
            match ex.response {
                Some(StickResponse::RequestNodeInfo { success: true }) => {
                    conn.nif_wait = Some((
                        node,
                        Waiting {
                            job: op.job,
                            expect: Expect::NodeInfo,
                            sealed: false,
                            deadline: now + self.config.report_timeout * 2,
                            started: now,
                        },
                    ));
                }
                _ => op.job.finish(Err(DriverError::StickBusy)),
            }
            return;
        }
        let mut job = op.job;
        if matches!(
            ex.response,
            Some(StickResponse::SendData { accepted: false })
        ) {
            job.not_accepted += 1;
            if job.not_accepted > self.config.not_accepted_retries {
                job.finish(Err(DriverError::StickBusy));
            } else {
                st.retry_at = Some(now + self.config.not_accepted_wait);
                st.queues[job.priority as usize].push_front(job);
            }
            return;
        }
        let status = match &ex.callback {
            Some(StickRequest::SendDataCallback(c)) => c.transmit_status,
            _ => TransmitStatus::Fail,
        };
        match status {
            TransmitStatus::Ok => {
                if !st.reachable {
                    st.reachable = true;
                    self.events_reachable(node, true);
                }
                let st = self.nodes.get_mut(&node).expect("present");
                st.backoff = self.config.node_backoff_initial;
                st.backoff_until = None;
                if op.expect == Expect::Transmit {
                    job.finish(Ok(Answer::Transmitted));
                    return;
                }
                if op.expect == Expect::Nonce && std::mem::take(&mut st.nonce_arrived) {
                    // The nonce is here already: the command goes out next.
                    st.queues[job.priority as usize].push_front(job);
                    return;
                }
                if op.expect == Expect::Nonce && st.waiting.is_some() {
                    // An answer sent while another job waits: it goes out when the nonce comes.
                    st.parked.push(job);
                    return;
                }
                let early = std::mem::take(&mut st.early);
                let mut w = Waiting {
                    job,
                    expect: op.expect,
                    sealed: op.sealed,
                    deadline: now + self.config.report_timeout,
                    started: now,
                };
                for c in early {
                    match complete(&mut w, &c) {
                        Completion::Done(a) => {
                            w.job.finish(Ok(a));
                            return;
                        }
                        Completion::Extend(d) => w.deadline = now + d,
                        Completion::No => {}
                    }
                }
                st.waiting = Some(w);
            }
            TransmitStatus::NoAck => {
                let retry_after = st.backoff;
                st.backoff_until = Some(now + st.backoff);
                st.backoff = (st.backoff * 2).min(self.config.node_backoff_max);
                *self
                    .stats
                    .callbacks_failed
                    .entry(status_name(status))
                    .or_default() += 1;
                job.finish(Err(DriverError::NodeUnreachable { node, retry_after }));
                // Background work for it fails now rather than waiting behind the backoff.
                let st = self.nodes.get_mut(&node).expect("present");
                let bg: Vec<Job> = st.queues[Priority::Background as usize].drain(..).collect();
                for j in bg {
                    j.finish(Err(DriverError::NodeUnreachable { node, retry_after }));
                }
                if st.reachable {
                    st.reachable = false;
                    tracing::info!(%node, ?retry_after, "node not acknowledging");
                    self.events_reachable(node, false);
                }
            }
            other => {
                *self
                    .stats
                    .callbacks_failed
                    .entry(status_name(other))
                    .or_default() += 1;
                job.attempts += 1;
                if job.attempts >= self.config.send_attempts {
                    job.finish(Err(DriverError::TransmitFailed {
                        node,
                        status: status_name(other),
                    }));
                } else {
                    st.retry_at = Some(now + self.config.not_accepted_wait);
                    st.queues[job.priority as usize].push_front(job);
                }
            }
        }
    }

    fn events_reachable(&self, node: NodeId, reachable: bool) {
        self.emit(DriverEvent::NodeReachability { node, reachable });
    }

    async fn on_session_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Unsolicited(msg) => self.on_unsolicited(msg).await,
            SessionEvent::Unparsable { function, error } => {
                tracing::debug!(function, %error, "unparsable frame from the stick dropped");
            }
            SessionEvent::Closed { reason } => self.disconnected(reason).await,
        }
    }

    async fn on_unsolicited(&mut self, msg: StickRequest) {
        match msg {
            StickRequest::ApplicationCommand(_) | StickRequest::BridgeApplicationCommand(_) => {
                let Some((node, bytes)) = msg.node_command() else {
                    return;
                };
                if matches!(
                    bytes.first(),
                    Some(&crate::security::s2::encap::CC) | Some(&crate::security::s0::CC)
                ) {
                    let frame = bytes.to_vec();
                    self.on_secure_frame(node, &frame);
                    return;
                }
                match Command::parse(bytes) {
                    Ok(cmd) => self.on_node_command(node, cmd),
                    Err(e) => {
                        tracing::debug!(%node, error = %e, "unparsable command from node dropped")
                    }
                }
            }
            StickRequest::ApplicationUpdate(u) => {
                let Some(conn) = self.conn.as_mut() else {
                    return;
                };
                match u.state {
                    update_state::NODE_INFO_RECEIVED => {
                        if let Some(nif) = &u.node_info {
                            if let Some(info) =
                                self.nodes.get_mut(&u.node_id).and_then(|s| s.info.as_mut())
                            {
                                info.command_classes = Some(nif.supported());
                            }
                        }
                        if conn.nif_wait.as_ref().is_some_and(|(n, _)| *n == u.node_id) {
                            let (_, w) = conn.nif_wait.take().expect("checked");
                            match u.node_info {
                                Some(nif) => w.job.finish(Ok(Answer::NodeInfo(nif))),
                                None => w.job.finish(Err(DriverError::Protocol(
                                    "empty node information".into(),
                                ))),
                            }
                        }
                    }
                    update_state::NODE_INFO_REQUEST_FAILED => {
                        if let Some((node, w)) = conn.nif_wait.take() {
                            w.job.finish(Err(DriverError::NoReport {
                                node,
                                command: "RequestNodeInfo",
                                waited: Instant::now() - w.started,
                            }));
                        }
                    }
                    _ => tracing::debug!(state = u.state, node = %u.node_id, "application update"),
                }
            }
            StickRequest::AddNodeStatus(s) | StickRequest::RemoveNodeStatus(s) => {
                self.on_learn_status(s);
            }
            StickRequest::SerialApiStarted(_) => {
                tracing::warn!("the stick restarted on its own; reconnecting");
                if let Some(c) = self.conn.as_mut() {
                    drop_link(c);
                }
            }
            other => tracing::debug!(function = ?other.function(), "unsolicited stick message"),
        }
    }

    /// An S0 or S2 frame from a node: opened and dispatched, or used to (re)synchronise.
    fn on_secure_frame(&mut self, node: NodeId, frame: &[u8]) {
        if self.bootstrap_frame(node, frame) {
            return;
        }
        let Some(st) = self.nodes.get(&node) else {
            return;
        };
        let probing = st.waiting.as_ref().and_then(|w| match w.job.protection {
            Protection::Class(c) => Some(c),
            _ => None,
        });
        let classes = match (probing, st.info.as_ref().and_then(|i| i.security_class)) {
            (Some(c), _) | (None, Some(c)) => vec![c],
            (None, None) => self.handle.s2_classes(),
        };
        match self.secure.open(node, frame, &classes) {
            Opened::Command { command, reply, .. } => {
                if let Some(reply) = reply {
                    let job = Job::new(
                        Op::Raw { bytes: reply },
                        Priority::High,
                        None,
                        Protection::Plain,
                    );
                    self.enqueue(node, job);
                }
                match Command::parse(&command) {
                    Ok(cmd) => self.on_node_command(node, cmd),
                    Err(e) => {
                        tracing::debug!(%node, error = %e, "unparsable secure command dropped")
                    }
                }
            }
            Opened::Reply(reply) => {
                let job = Job::new(
                    Op::Raw { bytes: reply },
                    Priority::High,
                    None,
                    Protection::Plain,
                );
                self.enqueue(node, job);
            }
            Opened::NonceReport { sos } => {
                let st = self.nodes.get_mut(&node).expect("present");
                if !st.parked.is_empty() {
                    for job in std::mem::take(&mut st.parked) {
                        st.queues[job.priority as usize].push_front(job);
                    }
                    return;
                }
                match st.waiting.take() {
                    Some(w) if w.expect == Expect::Nonce => {
                        st.queues[w.job.priority as usize].push_front(w.job);
                    }
                    Some(mut w) if sos && w.sealed => {
                        if w.job.s2_resends == 0 {
                            // Out of step (the node lost its SPAN): once more with a new one.
                            w.job.s2_resends = 1;
                            st.queues[w.job.priority as usize].push_front(w.job);
                        } else {
                            w.job.finish(Err(DriverError::Security {
                                node,
                                reason: "the node could not decrypt the command (a class it was not granted, or another network key)".into(),
                            }));
                        }
                    }
                    other => {
                        st.waiting = other;
                        st.nonce_arrived = true;
                    }
                }
            }
            Opened::Nothing => {}
        }
    }

    fn on_node_command(&mut self, node: NodeId, cmd: Command) {
        let now_utc = chrono::Utc::now();
        // A lock that wraps its report in Supervision waits for our Supervision Report.
        if let Command::Supervision(SupervisionCommand::Get {
            session_id,
            encapsulated,
            ..
        }) = &cmd
        {
            let answer = Command::Supervision(SupervisionCommand::Report {
                more_status_updates: false,
                wake_up_request: false,
                session_id: *session_id,
                status: SupervisionStatus::Success,
                duration: 0,
            });
            // At the level the Get came in (the node's class when it came inside S2).
            let job = Job::new(
                Op::Command {
                    command: answer,
                    kind: Kind::Send,
                },
                Priority::High,
                None,
                Protection::Node,
            );
            self.enqueue(node, job);
            match Command::parse(&encapsulated.0) {
                Ok(inner) => return self.on_node_command(node, inner),
                Err(_) => return,
            }
        }
        let Some(st) = self.nodes.get_mut(&node) else {
            tracing::debug!(%node, "command from an unknown node dropped");
            return;
        };
        if !st.reachable {
            st.reachable = true;
            st.backoff_until = None;
            st.backoff = self.config.node_backoff_initial;
            self.emit(DriverEvent::NodeReachability {
                node,
                reachable: true,
            });
        }
        let st = self.nodes.get_mut(&node).expect("present");
        if let Some(w) = st.waiting.as_mut() {
            match complete(w, &cmd) {
                Completion::Done(a) => {
                    let w = st.waiting.take().expect("present");
                    w.job.finish(Ok(a));
                    return;
                }
                Completion::Extend(d) => {
                    w.deadline = Instant::now() + d;
                    return;
                }
                Completion::No => {}
            }
        }
        let on_stick = self
            .conn
            .as_ref()
            .and_then(|c| c.stick.as_ref())
            .is_some_and(|op| op.node == node && op.expect != Expect::Transmit);
        if on_stick {
            // The report overtook the callback: keep it for the transaction.
            st.early.push(cmd.clone());
        }
        self.stats.reports_unsolicited += 1;
        tracing::debug!(%node, class = cmd.class_name(), command = cmd.command_name(), "report from node");
        self.emit(DriverEvent::Report {
            node,
            command: cmd,
            received_at: now_utc,
        });
    }
}

enum Completion {
    Done(Answer),
    /// Still working: wait this much longer.
    Extend(Duration),
    No,
}

fn complete(w: &mut Waiting, cmd: &Command) -> Completion {
    match &w.expect {
        Expect::Report(m) if m.matches(cmd) => Completion::Done(Answer::Report(cmd.clone())),
        Expect::Supervision { session_id } => match cmd {
            Command::Supervision(SupervisionCommand::Report {
                session_id: s,
                status,
                duration,
                ..
            }) if s == session_id => match status {
                SupervisionStatus::Working => {
                    Completion::Extend(Duration::from_secs(u64::from(*duration).max(5)))
                }
                other => Completion::Done(Answer::Supervision(*other)),
            },
            _ => Completion::No,
        },
        _ => Completion::No,
    }
}

/// Close the link so the session ends and the driver reconnects (which soft-resets the stick).
fn drop_link(conn: &mut Conn) {
    let (tx, rx) = mpsc::channel(1);
    drop(tx);
    // Replacing the event receiver with a closed one makes the loop see the session end.
    conn.events = rx;
}

/// Put `job` on the stick. Returns false when it could not go out (finished with an error).
fn start_job(
    config: &DriverConfig,
    conn: &mut Conn,
    st: &mut NodeState,
    node: NodeId,
    job: Job,
    stats: &mut DriverStats,
    secure: &mut Secure,
) -> bool {
    stats.transactions += 1;
    let session = conn.session.clone();
    let (req, expect, sealed) = match &job.op {
        Op::Host(_) => {
            // Host jobs start from `dispatch`; one here is a bug, not worth a panic.
            tracing::error!("a stick request was queued as node traffic: dropped");
            return false;
        }
        Op::NodeInfo => (
            HostRequest::RequestNodeInfo { node_id: node },
            Expect::NodeInfo,
            false,
        ),
        Op::Raw { bytes } => {
            conn.next_callback = conn.next_callback % 255 + 1;
            stats.send_data += 1;
            (
                HostRequest::SendData(SendDataRequest {
                    node_id: node,
                    command: bytes.clone(),
                    tx_options: config.tx_options,
                    callback_id: conn.next_callback,
                }),
                Expect::Transmit,
                false,
            )
        }
        Op::Command { command, kind } => {
            let supervised =
                *kind == Kind::Set && st.info.as_ref().is_some_and(|i| i.supports_supervision());
            let (bytes, expect) = match kind {
                Kind::Get => (
                    command.encode(),
                    Expect::Report(expected_report(command).expect("checked at enqueue")),
                ),
                Kind::Set if supervised => {
                    let session_id = st.next_session_id();
                    let wrapped = Command::Supervision(SupervisionCommand::Get {
                        status_updates: false,
                        session_id,
                        encapsulated: RawCommand(command.encode()),
                    });
                    (wrapped.encode(), Expect::Supervision { session_id })
                }
                Kind::Set | Kind::Send => (command.encode(), Expect::Transmit),
            };
            let class = match job.protection {
                Protection::Node => st.info.as_ref().and_then(|i| i.security_class),
                Protection::Class(c) => Some(c),
                Protection::Plain => None,
            };
            let (bytes, expect, sealed) = match secure.seal(node, class, bytes) {
                Ok(Sealed::Send(b)) => (b, expect, class.is_some()),
                Ok(Sealed::NonceFirst(get)) => {
                    st.nonce_arrived = false;
                    (get, Expect::Nonce, false)
                }
                Err(e) => {
                    job.finish(Err(DriverError::Security {
                        node,
                        reason: e.to_string(),
                    }));
                    return false;
                }
            };
            conn.next_callback = conn.next_callback % 255 + 1;
            stats.send_data += 1;
            tracing::debug!(%node, class = command.class_name(), command = command.command_name(), supervised, security = ?class, nonce_first = (expect == Expect::Nonce), "sending");
            (
                HostRequest::SendData(SendDataRequest {
                    node_id: node,
                    command: bytes,
                    tx_options: config.tx_options,
                    callback_id: conn.next_callback,
                }),
                expect,
                sealed,
            )
        }
    };
    let fut: StickFuture = Box::pin(async move { session.request(req).await });
    conn.stick = Some(StickOp {
        node,
        job,
        expect,
        sealed,
        fut,
    });
    true
}
