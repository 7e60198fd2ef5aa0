//! The link layer: the host's side of the Serial API framing rules.
//!
//! * every valid data frame received is ACKed at once (before anyone looks at it), a damaged
//!   one is NAKed, and ACK/NAK/CAN are never answered;
//! * one data frame is in flight at a time: after sending it, wait for ACK (1600 ms); on NAK,
//!   CAN or timeout, retransmit after `100 ms + n × 1000 ms`, at most 3 times, then fail;
//! * a data frame still incomplete 1500 ms after its first byte is dropped without NAK;
//! * data frames arriving at any time (also while waiting for an ACK) are passed up.
//!
//! The layer is an actor that owns the byte stream; [`LinkHandle`] is its cloneable handle.
//! Timing uses tokio's clock, so tests can run it on a paused clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::codec::{Received, SerialCodec};
use super::frame::{DataFrame, Frame, ACK, NAK};
use super::transport::BoxedStream;

/// Timing and sizing of the link layer. Defaults follow the Serial API specification.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// How long to wait for the ACK of a data frame we sent.
    pub ack_timeout: Duration,
    /// Retransmission wait: `retransmit_base + n × retransmit_step` before retransmission n+1.
    pub retransmit_base: Duration,
    pub retransmit_step: Duration,
    /// Retransmissions after the first send (so `1 + max_retransmissions` sends in total).
    pub max_retransmissions: u8,
    /// A data frame still incomplete this long after its first byte is dropped.
    pub receive_timeout: Duration,
    /// Frames received but not yet taken by the layer above. When full, new frames are still
    /// ACKed but dropped and counted.
    pub inbound_capacity: usize,
    /// Frames waiting to be sent.
    pub outbound_capacity: usize,
    /// At trace level, frames are dumped through this (the layer above knows where secrets
    /// sit in a frame and hides them); without it only function and length are logged.
    pub dump: Option<FrameDump>,
}

/// Render a frame for a trace log; `outgoing` when the host wrote it.
pub type FrameDump = fn(frame: &DataFrame, outgoing: bool) -> String;

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            ack_timeout: Duration::from_millis(1600),
            retransmit_base: Duration::from_millis(100),
            retransmit_step: Duration::from_millis(1000),
            max_retransmissions: 3,
            receive_timeout: Duration::from_millis(1500),
            inbound_capacity: 256,
            outbound_capacity: 32,
            dump: None,
        }
    }
}

impl LinkConfig {
    /// Wait before retransmission number `n + 1` (n = 0 for the first retransmission).
    pub fn retransmit_delay(&self, n: u8) -> Duration {
        self.retransmit_base + self.retransmit_step * u32::from(n)
    }
}

/// How the stick refused (or failed to acknowledge) the last send of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Nak,
    Can,
    AckTimeout,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Nak => "NAK",
            Refusal::Can => "CAN",
            Refusal::AckTimeout => "no ACK in time",
        })
    }
}

/// Why a frame could not be delivered to the stick.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Every send was refused or unanswered. Retrying later may help (the stick was busy or
    /// is resetting); if it keeps happening the stick is unresponsive.
    #[error("the stick did not acknowledge the frame after {sends} sends (last: {last})")]
    NotAcknowledged { sends: u8, last: Refusal },
    /// The byte stream is gone (stick unplugged, TCP peer closed). Retry after reconnecting.
    #[error("serial link closed: {reason}")]
    Closed { reason: String },
    /// The frame cannot be encoded (payload too long). Retrying cannot help.
    #[error("frame too long to send: {payload_len} payload bytes")]
    FrameTooLong { payload_len: usize },
}

impl LinkError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, LinkError::FrameTooLong { .. })
    }
}

/// What the link passes up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A data frame from the stick (already ACKed).
    Frame(DataFrame),
    /// The byte stream ended; nothing more will come.
    Closed { reason: String },
}

/// Counters of the link since it started, readable at any time.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub retransmissions: AtomicU64,
    pub send_failures: AtomicU64,
    pub naks_received: AtomicU64,
    pub cans_received: AtomicU64,
    pub ack_timeouts: AtomicU64,
    pub naks_sent: AtomicU64,
    pub stray_acks: AtomicU64,
    pub garbage_bytes: AtomicU64,
    pub bad_checksums: AtomicU64,
    pub malformed_frames: AtomicU64,
    pub discarded_partials: AtomicU64,
    pub inbound_dropped: AtomicU64,
}

/// A snapshot of [`LinkStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub frames_sent: u64,
    pub frames_received: u64,
    pub retransmissions: u64,
    pub send_failures: u64,
    pub naks_received: u64,
    pub cans_received: u64,
    pub ack_timeouts: u64,
    pub naks_sent: u64,
    pub stray_acks: u64,
    pub garbage_bytes: u64,
    pub bad_checksums: u64,
    pub malformed_frames: u64,
    pub discarded_partials: u64,
    pub inbound_dropped: u64,
}

