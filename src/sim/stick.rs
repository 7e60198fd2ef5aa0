//! The simulated controller stick: speaks the Serial API bytes to the host, and carries
//! SendData frames to the simulated locks and their answers back.
//!
//! One actor per network. It owns the locks, the connection to the host (if any), the
//! frames waiting to go to the host and a timeline of things due later (callbacks, node
//! reports), so that a run on a paused clock with the same seed gives the same bytes.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::lock::Lock;
use super::model::{Faults, Listening, NetworkModel};
use super::rng::SimRng;
use super::{Control, LockSnapshot, SlotSnapshot, StickStats};
use crate::serial::codec::Received;
use crate::serial::frame::{DataFrame, Frame, FrameType, ACK, CAN, NAK};
use crate::serial::SerialCodec;
use crate::serialapi::application::{
    update_state, ApplicationCommand, ApplicationUpdate, NodeInformation,
};
use crate::serialapi::controller::{
    ControllerId, ControllerVersion, InitData, NodeProtocolInfo, SerialApiCapabilities,
    SerialApiStarted, SetupRequest, SetupResponse, SETUP_GET_SUPPORTED, SETUP_NODE_ID_TYPE,
    SETUP_TX_STATUS_REPORT,
};
use crate::serialapi::network::{
    add_status, remove_status, InclusionStatus, RemoveFailedNodeStatus,
};
use crate::serialapi::transmit::{SendDataCallback, TxReport};
use crate::serialapi::{
    HostRequest, NodeId, NodeIdType, StickRequest, StickResponse, TransmitStatus,
};

/// How long the stick waits for the host's ACK before sending a frame again.
const ACK_TIMEOUT: Duration = Duration::from_millis(1600);
/// How long a NoAck takes: the stick retries on the radio before it gives up.
const NO_ACK_MS: u64 = 1000;
/// Time from a soft reset to SerialApiStarted.
const RESTART_MS: u64 = 300;

/// Functions the simulated stick advertises and answers.
const FUNCTIONS: [u8; 19] = [
    0x02, 0x05, 0x07, 0x08, 0x0B, 0x13, 0x15, 0x16, 0x20, 0x41, 0x4A, 0x4B, 0x60, 0x61, 0x62, 0x04,
    0x49, 0x0A, 0x56,
];

enum Due {
    /// Put a frame in the queue to the host.
    ToHost(DataFrame),
    /// The radio transmission of a SendData ends.
    Transmit {
        callback_id: u8,
        node: u8,
        command: Vec<u8>,
    },
    /// A node's answer reaches the stick.
    FromNode { node: u8, command: Vec<u8> },
}

struct Timeline {
    seq: u64,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    items: BTreeMap<u64, Due>,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            seq: 0,
            heap: BinaryHeap::new(),
            items: BTreeMap::new(),
        }
    }

    fn at(&mut self, when: Instant, due: Due) {
        self.seq += 1;
        self.heap.push(Reverse((when, self.seq)));
        self.items.insert(self.seq, due);
    }

    fn next_time(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    fn pop_due(&mut self, now: Instant) -> Option<Due> {
        match self.heap.peek() {
            Some(Reverse((t, _))) if *t <= now => {
                let Reverse((_, id)) = self.heap.pop()?;
                self.items.remove(&id)
            }
            _ => None,
        }
    }

    fn clear(&mut self) {
        self.heap.clear();
        self.items.clear();
    }
}

struct Outbound {
    frame: DataFrame,
    sends: u8,
    deadline: Instant,
}

/// The stick in add or remove mode, opened by the host with this callback id.
struct Learn {
    add: bool,
    callback_id: u8,
    /// The node that joined, once the protocol part is done (add mode).
    joined: Option<u8>,
}

pub(super) struct Stick {
    model: NetworkModel,
    pub(super) locks: BTreeMap<u8, Lock>,
    /// Locks beside the network, waiting to be included.
    pending: BTreeMap<u8, Lock>,
    learn: Option<Learn>,
    conn: Option<DuplexStream>,
    codec: SerialCodec,
    read_buf: BytesMut,
    queue: VecDeque<DataFrame>,
    inflight: Option<Outbound>,
    timeline: Timeline,
    rng: SimRng,
    faults: Faults,
    node_id_type: NodeIdType,
    tx_reports: bool,
    /// Callback id of the SendData on the radio, if any.
    busy: Option<u8>,
    /// A callback lost by fault injection: SendDataAbort brings it back as a failure.
    lost_callback: Option<u8>,
    plugged: bool,
    stats: StickStats,
    start: Instant,
}

