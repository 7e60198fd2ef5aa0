//! What the simulated stick answers to the host: the Serial API requests it supports (a
//! function it lacks gets no answer, like a real stick), learn mode and the inclusion
//! button, node information.

use super::*;

impl Stick {
    pub(super) fn on_host_frame(&mut self, f: DataFrame) {
        if f.frame_type != FrameType::Request {
            return;
        }
        let req = match HostRequest::parse(&f, self.node_id_type) {
            Ok(r) => r,
            Err(_) => return, // malformed request: a real stick stays silent
        };
        let m = &self.model;
        match req {
            HostRequest::GetSerialApiCapabilities => {
                let caps = SerialApiCapabilities {
                    application_version: 7,
                    application_revision: 19,
                    manufacturer_id: 0x0000,
                    product_type: 0x0004,
                    product_id: 0x0004,
                    function_bitmask: [0; 32],
                };
                let mut funcs = FUNCTIONS.to_vec();
                if !m.serial_api_setup {
                    funcs.retain(|f| *f != 0x0B);
                }
                self.respond(StickResponse::GetSerialApiCapabilities(
                    caps.with_functions(&funcs),
                ));
            }
            HostRequest::GetControllerVersion => {
                self.respond(StickResponse::GetControllerVersion(ControllerVersion {
                    library: m.library.clone(),
                    library_type: 0x01,
                }))
            }
            HostRequest::GetControllerId => {
                self.respond(StickResponse::GetControllerId(ControllerId {
                    home_id: m.home_id,
                    node_id: NodeId::from(m.controller_node_id),
                }))
            }
            HostRequest::GetControllerCapabilities => {
                self.respond(StickResponse::GetControllerCapabilities {
                    flags: CONTROLLER_CAPABILITIES,
                })
            }
            HostRequest::GetSerialApiInitData => {
                let mut nodes: Vec<NodeId> = vec![NodeId::from(m.controller_node_id)];
                nodes.extend(self.locks.keys().map(|n| NodeId::from(*n)));
                nodes.sort();
                self.respond(StickResponse::GetSerialApiInitData(InitData {
                    api_version: 9,
                    capabilities: 0x08,
                    nodes,
                    bitmask_len: 29,
                    chip_type: Some(7),
                    chip_version: Some(0),
                }))
            }
            HostRequest::SerialApiSetup(s) if m.serial_api_setup => {
                let r = match s {
                    SetupRequest::GetSupportedCommands => SetupResponse::GetSupportedCommands {
                        supported: vec![
                            SETUP_GET_SUPPORTED,
                            SETUP_TX_STATUS_REPORT,
                            SETUP_NODE_ID_TYPE,
                        ],
                    },
                    SetupRequest::SetTxStatusReport { enable } => {
                        self.tx_reports = enable && m.tx_reports;
                        SetupResponse::SetTxStatusReport { success: true }
                    }
                    SetupRequest::SetNodeIdType { node_id_type } => {
                        match NodeIdType::from_byte(node_id_type) {
                            Some(t) => {
                                // The answer still uses the width the request came in.
                                let r = SetupResponse::SetNodeIdType { success: true };
                                self.respond(StickResponse::SerialApiSetup(r));
                                self.node_id_type = t;
                                return;
                            }
                            None => SetupResponse::SetNodeIdType { success: false },
                        }
                    }
                    other => SetupResponse::Unsupported {
                        requested: Some(other.subcommand()),
                    },
                };
                self.respond(StickResponse::SerialApiSetup(r));
            }
            HostRequest::SoftReset => {
                self.stats.soft_resets += 1;
                if self.faults.jam_cleared_by == JamClearedBy::SoftReset {
                    self.jammed = false;
                }
                self.node_id_type = NodeIdType::Bits8;
                self.tx_reports = false;
                self.busy = None;
                self.nif_pending = false;
                self.lost_callback = None;
                self.queue.clear();
                self.timeline.clear();
                self.later(
                    RESTART_MS,
                    StickRequest::SerialApiStarted(SerialApiStarted {
                        wake_up_reason: 0,
                        watchdog_started: false,
                        device_option: 0x01,
                        generic: 0x02,
                        specific: 0x01,
                        command_classes: Vec::new(),
                        supported_protocols: Some(0),
                    }),
                );
            }
            HostRequest::GetNodeProtocolInfo { node_id } => {
                let info = self.protocol_info(node_id);
                self.respond(StickResponse::GetNodeProtocolInfo(info));
            }
            HostRequest::RequestNodeInfo { node_id } => {
                if self.communicating() {
                    // Not on top of the stick's own transaction.
                    self.stats.refused_busy += 1;
                    self.respond(StickResponse::RequestNodeInfo { success: false });
                    return;
                }
                self.respond(StickResponse::RequestNodeInfo { success: true });
                self.nif_pending = true;
                let node = u8::try_from(node_id.0).unwrap_or(0);
                let beam = self.beam_ms(node);
                let update = match self.locks.get(&node) {
                    Some(l) if l.in_range && l.battery_level > 0 => ApplicationUpdate {
                        state: update_state::NODE_INFO_RECEIVED,
                        node_id,
                        node_info: Some(NodeInformation {
                            basic: 0x04,
                            generic: 0x40,
                            specific: 0x03,
                            command_classes: l.command_classes(),
                        }),
                        raw: Vec::new(),
                    },
                    _ => ApplicationUpdate {
                        state: update_state::NODE_INFO_REQUEST_FAILED,
                        node_id: NodeId(0),
                        node_info: None,
                        raw: Vec::new(),
                    },
                };
                let radio = self.model.radio_ms;
                if let Ok(f) = StickRequest::ApplicationUpdate(update).encode(self.node_id_type) {
                    let when = Instant::now() + Duration::from_millis(radio * 2 + beam);
                    self.timeline.at(when, Due::NodeInfoDone(f));
                }
            }
            HostRequest::SendData(sd) => {
                if self.jammed {
                    self.stats.send_data_refused_jammed += 1;
                    self.respond(StickResponse::SendData { accepted: false });
                    return;
                }
                if self.busy.is_some() || self.nif_pending {
                    // RES 13 00, as the zwave-js mock answers a SendData while it is not idle.
                    self.stats.refused_busy += 1;
                    self.respond(StickResponse::SendData { accepted: false });
                    return;
                }
                if self.lost_callback.is_some() || self.rng.chance(self.faults.busy_send_data) {
                    self.respond(StickResponse::SendData { accepted: false });
                    return;
                }
                self.respond(StickResponse::SendData { accepted: true });
                self.stats.send_data += 1;
                let node = u8::try_from(sd.node_id.0).unwrap_or(0);
                self.busy = Some(sd.callback_id);
                let ms = self.model.radio_ms + self.beam_ms(node);
                self.timeline.at(
                    Instant::now() + Duration::from_millis(ms),
                    Due::Transmit {
                        callback_id: sd.callback_id,
                        node,
                        command: sd.command,
                    },
                );
            }
            HostRequest::SendDataAbort => {
                self.stats.send_data_aborts += 1;
                if let Some(cb) = self.lost_callback.take() {
                    self.busy = None;
                    self.later(
                        5,
                        StickRequest::SendDataCallback(SendDataCallback {
                            callback_id: cb,
                            transmit_status: TransmitStatus::Fail,
                            tx_report: None,
                        }),
                    );
                }
            }
            HostRequest::IsFailedNode { node_id } => {
                let node = u8::try_from(node_id.0).unwrap_or(0);
                let failed = !self
                    .locks
                    .get(&node)
                    .is_some_and(|l| l.in_range && l.battery_level > 0);
                self.respond(StickResponse::IsFailedNode { failed });
            }
            HostRequest::RemoveFailedNode {
                node_id,
                callback_id,
            } => {
                let node = u8::try_from(node_id.0).unwrap_or(0);
                let reachable = self
                    .locks
                    .get(&node)
                    .is_some_and(|l| l.in_range && l.battery_level > 0);
                if !self.locks.contains_key(&node) {
                    self.respond(StickResponse::RemoveFailedNode { start_flags: 0x08 });
                    return;
                }
                self.respond(StickResponse::RemoveFailedNode { start_flags: 0 });
                let status = if reachable { 0 } else { 1 };
                if !reachable {
                    self.locks.remove(&node);
                }
                self.later(
                    NO_ACK_MS,
                    StickRequest::RemoveFailedNodeStatus(RemoveFailedNodeStatus {
                        callback_id,
                        status,
                    }),
                );
            }
            HostRequest::AddNodeToNetwork(r) | HostRequest::RemoveNodeFromNetwork(r)
                if r.callback_id != 0 =>
            {
                // Learn mode opens; the lock whose button is pressed joins or leaves; STOP
                // closes it (and completes an inclusion whose protocol part is done).
                let add = f.function == 0x4A;
                let stop = r.mode & 0x0F == crate::serialapi::network::mode::STOP;
                if !stop {
                    self.learn = Some(Learn {
                        add,
                        callback_id: r.callback_id,
                        joined: None,
                    });
                } else if let Some(node) = self.learn.take().and_then(|l| l.joined) {
                    if let Some(lock) = self.pending.remove(&node) {
                        self.locks.insert(node, lock);
                    }
                    self.later(
                        10,
                        StickRequest::AddNodeStatus(InclusionStatus {
                            callback_id: r.callback_id,
                            status: add_status::DONE,
                            node_id: NodeId::from(node),
                            node_info: None,
                        }),
                    );
                    return;
                }
                let status = if stop {
                    add_status::FAILED
                } else {
                    add_status::READY
                };
                let s = InclusionStatus {
                    callback_id: r.callback_id,
                    status: if stop && f.function == 0x4B {
                        remove_status::FAILED
                    } else {
                        status
                    },
                    node_id: NodeId(0),
                    node_info: None,
                };
                let msg = if f.function == 0x4A {
                    StickRequest::AddNodeStatus(s)
                } else {
                    StickRequest::RemoveNodeStatus(s)
                };
                self.later(10, msg);
            }
            HostRequest::Other { function, payload } => self.on_other(function, &payload),
            _ => {} // not answered, like a real stick with a function it lacks
        }
    }