impl LinkStats {
    pub fn snapshot(&self) -> LinkCounters {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkCounters {
            frames_sent: g(&self.frames_sent),
            frames_received: g(&self.frames_received),
            retransmissions: g(&self.retransmissions),
            send_failures: g(&self.send_failures),
            naks_received: g(&self.naks_received),
            cans_received: g(&self.cans_received),
            ack_timeouts: g(&self.ack_timeouts),
            naks_sent: g(&self.naks_sent),
            stray_acks: g(&self.stray_acks),
            garbage_bytes: g(&self.garbage_bytes),
            bad_checksums: g(&self.bad_checksums),
            malformed_frames: g(&self.malformed_frames),
            discarded_partials: g(&self.discarded_partials),
            inbound_dropped: g(&self.inbound_dropped),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

enum Command {
    Send {
        frame: DataFrame,
        reply: oneshot::Sender<Result<(), LinkError>>,
    },
    /// Write one NAK byte (used at startup to clear the stick's receiver).
    Nak {
        reply: oneshot::Sender<Result<(), LinkError>>,
    },
    /// Accept the next byte whose low nibble is 6 as an ACK (some sticks garble the first ACK
    /// after a soft reset).
    AcceptSloppyAck,
}

/// Cloneable handle to the link actor.
#[derive(Clone)]
pub struct LinkHandle {
    commands: mpsc::Sender<Command>,
    stats: Arc<LinkStats>,
}

impl std::fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkHandle").finish_non_exhaustive()
    }
}

impl LinkHandle {
    /// Send a data frame and wait until the stick has ACKed it (with retransmissions).
    pub async fn send(&self, frame: DataFrame) -> Result<(), LinkError> {
        if frame.payload.len() > super::frame::MAX_PAYLOAD {
            return Err(LinkError::FrameTooLong {
                payload_len: frame.payload.len(),
            });
        }
        let (reply, rx) = oneshot::channel();
        self.request(Command::Send { frame, reply }, rx).await
    }

    /// Write a single NAK byte, as the host does right after opening the port.
    pub async fn send_nak(&self) -> Result<(), LinkError> {
        let (reply, rx) = oneshot::channel();
        self.request(Command::Nak { reply }, rx).await
    }

    /// Tolerate one garbled ACK (low nibble 6), as 700-series sticks send after a soft reset.
    pub async fn accept_sloppy_ack(&self) {
        let _ = self.commands.send(Command::AcceptSloppyAck).await;
    }

    /// Counters of this link.
    pub fn stats(&self) -> LinkCounters {
        self.stats.snapshot()
    }

