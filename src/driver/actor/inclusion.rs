//! Adding and removing nodes: the stick's learn mode (AddNodeToNetwork /
//! RemoveNodeFromNetwork and their status callbacks), then, for a node that speaks S2, key
//! exchange ([`Including`]) before its interview, so it is only ever spoken to securely.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Job, Op, Protection, State};
use crate::driver::{
    DriverError, DriverEvent, InclusionEvent, LearnFailure, NodeInfo, Priority, SecurityFailure,
};
use crate::security::s2::bootstrap::{BootstrapError, Including};
use crate::security::SecurityClass;
use crate::serialapi::application::NodeInformation;
use crate::serialapi::network::{
    add_status, mode, remove_status, InclusionRequest, InclusionStatus,
};
use crate::serialapi::{HostRequest, NodeId, StickRequest, StickResponse};

/// An inclusion or exclusion in progress.
pub(in crate::driver) struct Learning {
    add: bool,
    callback_id: u8,
    pin: Option<u16>,
    required: Option<SecurityClass>,
    deadline: Instant,
    progress: mpsc::Sender<InclusionEvent>,
    reply: Option<oneshot::Sender<Result<NodeId, DriverError>>>,
    phase: Phase,
}

enum Phase {
    /// Learn mode open (or opening): waiting for a node.
    Open,
    /// A node is joining; its information frame so far.
    Joining(NodeId, Option<NodeInformation>),
    /// STOP sent after the protocol part; waiting for DONE.
    Stopping(NodeId, Option<NodeInformation>),
    /// Asked the stick about the new node.
    ProtocolInfo(NodeId, Option<NodeInformation>),
    /// S2 key exchange with the new node.
    Bootstrapping(NodeId, Box<Including>),
    /// S0 key exchange with the new node (it has no S2).
    S0Keys(NodeId, S0Step),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S0Step {
    /// Scheme Get sent.
    Scheme,
    /// Nonce Get sent, to seal the Network Key Set.
    Nonce,
    /// Network Key Set sent under the temporary key: waiting for Network Key Verify.
    Verify,
}

/// A host request the inclusion needs, with what to do with its answer.
pub(in crate::driver) enum HostJob {
    Learn(HostRequest),
    ProtocolInfo(NodeId),
    /// Remove a node the stick knows has failed.
    RemoveFailed {
        node: NodeId,
        callback_id: u8,
        reply: oneshot::Sender<Result<NodeId, DriverError>>,
    },
    /// A round trip to the stick (GetControllerId); the pings waiting answered together.
    Ping,
}

impl HostJob {
    pub(super) fn request(&self) -> HostRequest {
        match self {
            HostJob::Learn(r) => r.clone(),
            HostJob::ProtocolInfo(node) => HostRequest::GetNodeProtocolInfo { node_id: *node },
            HostJob::RemoveFailed {
                node, callback_id, ..
            } => HostRequest::RemoveFailedNode {
                node_id: *node,
                callback_id: *callback_id,
            },
            HostJob::Ping => HostRequest::GetControllerId,
        }
    }

    /// Whether the stick transmits to a node for it (and so refuses it on top of another
    /// transaction): removing a failed node does (it checks the node first).
    pub(super) fn uses_radio(&self) -> bool {
        matches!(self, HostJob::RemoveFailed { .. })
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            HostJob::Learn(_) => "learn mode",
            HostJob::ProtocolInfo(_) => "GetNodeProtocolInfo",
            HostJob::RemoveFailed { .. } => "RemoveFailedNode",
            HostJob::Ping => "GetControllerId",
        }
    }

