//! One Serial API request at a time, paired with its response and its callback.
//!
//! The session is an actor on top of the link. [`SessionHandle::request`] sends a
//! [`HostRequest`], waits for the RES of the same function (when the function has one) and,
//! for requests with a callback id, for the callback with that id. Everything else the stick
//! sends (node commands, node information, inclusion status, stray or duplicate callbacks) goes
//! to the unsolicited stream, except stale SendData callbacks, which are dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::error::SerialApiError;
use super::message::{HostRequest, StickRequest, StickResponse};
use super::node_id::NodeIdType;
use crate::serial::frame::FrameType;
use crate::serial::link::{LinkError, LinkEvent, LinkHandle};

/// Timeouts of the session (defaults as zwave-js uses them).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How long a RES may take.
    pub response_timeout: Duration,
    /// With no SendData callback after this long, send SendDataAbort.
    pub callback_abort_after: Duration,
    /// With no callback after this long, give up.
    pub callback_timeout: Duration,
    /// Unsolicited frames waiting for the layer above.
    pub unsolicited_capacity: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            response_timeout: Duration::from_secs(10),
            callback_abort_after: Duration::from_secs(20),
            callback_timeout: Duration::from_secs(30),
            unsolicited_capacity: 256,
        }
    }
}

/// Why a request did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("{function}: no response from the stick within {waited:?}")]
    ResponseTimeout {
        function: &'static str,
        waited: Duration,
    },
    #[error("{function}: no callback {callback_id} from the stick within {waited:?}")]
    CallbackTimeout {
        function: &'static str,
        callback_id: u8,
        waited: Duration,
    },
    #[error("cannot encode request: {0}")]
    Encode(#[from] SerialApiError),
    #[error("the serial session has stopped")]
    Stopped,
}

impl SessionError {
    /// Whether trying again (later, or after reconnecting) can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            SessionError::Link(l) => l.is_retryable(),
            SessionError::Encode(_) => false,
            _ => true,
        }
    }
}

/// What came back for a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exchange {
    pub response: Option<StickResponse>,
    pub callback: Option<StickRequest>,
}

/// What the session passes up besides answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A REQ from the stick that no request was waiting for.
    Unsolicited(StickRequest),
    /// A frame that could not be parsed (it was ACKed; its contents are dropped).
    Unparsable { function: u8, error: SerialApiError },
    /// The link closed; the session has stopped.
    Closed { reason: String },
}

struct Request {
    req: HostRequest,
    reply: oneshot::Sender<Result<Exchange, SessionError>>,
}

/// Cloneable handle to the session actor.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    requests: mpsc::Sender<Request>,
    node_id_type: tokio::sync::watch::Receiver<NodeIdType>,
    aborts: Arc<AtomicU64>,
}

impl SessionHandle {
    /// Send `req` and wait for what it gets back.
    pub async fn request(&self, req: HostRequest) -> Result<Exchange, SessionError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request { req, reply })
            .await
            .map_err(|_| SessionError::Stopped)?;
        rx.await.map_err(|_| SessionError::Stopped)?
    }

    /// The node id width the stick uses now.
    pub fn node_id_type(&self) -> NodeIdType {
        *self.node_id_type.borrow()
    }

    pub fn is_closed(&self) -> bool {
        self.requests.is_closed()
    }

    /// SendDataAbort frames this session sent (for SendData whose RES or callback was late).
    pub fn aborts_sent(&self) -> u64 {
        self.aborts.load(Ordering::Relaxed)
    }
}

type SendFuture = Pin<Box<dyn Future<Output = Result<(), LinkError>> + Send>>;

enum Phase {
    Sending(SendFuture),
    AwaitResponse {
        deadline: Instant,
    },
    AwaitCallback {
        started: Instant,
        abort_at: Option<Instant>,
        deadline: Instant,
    },
}

struct InFlight {
    req: HostRequest,
    reply: oneshot::Sender<Result<Exchange, SessionError>>,
    exchange: Exchange,
    phase: Phase,
}

/// Start the session on a link. Returns the handle and the stream of unsolicited events.
pub fn spawn(
    link: LinkHandle,
    events: mpsc::Receiver<LinkEvent>,
    config: SessionConfig,
) -> (SessionHandle, mpsc::Receiver<SessionEvent>) {
    let (req_tx, req_rx) = mpsc::channel(16);
    let (ev_tx, ev_rx) = mpsc::channel(config.unsolicited_capacity.max(1));
    let (ty_tx, ty_rx) = tokio::sync::watch::channel(NodeIdType::Bits8);
    let aborts = Arc::new(AtomicU64::new(0));
    let actor = Session {
        link,
        events,
        requests: req_rx,
        up: ev_tx,
        config,
        node_id_type: NodeIdType::Bits8,
        node_id_type_tx: ty_tx,
        inflight: None,
        last_callback: None,
        aborts: aborts.clone(),
    };
    tokio::spawn(actor.run());
    (
        SessionHandle {
            requests: req_tx,
            node_id_type: ty_rx,
            aborts,
        },
        ev_rx,
    )
}

