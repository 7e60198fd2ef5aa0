//! The simulated controller stick: speaks the Serial API bytes to the host, and carries
//! SendData frames to the simulated locks and their answers back.
//!
//! One actor per network. It owns the locks, the connection to the host (if any), the
//! frames waiting to go to the host and a timeline of things due later (callbacks, node
//! reports), so that a run on a paused clock with the same seed gives the same bytes.

mod requests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::lock::Lock;
use super::model::{Faults, JamClearedBy, Listening, NetworkModel};
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
const FUNCTIONS: [u8; 22] = [
    0x02, 0x05, 0x07, 0x08, 0x0B, 0x13, 0x15, 0x16, 0x20, 0x41, 0x4A, 0x4B, 0x60, 0x61, 0x62, 0x04,
    0x49, 0x0A, 0x56, 0x09, 0x51, 0x55,
];

/// The protocol version the stick reports (GetProtocolVersion): SDK 7.19.3, whose
/// SerialApiSetup supported-commands bitmask has bit 0 for GetSupportedCommands.
const PROTOCOL_VERSION: [u8; 3] = [7, 19, 3];
/// Controller capabilities: it was the real primary, it is the SUC and so a SIS is present
/// (GetSerialApiInitData says it is the SIS; GetSUCNodeId names it).
const CONTROLLER_CAPABILITIES: u8 = 0x04 | 0x08 | 0x10;

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
    /// The answer to a RequestNodeInfo (its node information, or the failure) goes to the
    /// host, and the stick's transaction ends.
    NodeInfoDone(DataFrame),
    /// The callback of an Assign/Delete SUC Return Route goes to the host, and the stick's
    /// transaction ends.
    RouteDone(DataFrame),
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
    /// A RequestNodeInfo waits for the node's information frame (until it is sent to the
    /// host, or the request failed). Like SendData, it is the stick's one transaction.
    nif_pending: bool,
    /// A callback lost by fault injection: SendDataAbort brings it back as a failure.
    lost_callback: Option<u8>,
    /// Jammed: every SendData is answered "not accepted" until `faults.jam_cleared_by`.
    jammed: bool,
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
            jammed: model.faults.jammed,
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
            nif_pending: false,
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
        self.stats.connections += 1;
        self.conn = Some(stream);
    }

    fn disconnect(&mut self) {
        self.conn = None;
        self.read_buf.clear();
        self.queue.clear();
        self.inflight = None;
        self.busy = None;
        self.nif_pending = false;
        self.lost_callback = None;
        if self.faults.jam_cleared_by == JamClearedBy::Reopen {
            self.jammed = false;
        }
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
                if let Some(e) = action.refusal(lock) {
                    let _ = reply.send(Err(e));
                    return;
                }
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
                self.jammed = faults.jammed;
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

    /// The stick's own transaction is in flight: a SendData until its callback (or the
    /// callback lost), a RequestNodeInfo until the node information. The zwave-js mock refuses
    /// another callback-bearing request meanwhile; so does this stick.
    fn communicating(&self) -> bool {
        self.busy.is_some() || self.nif_pending || self.lost_callback.is_some()
    }

    fn beam_ms(&self, node: u8) -> u64 {
        match self.locks.get(&node).map(|l| l.model.listening) {
            Some(Listening::Flirs1000) => 1000,
            Some(Listening::Flirs250) => 250,
            _ => 0,
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
                Due::NodeInfoDone(f) => {
                    self.nif_pending = false;
                    self.queue.push_back(f);
                }
                Due::RouteDone(f) => {
                    self.busy = None;
                    self.queue.push_back(f);
                }
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
            if self.rng.chance(self.faults.jam_on_lost_callback) {
                self.jammed = true;
            }
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
