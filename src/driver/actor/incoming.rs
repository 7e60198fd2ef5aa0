//! What comes from the stick on its own: node commands (opened first when secure), learn-mode
//! statuses, node information; reports that complete a waiting transaction.

use tokio::time::Instant;

use super::*;

impl State {
    pub(super) async fn on_session_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Unsolicited(msg) => self.on_unsolicited(msg).await,
            SessionEvent::Unparsable { function, error } => {
                tracing::debug!(function, %error, "unparsable frame from the stick dropped");
            }
            SessionEvent::Closed { reason } => self.link_lost(reason),
        }
    }

    pub(super) async fn on_unsolicited(&mut self, msg: StickRequest) {
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
                    Ok(cmd) => self.on_node_command(node, cmd, None),
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
                                None => w.job.finish(Err(DriverError::UnexpectedAnswer {
                                    context: "RequestNodeInfo",
                                    answer: "empty node information".into(),
                                })),
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
                tracing::warn!("the stick restarted on its own; starting it again");
                let action = self.ladder.on_restarted();
                self.act(action);
            }
            other => tracing::debug!(function = ?other.function(), "unsolicited stick message"),
        }
    }

    /// An S0 or S2 frame from a node: opened and dispatched, or used to (re)synchronise.
    pub(super) fn on_secure_frame(&mut self, node: NodeId, frame: &[u8]) {
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
            Opened::Command {
                command,
                reply,
                class,
            } => {
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
                    Ok(cmd) => self.on_node_command(node, cmd, class),
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

    /// A command from `node`, plain (`via` None) or opened under `via`.
    pub(super) fn on_node_command(
        &mut self,
        node: NodeId,
        cmd: Command,
        via: Option<crate::security::SecurityClass>,
    ) {
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
                Ok(inner) => return self.on_node_command(node, inner, via),
                Err(_) => return,
            }
        }
        let info = self.nodes.get(&node).and_then(|s| s.info.as_ref());
        if !crate::driver::guard::may_accept(info, &cmd, via) {
            self.stats.insecure_dropped += 1;
            tracing::warn!(%node, class = cmd.class_name(), command = cmd.command_name(), security = ?via, "dropped: the lock must be heard through the security it was granted");
            return;
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

pub(super) enum Completion {
    Done(Answer),
    /// Still working: wait this much longer.
    Extend(Duration),
    No,
}

pub(super) fn complete(w: &mut Waiting, cmd: &Command) -> Completion {
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
