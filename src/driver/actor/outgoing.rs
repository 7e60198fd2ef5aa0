//! Putting jobs on the stick, one at a time, and what their outcome means for the node:
//! stick requests of an inclusion first, then node traffic by priority and round robin;
//! commands sealed at the node's security class just before they go. A stick transaction
//! whose answer comes later (a SendData's callback, a RequestNodeInfo's node information)
//! holds the stick until that answer or its timeout: nothing else that uses the radio goes
//! on top of it.

use tokio::time::Instant;

use super::incoming::{complete, Completion};
use super::*;
use crate::driver::{guard, recovery};

impl State {
    /// Start the next job on the stick, if it is free.
    pub(super) fn dispatch(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.stick.is_some() {
            return;
        }
        // A RequestNodeInfo holds the stick until the node information (or its failure)
        // arrives: the stick refuses a SendData meanwhile. Only requests that stay on the
        // serial line (a ping, protocol info, learn mode) may go.
        let nif_waiting = conn.nif_wait.is_some();
        let host_job_may_go = self
            .host_jobs
            .front()
            .is_some_and(|hj| !nif_waiting || !hj.uses_radio());
        if host_job_may_go {
            let hj = self.host_jobs.pop_front().expect("checked");
            let session = conn.session.clone();
            let req = hj.request();
            self.stats.transactions += 1;
            let aborts_before = session.aborts_sent();
            let fut: StickFuture = Box::pin(async move { session.request(req).await });
            conn.stick = Some(StickOp {
                node: NodeId(0),
                job: Job::new(Op::Host(hj), Priority::High, None, Protection::Plain),
                expect: Expect::Transmit,
                sealed: false,
                send_data: false,
                aborts_before,
                fut,
            });
            return;
        }
        if nif_waiting {
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

    /// The stick operation ended: finish or retry its job, then tell the recovery ladder what
    /// the stick did (which may take the stick down; the retried job then fails with it).
    pub(super) fn on_stick_done(&mut self, r: Result<Exchange, SessionError>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let Some(op) = conn.stick.take() else {
            return;
        };
        let aborts = conn.session.aborts_sent().saturating_sub(op.aborts_before);
        let signal = recovery::signal(&r, op.send_data, aborts > 0);
        self.on_aborts(aborts);
        self.finish_stick_op(op, r);
        if let Some(signal) = signal {
            self.on_signal(signal);
        }
    }

    fn finish_stick_op(&mut self, op: StickOp, r: Result<Exchange, SessionError>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let node = op.node;
        let now = Instant::now();
        let ex = match r {
            Ok(ex) => ex,
            Err(e) => {
                let err = DriverError::session(op.job.name(), e);
                if let Op::Host(hj) = op.job.op {
                    hj.fail(self, err);
                } else {
                    op.job.finish(Err(err));
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
            if !guard::may_send(st.info.as_ref(), command.class_id(), class) {
                let name = command.command_name();
                tracing::warn!(%node, class = command.class_name(), command = name, "not sent: the lock must be reached securely and holds none of our keys");
                job.finish(Err(DriverError::SecurityRequired {
                    node,
                    command: name,
                }));
                return false;
            }
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
    let send_data = matches!(req, HostRequest::SendData(_));
    let aborts_before = session.aborts_sent();
    let fut: StickFuture = Box::pin(async move { session.request(req).await });
    conn.stick = Some(StickOp {
        node,
        job,
        expect,
        sealed,
        send_data,
        aborts_before,
        fut,
    });
    true
}