    /// The request failed at the stick.
    pub(super) fn fail(self, state: &mut State, e: DriverError) {
        match self {
            HostJob::RemoveFailed { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            HostJob::Ping => state.answer_pings(Err(e)),
            _ => state.end_learning(Err(e)),
        }
    }
}

fn learn(failure: LearnFailure) -> DriverError {
    DriverError::Learn { failure }
}

/// How long each step of a key exchange may take (the specification's TA/TB timers).
const BOOTSTRAP_STEP: Duration = Duration::from_secs(10);

impl State {
    pub(super) fn start_learning(
        &mut self,
        add: bool,
        pin: Option<u16>,
        required: Option<SecurityClass>,
        timeout: Duration,
        progress: mpsc::Sender<InclusionEvent>,
        reply: oneshot::Sender<Result<NodeId, DriverError>>,
    ) {
        if self.conn.is_none() {
            let _ = reply.send(Err(self.not_connected()));
            return;
        }
        if self.learning.is_some() {
            let _ = reply.send(Err(learn(LearnFailure::AlreadyRunning)));
            return;
        }
        let conn = self.conn.as_mut().expect("checked");
        conn.next_callback = conn.next_callback % 255 + 1;
        let callback_id = conn.next_callback;
        let req = InclusionRequest {
            mode: mode::ANY | mode::FLAG_HIGH_POWER | mode::FLAG_NETWORK_WIDE,
            callback_id,
            extra: Vec::new(),
        };
        self.host_jobs.push_back(HostJob::Learn(if add {
            HostRequest::AddNodeToNetwork(req)
        } else {
            HostRequest::RemoveNodeFromNetwork(req)
        }));
        tracing::info!(add, "learn mode opening");
        self.learning = Some(Learning {
            add,
            callback_id,
            pin,
            required,
            deadline: Instant::now() + timeout,
            progress,
            reply: Some(reply),
            phase: Phase::Open,
        });
    }

    fn stop_learn_mode(&mut self) {
        let Some(l) = self.learning.as_ref() else {
            return;
        };
        let req = InclusionRequest {
            mode: mode::STOP,
            callback_id: l.callback_id,
            extra: Vec::new(),
        };
        self.host_jobs.push_back(HostJob::Learn(if l.add {
            HostRequest::AddNodeToNetwork(req)
        } else {
            HostRequest::RemoveNodeFromNetwork(req)
        }));
    }

    fn learning_progress(&self, ev: InclusionEvent) {
        if let Some(l) = &self.learning {
            let _ = l.progress.try_send(ev);
        }
    }

    /// End the inclusion or exclusion with `result`.
    pub(super) fn end_learning(&mut self, result: Result<NodeId, DriverError>) {
        if let Some(mut l) = self.learning.take() {
            match &result {
                Ok(node) => tracing::info!(add = l.add, %node, "learn mode done"),
                Err(e) => tracing::warn!(add = l.add, error = %e, "learn mode failed"),
            }
            if let Some(r) = l.reply.take() {
                let _ = r.send(result);
            }
        }
    }

    pub(super) fn learning_deadline(&self) -> Option<Instant> {
        self.learning.as_ref().map(|l| l.deadline)
    }

    pub(super) fn learning_timers(&mut self, now: Instant) {
        let Some(l) = self.learning.as_ref().filter(|l| now >= l.deadline) else {
            return;
        };
        match &l.phase {
            Phase::Bootstrapping(node, _) | Phase::S0Keys(node, _) => {
                let node = *node;
                self.end_learning(Err(DriverError::Security {
                    node,
                    reason: "the lock stopped answering during key exchange (not in time); exclude it and include it again".into(),
                }));
                self.secure_inclusion_failed(node);
            }
            Phase::Open | Phase::Joining(..) => {
                self.stop_learn_mode();
                self.end_learning(Err(learn(LearnFailure::NothingJoined)));
            }
            _ => self.end_learning(Err(learn(LearnFailure::NotFinished))),
        }
    }

    /// Remove `node`, which the stick must consider failed.
    pub(super) fn remove_failed(
        &mut self,
        node: NodeId,
        reply: oneshot::Sender<Result<NodeId, DriverError>>,
    ) {
        if self.conn.is_none() {
            let _ = reply.send(Err(self.not_connected()));
            return;
        }
        let conn = self.conn.as_mut().expect("checked");
        conn.next_callback = conn.next_callback % 255 + 1;
        let callback_id = conn.next_callback;
        self.host_jobs.push_back(HostJob::RemoveFailed {
            node,
            callback_id,
            reply,
        });
    }