    /// Whether the actor is gone (the stream closed).
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    async fn request(
        &self,
        cmd: Command,
        rx: oneshot::Receiver<Result<(), LinkError>>,
    ) -> Result<(), LinkError> {
        let closed = || LinkError::Closed {
            reason: "link stopped".into(),
        };
        self.commands.send(cmd).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// Start the link actor on `stream`. Returns the handle, the stream of received frames, and
/// the actor's task (it ends when the stream closes or every handle is dropped).
pub fn spawn(
    stream: BoxedStream,
    config: LinkConfig,
) -> (
    LinkHandle,
    mpsc::Receiver<LinkEvent>,
    tokio::task::JoinHandle<()>,
) {
    let (cmd_tx, cmd_rx) = mpsc::channel(config.outbound_capacity.max(1));
    let (ev_tx, ev_rx) = mpsc::channel(config.inbound_capacity.max(1));
    let stats = Arc::new(LinkStats::default());
    let actor = LinkActor {
        stream,
        config,
        codec: SerialCodec::new(),
        read_buf: BytesMut::with_capacity(512),
        write_buf: BytesMut::with_capacity(300),
        commands: cmd_rx,
        events: ev_tx,
        stats: stats.clone(),
        inflight: None,
        partial_since: None,
    };
    let task = tokio::spawn(actor.run());
    (
        LinkHandle {
            commands: cmd_tx,
            stats,
        },
        ev_rx,
        task,
    )
}

struct InFlight {
    frame: DataFrame,
    reply: oneshot::Sender<Result<(), LinkError>>,
    /// Sends so far (1 after the first transmission).
    sends: u8,
    phase: Phase,
    last_refusal: Refusal,
}

enum Phase {
    AwaitingAck { deadline: Instant },
    Backoff { until: Instant },
}

struct LinkActor {
    stream: BoxedStream,
    config: LinkConfig,
    codec: SerialCodec,
    read_buf: BytesMut,
    write_buf: BytesMut,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<LinkEvent>,
    stats: Arc<LinkStats>,
    inflight: Option<InFlight>,
    partial_since: Option<Instant>,
}

/// Why the actor loop stopped.
enum Stop {
    Stream(String),
    HandlesDropped,
}

impl LinkActor {
    async fn run(mut self) {
        let stop = self.run_loop().await;
        let reason = match stop {
            Stop::Stream(r) => r,
            Stop::HandlesDropped => return,
        };
        tracing::debug!(%reason, "serial link closed");
        if let Some(inflight) = self.inflight.take() {
            let _ = inflight.reply.send(Err(LinkError::Closed {
                reason: reason.clone(),
            }));
        }
        // Fail everything still queued.
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            let err = LinkError::Closed {
                reason: reason.clone(),
            };
            match cmd {
                Command::Send { reply, .. } | Command::Nak { reply } => {
                    let _ = reply.send(Err(err));
                }
                Command::AcceptSloppyAck => {}
            }
        }
        let _ = self.events.send(LinkEvent::Closed { reason }).await;
    }

    async fn run_loop(&mut self) -> Stop {
        loop {
            let timer = self.next_deadline();
            let idle = self.inflight.is_none();
            tokio::select! {
                biased;
                read = self.stream.read_buf(&mut self.read_buf) => {
                    match read {
                        Ok(0) => return Stop::Stream("end of stream".into()),
                        Ok(_) => {
                            if let Err(stop) = self.process_input().await {
                                return stop;
                            }
                        }
                        Err(e) => return Stop::Stream(e.to_string()),
                    }
                }
                _ = sleep_until_opt(timer) => {
                    if let Err(stop) = self.on_timer().await {
                        return stop;
                    }
                }
                cmd = self.commands.recv(), if idle => {
                    let Some(cmd) = cmd else { return Stop::HandlesDropped };
                    if let Err(stop) = self.on_command(cmd).await {
                        return stop;
                    }
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let flight = self.inflight.as_ref().map(|f| match f.phase {
            Phase::AwaitingAck { deadline } => deadline,
            Phase::Backoff { until } => until,
        });
        let partial = self.partial_since.map(|t| t + self.config.receive_timeout);
        match (flight, partial) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn process_input(&mut self) -> Result<(), Stop> {
        loop {
            let item = match self.codec.decode(&mut self.read_buf) {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => return Err(Stop::Stream(e.to_string())),
            };
            self.on_received(item).await?;
        }
        self.sync_codec_stats();
        // Whatever remains is the beginning of a data frame: start its receive timer.
        if self.read_buf.is_empty() {
            self.partial_since = None;
        } else if self.partial_since.is_none() {
            self.partial_since = Some(Instant::now());
        }
        Ok(())
    }

    fn sync_codec_stats(&self) {
        let c = self.codec.counters();
        self.stats
            .garbage_bytes
            .store(c.garbage_bytes, Ordering::Relaxed);
        self.stats
            .bad_checksums
            .store(c.bad_checksums, Ordering::Relaxed);
        self.stats
            .malformed_frames
            .store(c.malformed, Ordering::Relaxed);
        self.stats
            .discarded_partials
            .store(c.discarded_partials, Ordering::Relaxed);
    }

    async fn on_received(&mut self, item: Received) -> Result<(), Stop> {
        // A complete item ends any partial frame that was pending before it.
        self.partial_since = None;
        match item {
            Received::Frame(Frame::Data(frame)) => {
                self.write_byte(ACK).await?;
                bump(&self.stats.frames_received);
                if tracing::enabled!(tracing::Level::TRACE) {
                    let bytes = self.config.dump.map(|d| d(&frame, false));
                    tracing::trace!(
                        function = frame.function,
                        len = frame.payload.len(),
                        bytes = bytes.as_deref().unwrap_or("-"),
                        "frame received"
                    );
                }
                if self.events.try_send(LinkEvent::Frame(frame)).is_err() {
                    bump(&self.stats.inbound_dropped);
                    tracing::warn!("inbound frame queue full: frame dropped after ACK");
                }
            }
            Received::Frame(Frame::Ack) => self.on_ack(),
            Received::Frame(Frame::Nak) => {
                bump(&self.stats.naks_received);
                self.on_refusal(Refusal::Nak);
            }
            Received::Frame(Frame::Can) => {
                bump(&self.stats.cans_received);
                self.on_refusal(Refusal::Can);
            }
            Received::BadChecksum { .. } | Received::Malformed { .. } => {
                tracing::debug!(?item, "damaged frame from the stick, sending NAK");
                self.write_byte(NAK).await?;
                bump(&self.stats.naks_sent);
            }
        }
        Ok(())
    }

    fn on_ack(&mut self) {
        let accept = match &self.inflight {
            Some(f) => match f.phase {
                Phase::AwaitingAck { .. } => true,
                // An ACK that arrives just after we gave up waiting still means delivery.
                Phase::Backoff { .. } => f.last_refusal == Refusal::AckTimeout,
            },
            None => false,
        };
        if accept {
            if let Some(f) = self.inflight.take() {
                let _ = f.reply.send(Ok(()));
            }
        } else {
            bump(&self.stats.stray_acks);
        }
    }

    fn on_refusal(&mut self, refusal: Refusal) {
        let awaiting = matches!(
            self.inflight.as_ref().map(|f| &f.phase),
            Some(Phase::AwaitingAck { .. })
        );
        if awaiting {
            self.schedule_retransmission(refusal);
        }
    }

    fn schedule_retransmission(&mut self, refusal: Refusal) {
        let Some(mut f) = self.inflight.take() else {
            return;
        };
        f.last_refusal = refusal;
        let retransmissions_done = f.sends - 1;
        if retransmissions_done >= self.config.max_retransmissions {
            bump(&self.stats.send_failures);
            tracing::debug!(sends = f.sends, %refusal, "frame not acknowledged, giving up");
            let _ = f.reply.send(Err(LinkError::NotAcknowledged {
                sends: f.sends,
                last: refusal,
            }));
            return;
        }
        let wait = self.config.retransmit_delay(retransmissions_done);
        tracing::debug!(%refusal, ?wait, "frame not acknowledged, will retransmit");
        f.phase = Phase::Backoff {
            until: Instant::now() + wait,
        };
        self.inflight = Some(f);
    }

    async fn on_timer(&mut self) -> Result<(), Stop> {
        let now = Instant::now();
        if let Some(since) = self.partial_since {
            if now >= since + self.config.receive_timeout {
                tracing::debug!("incomplete frame timed out, dropped");
                self.codec.discard_partial(&mut self.read_buf);
                self.partial_since = None;
                self.sync_codec_stats();
            }
        }
        let due = match self.inflight.as_ref().map(|f| &f.phase) {
            Some(Phase::AwaitingAck { deadline }) if now >= *deadline => Some(true),
            Some(Phase::Backoff { until }) if now >= *until => Some(false),
            _ => None,
        };
        match due {
            Some(true) => {
                bump(&self.stats.ack_timeouts);
                self.schedule_retransmission(Refusal::AckTimeout);
            }
            Some(false) => {
                bump(&self.stats.retransmissions);
                self.transmit_inflight().await?;
            }
            None => {}
        }
        Ok(())
    }

    async fn on_command(&mut self, cmd: Command) -> Result<(), Stop> {
        match cmd {
            Command::Send { frame, reply } => {
                self.inflight = Some(InFlight {
                    frame,
                    reply,
                    sends: 0,
                    phase: Phase::AwaitingAck {
                        deadline: Instant::now(),
                    },
                    last_refusal: Refusal::AckTimeout,
                });
                self.transmit_inflight().await?;
            }
            Command::Nak { reply } => {
                let r = self.write_byte(NAK).await;
                bump(&self.stats.naks_sent);
                let _ = reply.send(Ok(()));
                r?;
            }
            Command::AcceptSloppyAck => self.codec.accept_sloppy_ack_once(),
        }
        Ok(())
    }

    async fn transmit_inflight(&mut self) -> Result<(), Stop> {
        let Some(f) = self.inflight.as_mut() else {
            return Ok(());
        };
        self.write_buf.clear();
        if let Err(e) = f.frame.encode_into(&mut self.write_buf) {
            let f = self.inflight.take().expect("checked above");
            let _ = f.reply.send(Err(LinkError::FrameTooLong {
                payload_len: e.payload_len,
            }));
            return Ok(());
        }
        f.sends += 1;
        if tracing::enabled!(tracing::Level::TRACE) {
            let bytes = self.config.dump.map(|d| d(&f.frame, true));
            tracing::trace!(
                function = f.frame.function,
                len = f.frame.payload.len(),
                send = f.sends,
                bytes = bytes.as_deref().unwrap_or("-"),
                "frame sent"
            );
        }
        let write = async {
            self.stream.write_all(&self.write_buf).await?;
            self.stream.flush().await
        };
        write.await.map_err(|e| Stop::Stream(e.to_string()))?;
        bump(&self.stats.frames_sent);
        if let Some(f) = self.inflight.as_mut() {
            f.phase = Phase::AwaitingAck {
                deadline: Instant::now() + self.config.ack_timeout,
            };
        }
        Ok(())
    }

    async fn write_byte(&mut self, b: u8) -> Result<(), Stop> {
        let r = async {
            self.stream.write_all(&[b]).await?;
            self.stream.flush().await
        };
        r.await.map_err(|e| Stop::Stream(e.to_string()))
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