impl Stick {
    pub(super) fn new(model: NetworkModel) -> Self {
        let (locks, pending) = model
            .locks
            .iter()
            .map(|l| (l.node_id, Lock::new(l.clone(), model.home_id)))
            .partition(|(_, l)| l.model.included);
        Stick {
            rng: SimRng::new(model.seed),
            faults: model.faults.clone(),
            model,
            locks,
            pending,
            learn: None,
            conn: None,
            codec: SerialCodec::new(),
            read_buf: BytesMut::with_capacity(512),
            queue: VecDeque::new(),
            inflight: None,
            timeline: Timeline::new(),
            node_id_type: NodeIdType::Bits8,
            tx_reports: false,
            busy: None,
            lost_callback: None,
            plugged: true,
            stats: StickStats::default(),
            start: Instant::now(),
        }
    }

    fn now_secs(&self) -> f64 {
        (Instant::now() - self.start).as_secs_f64()
    }

    pub(super) async fn run(
        mut self,
        mut connections: mpsc::Receiver<DuplexStream>,
        mut control: mpsc::Receiver<Control>,
    ) {
        loop {
            let next = [
                self.timeline.next_time(),
                self.inflight.as_ref().map(|o| o.deadline),
            ]
            .into_iter()
            .flatten()
            .min();
            let connected = self.conn.is_some();
            // Work that is already due runs now: a timer would cost a millisecond tick.
            if next.is_some_and(|t| t <= Instant::now()) {
                self.on_timer().await;
                self.pump().await;
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                biased;
                c = control.recv() => match c {
                    Some(c) => self.on_control(c).await,
                    None => return,
                },
                c = connections.recv() => match c {
                    Some(stream) => self.on_connect(stream),
                    None => return,
                },
                r = read_some(self.conn.as_mut(), &mut self.read_buf), if connected => match r {
                    Ok(0) | Err(_) => self.disconnect(),
                    Ok(_) => self.on_bytes().await,
                },
                _ = sleep_until_opt(next) => self.on_timer().await,
            }
            self.pump().await;
        }
    }

    fn on_connect(&mut self, stream: DuplexStream) {
        if !self.plugged {
            return; // the device is gone: the connection closes at once
        }
        self.disconnect();
        self.conn = Some(stream);
    }

    fn disconnect(&mut self) {
        self.conn = None;
        self.read_buf.clear();
        self.queue.clear();
        self.inflight = None;
        self.busy = None;
        self.lost_callback = None;
        // Frames for the host die with the connection; the radio side keeps going.
        let keep: Vec<(Instant, Due)> = std::mem::replace(&mut self.timeline, Timeline::new())
            .drain_all()
            .into_iter()
            .filter(|(_, d)| matches!(d, Due::FromNode { .. }))
            .collect();
        for (t, d) in keep {
            self.timeline.at(t, d);
        }
    }

    async fn on_control(&mut self, c: Control) {
        let now = self.now_secs();
        match c {
            Control::Keypad {
                node,
                action,
                reply,
            } => {
                let Some(lock) = self.locks.get_mut(&node) else {
                    let _ = reply.send(Err(format!("no lock with node id {node}")));
                    return;
                };
                let (result, frames) = action.apply(lock, now);
                let delay = lock.model.quirks.slow_response_ms;
                let reachable = lock.in_range && lock.battery_level > 0;
                if reachable {
                    let when = Instant::now() + Duration::from_millis(self.model.radio_ms + delay);
                    for f in frames {
                        self.timeline.at(when, Due::FromNode { node, command: f });
                    }
                }
                let _ = reply.send(Ok(result));
            }
            Control::SetInRange {
                node,
                in_range,
                reply,
            } => {
                let r = match self.locks.get_mut(&node) {
                    Some(l) => {
                        l.in_range = in_range;
                        Ok(())
                    }
                    None => Err(format!("no lock with node id {node}")),
                };
                let _ = reply.send(r);
            }
            Control::SetBattery { node, level, reply } => {
                let r = match self.locks.get_mut(&node) {
                    Some(l) => {
                        l.battery_level = level.min(100);
                        Ok(())
                    }
                    None => Err(format!("no lock with node id {node}")),
                };
                let _ = reply.send(r);
            }
            Control::SetFaults { faults, reply } => {
                self.faults = faults;
                let _ = reply.send(());
            }
            Control::Unplug { reply } => {
                self.plugged = false;
                self.disconnect();
                let _ = reply.send(());
            }
            Control::Plug { reply } => {
                self.plugged = true;
                let _ = reply.send(());
            }
            Control::Snapshot { node, reply } => {
                let s = self
                    .locks
                    .get(&node)
                    .or_else(|| self.pending.get(&node))
                    .map(snapshot);
                let _ = reply.send(s.map(|mut s| {
                    s.included = self.locks.contains_key(&node);
                    s
                }));
            }
            Control::Button { node, reply } => {
                let _ = reply.send(self.press_button(node));
            }
            Control::Stats { reply } => {
                let _ = reply.send(self.stats.clone());
            }
        }
    }