    /// Functions the message types do not model: GetProtocolVersion, GetSUCNodeId, and the
    /// SUC return routes (a transaction with the node, like a SendData).
    fn on_other(&mut self, function: u8, payload: &[u8]) {
        let respond = |stick: &mut Stick, payload: Vec<u8>| {
            stick.respond(StickResponse::Other { function, payload })
        };
        match function {
            0x09 => {
                // Z-Wave protocol, the version, no application framework build, no git hash.
                let [major, minor, patch] = PROTOCOL_VERSION;
                respond(self, vec![0x00, major, minor, patch, 0x00, 0x00]);
            }
            0x56 => {
                let mut p = Vec::new();
                crate::serialapi::node_id::put_node_id(
                    &mut p,
                    self.node_id_type,
                    NodeId::from(self.model.controller_node_id),
                );
                respond(self, p);
            }
            0x51 | 0x55 => {
                // Node id, callback id; the stick tells the node its route to the SUC.
                let width = match self.node_id_type {
                    NodeIdType::Bits8 => 1,
                    NodeIdType::Bits16 => 2,
                };
                let (Some(&node), Some(&callback_id)) =
                    (payload.get(width - 1), payload.get(width))
                else {
                    return; // malformed: a real stick stays silent
                };
                if self.communicating() {
                    self.stats.refused_busy += 1;
                    respond(self, vec![0x00]);
                    return;
                }
                respond(self, vec![0x01]);
                let reachable = self
                    .locks
                    .get(&node)
                    .is_some_and(|l| l.in_range && l.battery_level > 0);
                let (status, ms) = if reachable {
                    (TransmitStatus::Ok, self.model.radio_ms + self.beam_ms(node))
                } else {
                    (TransmitStatus::NoAck, NO_ACK_MS)
                };
                let callback = DataFrame::request(function, vec![callback_id, status.to_byte()]);
                if callback_id != 0 {
                    self.busy = Some(callback_id);
                    let when = Instant::now() + Duration::from_millis(ms);
                    self.timeline.at(when, Due::RouteDone(callback));
                }
            }
            _ => {} // not answered, like a real stick with a function it lacks
        }
    }

