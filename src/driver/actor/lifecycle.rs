//! The connection's life: opening the port and starting the stick, taking it down when the
//! link is lost or the recovery ladder says so, and starting it again. The decisions are the
//! ladder's ([`Ladder`]); this is the I/O and the bookkeeping around them: failing the work
//! in flight with a not-connected error, telling the layer above (`Disconnected` once when the
//! stick goes down, `Connected` when it is back), logging each step once, answering pings.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;

use super::*;
use crate::driver::recovery::{Action, Attempt, Phase, Signal};
use crate::driver::startup::{self, StartupConfig};
use crate::serial::link;
use crate::serial::transport::{self, TransportError};
use crate::serialapi::session;

/// Pings waiting at most; more are refused as busy.
const MAX_PINGS: usize = 16;

/// Why a start did not bring the stick up.
pub(super) enum StartFailure {
    /// The port could not be opened.
    Open(TransportError),
    /// The port is open but the stick did not start.
    Startup(DriverError),
}

type Started = Result<(Conn, Vec<SessionEvent>), StartFailure>;

pub(super) type StartFuture = Pin<Box<dyn Future<Output = Started> + Send>>;

/// The running start, if any.
pub(super) async fn start_progress(start: &mut Option<StartFuture>) -> Started {
    match start {
        Some(f) => f.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Open the port and start the stick.
fn open_and_start(config: DriverConfig) -> StartFuture {
    Box::pin(async move {
        let stream = transport::open(&config.port, config.simulator.as_deref())
            .await
            .map_err(StartFailure::Open)?;
        let (link, link_events, _task) = link::spawn(stream, config.link.clone());
        let (session, events) = session::spawn(link.clone(), link_events, config.session.clone());
        start(link, session, events, config.startup).await
    })
}

/// Soft-reset the stick and start it again, on the port it is on.
fn start_again(conn: Conn, mut startup: StartupConfig) -> StartFuture {
    startup.soft_reset = true;
    let Conn {
        link,
        session,
        events,
        ..
    } = conn;
    Box::pin(async move { start(link, session, events, startup).await })
}

/// Run startup; on failure everything is dropped, which closes the port.
async fn start(
    link: LinkHandle,
    session: SessionHandle,
    mut events: mpsc::Receiver<SessionEvent>,
    cfg: StartupConfig,
) -> Started {
    let (controller, held) = startup::run(&link, &session, &mut events, &cfg)
        .await
        .map_err(StartFailure::Startup)?;
    Ok((Conn::new(link, session, events, controller), held))
}

impl State {
    /// Open the port when it is closed and its time has come.
    pub(super) fn maybe_open(&mut self) {
        if self.conn.is_some() || self.starting.is_some() {
            return;
        }
        if self.reopen_at.is_some_and(|t| t <= Instant::now()) {
            self.reopen_at = None;
            self.starting = Some(open_and_start(self.config.clone()));
        }
    }

    /// A start ended.
    pub(super) async fn on_started(&mut self, r: Started) {
        match r {
            Ok((conn, held)) => {
                if self.open_error_logged.take().is_some() || self.ladder.recovering() {
                    tracing::info!(port = %self.config.port, "stick started again");
                }
                self.open_error = None;
                self.ladder.on_attempt(Attempt::Started);
                self.on_connected(conn, held).await;
            }
            Err(StartFailure::Open(e)) => {
                let msg = e.to_string();
                if self.open_error_logged.as_deref() != Some(&msg) {
                    tracing::warn!(port = %self.config.port, error = %msg, "cannot open the stick's port; retrying with backoff");
                    self.open_error_logged = Some(msg);
                }
                self.open_error = Some(Arc::new(e));
                let action = self.ladder.on_attempt(Attempt::PortUnavailable);
                self.act(action);
            }
            Err(StartFailure::Startup(e)) => {
                let before = (self.ladder.phase(), self.ladder.exhausted());
                let action = self.ladder.on_attempt(Attempt::StartupFailed);
                if before.1 {
                    tracing::debug!(port = %self.config.port, error = %e, "the stick did not start");
                } else {
                    tracing::warn!(port = %self.config.port, error = %e, "the stick did not start");
                }
                self.log_step(before);
                self.act(action);
            }
        }
    }

    /// The session ended under us (unplugged, the peer went away).
    pub(super) fn link_lost(&mut self, reason: String) {
        tracing::warn!(%reason, "stick disconnected");
        self.lost_reason = reason.clone();
        self.stats.reconnects += 1;
        let action = self.ladder.on_link_lost();
        self.act(action);
    }

    /// What the stick did with a request, for the ladder; takes the step it decides.
    pub(super) fn on_signal(&mut self, signal: Signal) {
        let was_recovering = self.ladder.recovering();
        let before = (self.ladder.phase(), self.ladder.exhausted());
        let action = self.ladder.on_signal(signal);
        if signal == Signal::Accepted {
            self.abort_logged = false;
            if was_recovering {
                tracing::info!("the stick takes SendData again: recovered");
            }
        }
        self.log_step(before);
        self.act(action);
    }

    /// SendDataAbort frames the session sent during an operation (step 1).
    pub(super) fn on_aborts(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.stats.stick_aborts += n;
        if !self.abort_logged {
            self.abort_logged = true;
            tracing::warn!("a SendData callback did not come: SendDataAbort sent");
        }
    }

    /// Log the step the ladder just took (from `before`: phase, exhausted), once.
    fn log_step(&self, before: (Phase, bool)) {
        let (phase_before, was_exhausted) = before;
        if self.ladder.exhausted() {
            if !was_exhausted {
                tracing::error!(
                    reopens = self.ladder.reopens_tried(),
                    retry_every = ?self.config.reconnect_max,
                    "the stick does not work after a soft reset and every reopen of its port: \
                     recovery gave up (still reopening); the watchdog is no longer fed"
                );
            }
            return;
        }
        if self.ladder.phase() == phase_before {
            return;
        }
        match self.ladder.phase() {
            Phase::SoftReset => tracing::warn!(
                "the stick keeps refusing SendData or losing their callbacks: soft reset, then startup again"
            ),
            Phase::Reopening { attempt: 1 } => tracing::warn!(
                "the stick is still stuck after a soft reset: closing and reopening its port, with backoff"
            ),
            Phase::Reopening { attempt } => {
                tracing::debug!(attempt, "reopening the stick's port again")
            }
            _ => {}
        }
    }

    /// Carry out what the ladder decided.
    pub(super) fn act(&mut self, action: Action) {
        match action {
            Action::None => {}
            Action::StartAgain => {
                if let Some(conn) = self.take_down() {
                    self.starting = Some(start_again(conn, self.config.startup.clone()));
                }
            }
            Action::Reopen { after } => {
                // Dropping the connection closes the port.
                drop(self.take_down());
                self.starting = None;
                self.reopen_at = Some(Instant::now() + after);
            }
        }
    }

    /// Why the stick is not connected now, as requests are told.
    pub(super) fn not_connected(&self) -> DriverError {
        DriverError::not_connected(self.down_reason())
    }

    fn down_reason(&self) -> NotConnected {
        if self.ladder.exhausted() {
            return NotConnected::Unresponsive {
                reopens: self.ladder.reopens_tried(),
            };
        }
        match self.ladder.phase() {
            Phase::Connecting | Phase::Up => NotConnected::Connecting,
            Phase::LinkLost => NotConnected::LinkLost {
                reason: self.lost_reason.clone(),
            },
            Phase::Restarting => NotConnected::Restarted,
            Phase::Absent => match &self.open_error {
                Some(e) => NotConnected::Absent { source: e.clone() },
                None => NotConnected::Connecting,
            },
            Phase::SoftReset => NotConnected::SoftReset,
            Phase::Reopening { attempt } => NotConnected::Reopening { attempt },
        }
    }

    /// Take the connection down: everything in flight or waiting fails with the reason, and
    /// the layer above hears `Disconnected` (once). Returns the connection, to be started
    /// again or dropped.
    fn take_down(&mut self) -> Option<Conn> {
        let mut conn = self.conn.take()?;
        let why = self.down_reason();
        let reason = why.to_string();
        let err = DriverError::not_connected(why);
        if let Some(op) = conn.stick.take() {
            self.on_aborts(conn.session.aborts_sent().saturating_sub(op.aborts_before));
            match op.job.op {
                Op::Host(hj) => hj.fail(self, err.clone()),
                _ => op.job.finish(Err(err.clone())),
            }
        }
        if let Some((_, w)) = conn.nif_wait.take() {
            w.job.finish(Err(err.clone()));
        }
        for st in self.nodes.values_mut() {
            if let Some(w) = st.waiting.take() {
                w.job.finish(Err(err.clone()));
            }
            for q in st.queues.iter_mut() {
                for j in q.drain(..) {
                    j.finish(Err(err.clone()));
                }
            }
            for j in st.parked.drain(..) {
                j.finish(Err(err.clone()));
            }
            st.retry_at = None;
            st.nonce_arrived = false;
            st.interviewing = false;
        }
        for hj in std::mem::take(&mut self.host_jobs) {
            hj.fail(self, err.clone());
        }
        self.answer_pings(Err(err.clone()));
        self.end_learning(Err(err));
        self.emit(DriverEvent::Disconnected { reason });
        Some(conn)
    }

    /// A ping: answered by the stick's next GetControllerId, or at once when it is down.
    pub(super) fn ping(&mut self, reply: oneshot::Sender<Result<(), DriverError>>) {
        if self.conn.is_none() || self.ladder.exhausted() {
            let _ = reply.send(Err(self.not_connected()));
            return;
        }
        if self.pings.len() >= MAX_PINGS {
            let _ = reply.send(Err(DriverError::StickBusy));
            return;
        }
        if self.pings.is_empty() {
            self.host_jobs.push_back(inclusion::HostJob::Ping);
        }
        self.pings.push(reply);
    }

    pub(super) fn answer_pings(&mut self, r: Result<(), DriverError>) {
        for p in self.pings.drain(..) {
            let _ = p.send(r.clone());
        }
    }
}