    /// The stick answered a host request of the inclusion.
    pub(super) fn on_host_job_done(
        &mut self,
        job: HostJob,
        callback: Option<StickRequest>,
        response: Option<StickResponse>,
    ) {
        match job {
            HostJob::RemoveFailed { node, reply, .. } => {
                use crate::serialapi::network::{remove_failed_start, remove_failed_status};
                let started = matches!(response, Some(StickResponse::RemoveFailedNode { start_flags }) if start_flags == remove_failed_start::STARTED);
                let removed = matches!(callback, Some(StickRequest::RemoveFailedNodeStatus(s)) if s.status == remove_failed_status::REMOVED);
                if started && removed {
                    tracing::info!(%node, "failed node removed");
                    self.nodes.remove(&node);
                    self.secure.forget(node);
                    self.emit(DriverEvent::NodeRemoved { node });
                    let _ = reply.send(Ok(node));
                } else {
                    tracing::info!(%node, "node not removed: it still answers, or the stick refused");
                    let _ = reply.send(Err(learn(LearnFailure::NotRemoved { node })));
                }
            }
            HostJob::Ping => {
                let home_id = self.conn.as_ref().map(|c| c.controller.home_id);
                let r = match response {
                    Some(StickResponse::GetControllerId(id)) if Some(id.home_id) == home_id => {
                        Ok(())
                    }
                    other => Err(DriverError::UnexpectedAnswer {
                        context: "ping",
                        answer: format!("{:?}", other.map(|r| r.function())),
                    }),
                };
                self.answer_pings(r);
            }
            HostJob::Learn(_) => {
                if let Some(StickRequest::AddNodeStatus(s) | StickRequest::RemoveNodeStatus(s)) =
                    callback
                {
                    self.on_learn_status(s);
                }
            }
            HostJob::ProtocolInfo(node) => {
                let Some(StickResponse::GetNodeProtocolInfo(protocol)) = response else {
                    return self.end_learning(Err(learn(LearnFailure::NoProtocolInfo)));
                };
                let nif = match self
                    .learning
                    .as_mut()
                    .map(|l| std::mem::replace(&mut l.phase, Phase::Open))
                {
                    Some(Phase::ProtocolInfo(n, nif)) if n == node => nif,
                    _ => None,
                };
                let mut info = NodeInfo::new(node, &protocol);
                info.command_classes = nif.as_ref().map(|n| n.supported());
                let secure_s2 =
                    info.supports(crate::cc::security2::ID) && !self.handle.s2_classes().is_empty();
                let secure_s0 =
                    info.supports(crate::cc::security0::ID) && self.config.keys.is_some();
                let st = self.nodes.entry(node).or_insert_with(|| super::NodeState {
                    reachable: true,
                    backoff: self.config.node_backoff_initial,
                    interview_backoff: self.config.node_backoff_initial,
                    ..super::NodeState::default()
                });
                st.info = Some(info.clone());
                self.emit(DriverEvent::NodeUpdated(info));
                if secure_s2 {
                    let (pin, required) = self
                        .learning
                        .as_ref()
                        .map(|l| (l.pin, l.required))
                        .unwrap_or_default();
                    let Some(keys) = self.config.keys.clone() else {
                        return;
                    };
                    let inc = Including::new(node.0, keys, pin, required);
                    let first = inc.start();
                    if let Some(l) = self.learning.as_mut() {
                        l.phase = Phase::Bootstrapping(node, Box::new(inc));
                        l.deadline = Instant::now() + BOOTSTRAP_STEP;
                    }
                    self.learning_progress(InclusionEvent::KeyExchange { node });
                    self.send_plain(node, first);
                } else if secure_s0 {
                    if let Some(l) = self.learning.as_mut() {
                        l.phase = Phase::S0Keys(node, S0Step::Scheme);
                        l.deadline = Instant::now() + BOOTSTRAP_STEP;
                    }
                    self.learning_progress(InclusionEvent::KeyExchange { node });
                    // Security Scheme Get, scheme 0.
                    self.send_plain(node, vec![crate::security::s0::CC, 0x04, 0x00]);
                } else {
                    self.end_learning(Ok(node));
                    self.start_interview(node);
                }
            }
        }
    }