    async fn on_bytes(&mut self) {
        loop {
            let item = match self.codec.decode(&mut self.read_buf) {
                Ok(Some(i)) => i,
                _ => break,
            };
            match item {
                Received::Frame(Frame::Data(f)) => {
                    self.stats.frames_from_host += 1;
                    if self.rng.chance(self.faults.nak_host_frame) {
                        self.write_raw(&[NAK]).await;
                        continue;
                    }
                    if self.rng.chance(self.faults.can_host_frame) {
                        self.write_raw(&[CAN]).await;
                        continue;
                    }
                    self.write_raw(&[ACK]).await;
                    self.on_host_frame(f);
                }
                Received::Frame(Frame::Ack) => {
                    if self.inflight.take().is_some() {
                        self.stats.frames_to_host += 1;
                    }
                }
                Received::Frame(Frame::Nak | Frame::Can) => {
                    if let Some(o) = self.inflight.as_mut() {
                        o.deadline = Instant::now(); // resend now
                    }
                }
                Received::BadChecksum { .. } | Received::Malformed { .. } => {
                    self.write_raw(&[NAK]).await;
                }
            }
        }
    }

    fn respond(&mut self, r: StickResponse) {
        if let Ok(f) = r.encode(self.node_id_type) {
            self.queue.push_back(f);
        }
    }

    fn later(&mut self, ms: u64, r: StickRequest) {
        if let Ok(f) = r.encode(self.node_id_type) {
            self.timeline
                .at(Instant::now() + Duration::from_millis(ms), Due::ToHost(f));
        }
    }

    fn beam_ms(&self, node: u8) -> u64 {
        match self.locks.get(&node).map(|l| l.model.listening) {
            Some(Listening::Flirs1000) => 1000,
            Some(Listening::Flirs250) => 250,
            _ => 0,
        }
    }

    fn on_host_frame(&mut self, f: DataFrame) {
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
                self.respond(StickResponse::GetControllerCapabilities { flags: 0x08 })
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
                self.node_id_type = NodeIdType::Bits8;
                self.tx_reports = false;
                self.busy = None;
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
                self.respond(StickResponse::RequestNodeInfo { success: true });
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
                self.later(radio * 2 + beam, StickRequest::ApplicationUpdate(update));
            }
            HostRequest::SendData(sd) => {
                if self.busy.is_some()
                    || self.lost_callback.is_some()
                    || self.rng.chance(self.faults.busy_send_data)
                {
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
            _ => {} // not answered, like a real stick with a function it lacks
        }
    }