    /// The inclusion button of lock `node`.
    pub(super) fn press_button(&mut self, node: u8) -> Result<String, String> {
        let Some(learn) = self.learn.as_mut() else {
            return Err("the stick is not in add or remove mode".into());
        };
        let cb = learn.callback_id;
        let status = |status: u8, node: u8, nif: Option<NodeInformation>| InclusionStatus {
            callback_id: cb,
            status,
            node_id: NodeId::from(node),
            node_info: nif,
        };
        if learn.add {
            let Some(lock) = self.pending.get(&node) else {
                return Err(format!("no lock {node} waiting to join"));
            };
            if learn.joined.is_some() {
                return Err("another lock is joining".into());
            }
            learn.joined = Some(node);
            let nif = NodeInformation {
                basic: 0x04,
                generic: 0x40,
                specific: 0x03,
                command_classes: lock.command_classes(),
            };
            let radio = self.model.radio_ms;
            self.later(
                radio,
                StickRequest::AddNodeStatus(status(add_status::NODE_FOUND, 0, None)),
            );
            self.later(
                radio * 3,
                StickRequest::AddNodeStatus(status(add_status::ADDING_END_NODE, node, Some(nif))),
            );
            self.later(
                radio * 6,
                StickRequest::AddNodeStatus(status(add_status::PROTOCOL_DONE, node, None)),
            );
            Ok(format!("lock {node} joins"))
        } else {
            let Some(mut lock) = self.locks.remove(&node) else {
                return Err(format!("no lock {node} in the network"));
            };
            // Leaving the network, the lock forgets its network keys.
            lock.forget_network(self.model.home_id);
            self.pending.insert(node, lock);
            self.learn = None;
            let radio = self.model.radio_ms;
            self.later(
                radio,
                StickRequest::RemoveNodeStatus(status(remove_status::NODE_FOUND, 0, None)),
            );
            self.later(
                radio * 3,
                StickRequest::RemoveNodeStatus(status(
                    remove_status::REMOVING_END_NODE,
                    node,
                    None,
                )),
            );
            self.later(
                radio * 5,
                StickRequest::RemoveNodeStatus(status(remove_status::DONE, node, None)),
            );
            Ok(format!("lock {node} leaves"))
        }
    }

    pub(super) fn protocol_info(&self, node_id: NodeId) -> NodeProtocolInfo {
        let node = u8::try_from(node_id.0).unwrap_or(0);
        if node == self.model.controller_node_id {
            return NodeProtocolInfo {
                capability: 0xD3,
                security: 0x16,
                reserved: 0x01,
                basic: 0x02,
                generic: 0x02,
                specific: 0x07,
            };
        }
        match self.locks.get(&node) {
            None => NodeProtocolInfo {
                capability: 0,
                security: 0,
                reserved: 0,
                basic: 0,
                generic: 0,
                specific: 0,
            },
            Some(l) => {
                let (listening, flirs) = match l.model.listening {
                    Listening::Always => (0x80, 0x00),
                    Listening::Flirs1000 => (0x00, 0x40),
                    Listening::Flirs250 => (0x00, 0x20),
                };
                NodeProtocolInfo {
                    capability: listening | 0x40 | 0x1B,
                    security: flirs | 0x10 | 0x0C,
                    reserved: 0x01,
                    basic: 0x04,
                    generic: 0x40,
                    specific: 0x03,
                }
            }
        }
    }
}