    /// A frame from a node in S0 key exchange.
    fn s0_bootstrap_frame(&mut self, node: NodeId, step: S0Step, frame: &[u8]) {
        use crate::driver::secure::{Opened, Sealed};
        use crate::security::s0;
        let next = |state: &mut State, step: S0Step| {
            if let Some(l) = state.learning.as_mut() {
                l.phase = Phase::S0Keys(node, step);
                l.deadline = Instant::now() + BOOTSTRAP_STEP;
            }
        };
        match (step, frame) {
            (S0Step::Scheme, [s0::CC, 0x05, ..]) => {
                next(self, S0Step::Nonce);
                self.send_plain(node, vec![s0::CC, s0::NONCE_GET]);
            }
            (S0Step::Nonce, [s0::CC, s0::NONCE_REPORT, ..]) => {
                let _ = self.secure.open(node, frame, &[]);
                let Some(key) = self.secure.s0_network_key() else {
                    return;
                };
                let mut set = vec![s0::CC, 0x06];
                set.extend_from_slice(&key);
                match self.secure.seal_s0_temporary(node, set) {
                    Ok(Sealed::Send(f)) => {
                        next(self, S0Step::Verify);
                        self.send_plain(node, f);
                    }
                    _ => {
                        self.end_learning(Err(DriverError::Security {
                            node,
                            reason: "S0 key exchange: no nonce from the lock".into(),
                        }));
                        self.secure_inclusion_failed(node);
                    }
                }
            }
            (_, [s0::CC, s0::NONCE_GET]) => {
                if let Opened::Reply(r) = self.secure.open(node, frame, &[]) {
                    self.send_plain(node, r);
                }
            }
            (S0Step::Verify, [s0::CC, s0::ENCAPSULATION | s0::ENCAPSULATION_NONCE_GET, ..]) => {
                match self.secure.open(node, frame, &[]) {
                    Opened::Command { command, reply, .. } if command == [s0::CC, 0x07] => {
                        if let Some(r) = reply {
                            self.send_plain(node, r);
                        }
                        if let Some(info) = self.nodes.get_mut(&node).and_then(|s| s.info.as_mut())
                        {
                            info.security_class = Some(SecurityClass::S0Legacy);
                        }
                        tracing::info!(%node, "S0 key exchange done");
                        self.learning_progress(InclusionEvent::Secured {
                            node,
                            class: Some(SecurityClass::S0Legacy),
                        });
                        self.end_learning(Ok(node));
                        self.start_interview(node);
                    }
                    _ => {
                        self.end_learning(Err(DriverError::Security {
                            node,
                            reason: "S0 key exchange: the lock did not verify the network key"
                                .into(),
                        }));
                        self.secure_inclusion_failed(node);
                    }
                }
            }
            _ => {}
        }
    }

    fn send_plain(&mut self, node: NodeId, bytes: Vec<u8>) {
        let job = Job::new(Op::Raw { bytes }, Priority::High, None, Protection::Plain);
        self.enqueue(node, job);
    }