    /// The inclusion button of lock `node`.
    fn press_button(&mut self, node: u8) -> Result<String, String> {
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

    fn protocol_info(&self, node_id: NodeId) -> NodeProtocolInfo {
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

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if let Some(o) = self.inflight.as_mut() {
            if now >= o.deadline {
                if o.sends > 3 {
                    self.inflight = None; // the host is not listening: drop the frame
                } else {
                    let frame = o.frame.clone();
                    o.sends += 1;
                    o.deadline = now + ACK_TIMEOUT;
                    self.write_frame(&frame).await;
                }
            }
        }
        while let Some(due) = self.timeline.pop_due(now) {
            match due {
                Due::ToHost(f) => self.queue.push_back(f),
                Due::Transmit {
                    callback_id,
                    node,
                    command,
                } => self.transmit(callback_id, node, command),
                Due::FromNode { node, command } => {
                    let ach = StickRequest::ApplicationCommand(ApplicationCommand {
                        rx_status: 0,
                        source: NodeId::from(node),
                        command,
                        rssi: None,
                    });
                    if let Ok(f) = ach.encode(self.node_id_type) {
                        self.queue.push_back(f);
                    }
                }
            }
        }
    }

    /// The radio part of a SendData: the lock hears it (or not), the callback goes to the host,
    /// and whatever the lock answers follows.
    fn transmit(&mut self, callback_id: u8, node: u8, command: Vec<u8>) {
        let now_secs = self.now_secs();
        let radio = self.model.radio_ms;
        let beam = self.beam_ms(node);
        let (status, answers, slow) = match self.locks.get_mut(&node) {
            Some(l) if l.in_range && l.battery_level > 0 => {
                let answers = l.handle(&command, now_secs);
                (TransmitStatus::Ok, answers, l.model.quirks.slow_response_ms)
            }
            _ => (TransmitStatus::NoAck, Vec::new(), 0),
        };
        let delay = self.faults.callback_delay_ms
            + if status == TransmitStatus::NoAck {
                NO_ACK_MS
            } else {
                0
            };
        let tx_report = self.tx_reports.then(|| TxReport {
            tx_ticks: ((radio + beam) / 10) as u16,
            repeater_count: 0,
            ack_rssi: if status == TransmitStatus::Ok {
                -60
            } else {
                127
            },
            ack_repeater_rssi: [127; 4],
            ack_channel: 0,
            tx_channel: 0,
            route_scheme_state: 0,
            repeaters: [0; 4],
            route_speed: 0x03
                | if beam == 1000 {
                    0x40
                } else if beam == 250 {
                    0x20
                } else {
                    0
                },
            routing_attempts: 1,
            failed_route_last_functional_node: 0,
            failed_route_first_non_functional_node: 0,
            long_range: None,
        });
        let cb = StickRequest::SendDataCallback(SendDataCallback {
            callback_id,
            transmit_status: status,
            tx_report,
        });
        if self.rng.chance(self.faults.drop_callback) {
            self.lost_callback = Some(callback_id);
        } else {
            self.busy = None;
            self.later(delay, cb.clone());
            if self.rng.chance(self.faults.duplicate_callback) {
                self.later(delay + 1, cb);
            }
        }
        let when = Instant::now() + Duration::from_millis(delay + radio + slow);
        for a in answers {
            self.timeline.at(when, Due::FromNode { node, command: a });
        }
    }

    /// Send the next queued frame when none is waiting for its ACK.
    async fn pump(&mut self) {
        if self.inflight.is_some() || self.conn.is_none() {
            return;
        }
        if let Some(f) = self.queue.pop_front() {
            self.inflight = Some(Outbound {
                frame: f.clone(),
                sends: 1,
                deadline: Instant::now() + ACK_TIMEOUT,
            });
            self.write_frame(&f).await;
        }
    }

    async fn write_frame(&mut self, f: &DataFrame) {
        if let Ok(bytes) = f.to_bytes() {
            self.write_raw(&bytes).await;
        }
    }

    /// Write bytes to the host, through the byte faults.
    async fn write_raw(&mut self, bytes: &[u8]) {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if self.rng.chance(self.faults.drop_byte) {
                continue;
            }
            let b = if self.rng.chance(self.faults.corrupt_byte) {
                b ^ (1 << self.rng.below(8))
            } else {
                b
            };
            out.push(b);
        }
        self.stats.bytes_to_host += out.len() as u64;
        if let Some(c) = self.conn.as_mut() {
            let ok = c.write_all(&out).await.is_ok() && c.flush().await.is_ok();
            if !ok {
                self.disconnect();
            }
        }
    }
}

impl Timeline {
    fn drain_all(mut self) -> Vec<(Instant, Due)> {
        let mut out = Vec::new();
        while let Some(Reverse((t, id))) = self.heap.pop() {
            if let Some(d) = self.items.remove(&id) {
                out.push((t, d));
            }
        }
        out
    }
}

fn snapshot(l: &Lock) -> LockSnapshot {
    LockSnapshot {
        node_id: l.node_id(),
        slots: l
            .slots()
            .iter()
            .map(|(id, s)| SlotSnapshot {
                slot: *id,
                status: s.status,
                code: String::from_utf8_lossy(&s.code).into_owned(),
            })
            .collect(),
        locked: l.is_locked(),
        battery_level: l.battery_level,
        in_range: l.in_range,
        commands_received: l.commands_received,
        included: true,
        dsk_pin: l.dsk_pin(),
        supervision_reports_received: l.supervision_reports_received,
        year_day_schedules: l
            .slots()
            .keys()
            .filter_map(|id| u8::try_from(*id).ok())
            .filter_map(|id| l.year_day_schedule(id).map(|s| (id, s)))
            .collect(),
    }
}

async fn read_some(conn: Option<&mut DuplexStream>, buf: &mut BytesMut) -> std::io::Result<usize> {
    match conn {
        Some(c) => c.read_buf(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