struct Session {
    link: LinkHandle,
    events: mpsc::Receiver<LinkEvent>,
    requests: mpsc::Receiver<Request>,
    up: mpsc::Sender<SessionEvent>,
    config: SessionConfig,
    node_id_type: NodeIdType,
    node_id_type_tx: tokio::sync::watch::Sender<NodeIdType>,
    inflight: Option<InFlight>,
    /// The last SendData callback id completed, to recognise a duplicate.
    last_callback: Option<u8>,
    aborts: Arc<AtomicU64>,
}

impl Session {
    async fn run(mut self) {
        loop {
            let idle = self.inflight.is_none();
            let deadline = self.deadline();
            tokio::select! {
                biased;
                r = send_progress(&mut self.inflight) => self.on_sent(r),
                ev = self.events.recv() => match ev {
                    Some(LinkEvent::Frame(f)) => self.on_frame(f).await,
                    Some(LinkEvent::Closed { reason }) => {
                        self.stop(reason).await;
                        return;
                    }
                    None => {
                        self.stop("link stopped".into()).await;
                        return;
                    }
                },
                _ = sleep_until_opt(deadline) => self.on_timeout().await,
                req = self.requests.recv(), if idle => match req {
                    Some(r) => self.start(r),
                    None => return,
                },
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.inflight.as_ref()?.phase {
            Phase::Sending(_) => None,
            Phase::AwaitResponse { deadline } => Some(*deadline),
            Phase::AwaitCallback {
                abort_at, deadline, ..
            } => Some(abort_at.map_or(*deadline, |a| a.min(*deadline))),
        }
    }

    fn start(&mut self, r: Request) {
        let frame = match r.req.encode(self.node_id_type) {
            Ok(f) => f,
            Err(e) => {
                let _ = r.reply.send(Err(e.into()));
                return;
            }
        };
        let link = self.link.clone();
        self.inflight = Some(InFlight {
            req: r.req,
            reply: r.reply,
            exchange: Exchange::default(),
            phase: Phase::Sending(Box::pin(async move { link.send(frame).await })),
        });
    }

    fn finish(&mut self, result: Result<(), SessionError>) {
        if let Some(f) = self.inflight.take() {
            if result.is_ok() {
                self.track_node_id_type(&f.req, &f.exchange);
            }
            let _ = f.reply.send(result.map(|_| f.exchange));
        }
    }

    /// SetNodeIdType and SoftReset change how node ids are written.
    fn track_node_id_type(&mut self, req: &HostRequest, ex: &Exchange) {
        use super::controller::{SetupRequest, SetupResponse};
        let new = match (req, &ex.response) {
            (HostRequest::SoftReset, _) => Some(NodeIdType::Bits8),
            (
                HostRequest::SerialApiSetup(SetupRequest::SetNodeIdType { node_id_type }),
                Some(StickResponse::SerialApiSetup(SetupResponse::SetNodeIdType { success: true })),
            ) => NodeIdType::from_byte(*node_id_type),
            _ => None,
        };
        if let Some(t) = new {
            self.node_id_type = t;
            let _ = self.node_id_type_tx.send(t);
        }
    }

    fn on_sent(&mut self, r: Result<(), LinkError>) {
        if let Err(e) = r {
            self.finish(Err(e.into()));
            return;
        }
        let Some(f) = self.inflight.as_mut() else {
            return;
        };
        let now = Instant::now();
        if f.req.expects_response() {
            f.phase = Phase::AwaitResponse {
                deadline: now + self.config.response_timeout,
            };
        } else if f.req.callback_id().is_some() {
            f.phase = callback_phase(&self.config, &f.req, now);
        } else {
            self.finish(Ok(()));
        }
    }

    async fn on_frame(&mut self, f: crate::serial::DataFrame) {
        let ty = self.node_id_type;
        if f.frame_type == FrameType::Response {
            // The RES may be seen before the link reports the ACK that preceded it.
            let awaiting = self.inflight.as_ref().is_some_and(|i| {
                matches!(i.phase, Phase::AwaitResponse { .. } | Phase::Sending(_))
                    && i.req.expects_response()
                    && i.req.function().to_byte() == f.function
            });
            if !awaiting {
                tracing::debug!(
                    function = f.function,
                    "unexpected response from the stick, dropped"
                );
                return;
            }
            match StickResponse::parse(&f, ty) {
                Ok(res) => self.on_response(res),
                Err(e) => self.finish(Err(e.into())),
            }
            return;
        }
        let msg = match StickRequest::parse(&f, ty) {
            Ok(m) => m,
            Err(error) => {
                let _ = self.up.try_send(SessionEvent::Unparsable {
                    function: f.function,
                    error,
                });
                return;
            }
        };
        if let Some(id) = callback_id_of(&msg) {
            let waiting = self.inflight.as_ref().and_then(|i| {
                i.req
                    .callback_id()
                    .filter(|cb| *cb == id && i.req.function() == msg.function())
            });
            if waiting.is_some() {
                if let Some(i) = self.inflight.as_mut() {
                    i.exchange.callback = Some(msg);
                    if matches!(
                        i.req,
                        HostRequest::SendData(_) | HostRequest::SendDataBridge(_)
                    ) {
                        self.last_callback = Some(id);
                    }
                    // The RES comes first; a callback that overtakes it completes the request
                    // when the RES arrives.
                    if i.exchange.response.is_some() || !i.req.expects_response() {
                        self.finish(Ok(()));
                    }
                }
                return;
            }
            if matches!(
                msg,
                StickRequest::SendDataCallback(_) | StickRequest::SendDataBridgeCallback(_)
            ) {
                tracing::debug!(
                    callback_id = id,
                    duplicate = self.last_callback == Some(id),
                    "stale SendData callback dropped"
                );
                return;
            }
        }
        if self.up.try_send(SessionEvent::Unsolicited(msg)).is_err() {
            tracing::warn!("unsolicited frame queue full: frame dropped");
        }
    }

    fn on_response(&mut self, res: StickResponse) {
        let Some(i) = self.inflight.as_mut() else {
            return;
        };
        let refused = matches!(
            res,
            StickResponse::SendData { accepted: false }
                | StickResponse::SendDataBridge { accepted: false }
                | StickResponse::RemoveFailedNode {
                    start_flags: 1..=255
                }
        );
        let wants_callback = i.req.callback_id().is_some() && !refused;
        let callback_already = i.exchange.callback.is_some();
        i.exchange.response = Some(res);
        if wants_callback && !callback_already {
            i.phase = callback_phase(&self.config, &i.req, Instant::now());
        } else {
            self.finish(Ok(()));
        }
    }

    async fn on_timeout(&mut self) {
        let now = Instant::now();
        let Some(i) = self.inflight.as_mut() else {
            return;
        };
        let function = i.req.function().name().unwrap_or("request");
        match &mut i.phase {
            Phase::AwaitResponse { deadline } if now >= *deadline => {
                let waited = self.config.response_timeout;
                if matches!(i.req, HostRequest::SendData(_)) {
                    // zwave-js: abort the SendData and wait for its callback anyway.
                    i.phase = callback_phase(&self.config, &i.req, now);
                    self.abort();
                    return;
                }
                self.finish(Err(SessionError::ResponseTimeout { function, waited }));
            }
            Phase::AwaitCallback {
                started,
                abort_at,
                deadline,
            } => {
                if now >= *deadline {
                    let waited = now - *started;
                    let callback_id = i.req.callback_id().unwrap_or(0);
                    self.finish(Err(SessionError::CallbackTimeout {
                        function,
                        callback_id,
                        waited,
                    }));
                } else if abort_at.is_some_and(|a| now >= a) {
                    *abort_at = None;
                    tracing::debug!(function, "no callback yet: sending SendDataAbort");
                    self.abort();
                }
            }
            _ => {}
        }
    }

    fn abort(&self) {
        self.aborts.fetch_add(1, Ordering::Relaxed);
        if let Ok(frame) = HostRequest::SendDataAbort.encode(self.node_id_type) {
            let link = self.link.clone();
            tokio::spawn(async move {
                let _ = link.send(frame).await;
            });
        }
    }

    async fn stop(&mut self, reason: String) {
        if let Some(i) = self.inflight.take() {
            let _ = i.reply.send(Err(SessionError::Link(LinkError::Closed {
                reason: reason.clone(),
            })));
        }
        self.requests.close();
        while let Ok(r) = self.requests.try_recv() {
            let _ = r.reply.send(Err(SessionError::Link(LinkError::Closed {
                reason: reason.clone(),
            })));
        }
        let _ = self.up.send(SessionEvent::Closed { reason }).await;
    }
}

/// Waiting for the callback of `req`, from `now`. Only SendData is aborted when it is late.
fn callback_phase(config: &SessionConfig, req: &HostRequest, now: Instant) -> Phase {
    let is_send_data = matches!(
        req,
        HostRequest::SendData(_) | HostRequest::SendDataBridge(_)
    );
    Phase::AwaitCallback {
        started: now,
        abort_at: is_send_data.then(|| now + config.callback_abort_after),
        deadline: now + config.callback_timeout,
    }
}

/// The callback id of a stick REQ that answers a request, if it is one.
fn callback_id_of(msg: &StickRequest) -> Option<u8> {
    match msg {
        StickRequest::SendDataCallback(c) | StickRequest::SendDataBridgeCallback(c) => {
            Some(c.callback_id)
        }
        StickRequest::AddNodeStatus(s) | StickRequest::RemoveNodeStatus(s) => Some(s.callback_id),
        StickRequest::RemoveFailedNodeStatus(s) => Some(s.callback_id),
        _ => None,
    }
}

async fn send_progress(inflight: &mut Option<InFlight>) -> Result<(), LinkError> {
    match inflight {
        Some(InFlight {
            phase: Phase::Sending(fut),
            ..
        }) => fut.await,
        _ => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