    /// An AddNodeStatus / RemoveNodeStatus callback.
    pub(super) fn on_learn_status(&mut self, s: InclusionStatus) {
        let Some(l) = self.learning.as_mut() else {
            return;
        };
        if s.callback_id != l.callback_id {
            return;
        }
        let add = l.add;
        match (add, s.status) {
            (true, add_status::READY) | (false, remove_status::READY) => {
                self.learning_progress(InclusionEvent::Ready);
            }
            (true, add_status::NODE_FOUND) | (false, remove_status::NODE_FOUND) => {
                self.learning_progress(InclusionEvent::NodeFound);
            }
            (true, add_status::ADDING_END_NODE) => {
                l.phase = Phase::Joining(s.node_id, s.node_info);
                self.learning_progress(InclusionEvent::Adding { node: s.node_id });
            }
            (true, add_status::PROTOCOL_DONE) => {
                if let Phase::Joining(node, nif) = std::mem::replace(&mut l.phase, Phase::Open) {
                    l.phase = Phase::Stopping(node, nif);
                }
                self.stop_learn_mode();
            }
            (true, add_status::DONE) => {
                let (node, nif) = match std::mem::replace(&mut l.phase, Phase::Open) {
                    Phase::Stopping(n, nif) => (n, nif),
                    _ => (s.node_id, None),
                };
                l.phase = Phase::ProtocolInfo(node, nif);
                self.host_jobs.push_back(HostJob::ProtocolInfo(node));
            }
            (false, remove_status::REMOVING_END_NODE) => {
                self.learning_progress(InclusionEvent::Removing { node: s.node_id });
            }
            (false, remove_status::DONE) => {
                let node = s.node_id;
                self.stop_learn_mode();
                if let Some(st) = self.nodes.remove(&node) {
                    if let Some(w) = st.waiting {
                        w.job.finish(Err(DriverError::UnknownNode { node }));
                    }
                }
                self.secure.forget(node);
                self.emit(DriverEvent::NodeRemoved { node });
                self.end_learning(Ok(node));
            }
            (_, add_status::FAILED) => {
                self.end_learning(Err(learn(LearnFailure::StickFailed)));
            }
            _ => {}
        }
    }

    /// An S2 frame from a node whose key exchange is running: true when it was the inclusion's.
    pub(super) fn bootstrap_frame(&mut self, node: NodeId, frame: &[u8]) -> bool {
        let Some(l) = self.learning.as_mut() else {
            return false;
        };
        if let Phase::S0Keys(n, step) = l.phase {
            if n != node {
                return false;
            }
            self.s0_bootstrap_frame(node, step, frame);
            return true;
        }
        let Phase::Bootstrapping(n, inc) = &mut l.phase else {
            return false;
        };
        if *n != node {
            return false;
        }
        let step = self.secure.bootstrap(inc, frame);
        l.deadline = Instant::now() + BOOTSTRAP_STEP;
        for f in step.send {
            self.send_plain(node, f);
        }
        match step.outcome {
            None => {}
            Some(Ok(granted)) => {
                let class = SecurityClass::ALL
                    .into_iter()
                    .find(|c| *c != SecurityClass::S0Legacy && granted & c.key_bit() != 0);
                if let Some(info) = self.nodes.get_mut(&node).and_then(|s| s.info.as_mut()) {
                    info.security_class = class;
                }
                tracing::info!(%node, ?class, "key exchange done");
                self.learning_progress(InclusionEvent::Secured { node, class });
                self.end_learning(Ok(node));
                self.start_interview(node);
            }
            Some(Err(e)) => {
                let reason = e.to_string();
                self.learning_progress(InclusionEvent::SecurityFailed {
                    node,
                    reason: reason.clone(),
                });
                let wrong_pin = e == BootstrapError::WrongPin;
                self.end_learning(Err(DriverError::Security {
                    node,
                    reason: if wrong_pin {
                        reason
                    } else {
                        format!("key exchange failed: {reason}")
                    },
                }));
                self.secure_inclusion_failed(node);
            }
        }
        true
    }

    /// A key exchange zwlock started did not end with a key: the node joined the network but
    /// must never be spoken to in clear. It is marked so (nothing of User Code, Door Lock or
    /// Schedule Entry Lock goes to it, and the lock shows why), and removed if it no longer
    /// answers (RemoveFailedNode; a lock that gave up on the network leaves it). One that
    /// still answers stays, marked, until it is excluded.
    fn secure_inclusion_failed(&mut self, node: NodeId) {
        if let Some(info) = self.nodes.get_mut(&node).and_then(|s| s.info.as_mut()) {
            info.security_class = None;
            info.security_failure = Some(SecurityFailure::KeyExchangeFailed);
            let info = info.clone();
            self.emit(DriverEvent::NodeUpdated(info));
        }
        tracing::warn!(%node, "secure inclusion failed: removing the node if it no longer answers; otherwise exclude it and include it again");
        // Nobody waits for this removal; its outcome is logged and, if done, announced.
        let (reply, _) = oneshot::channel();
        self.remove_failed(node, reply);
    }
}
