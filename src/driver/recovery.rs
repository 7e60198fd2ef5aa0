//! The stick recovery ladder: what to do when the stick stops working, decided from what it
//! did with each request. A pure state machine; the actor does the I/O and tells it the
//! outcome.
//!
//! 1. A SendData whose callback does not come is aborted (SendDataAbort; the serial session
//!    sends it, and the driver counts it).
//! 2. `stuck_after` SendData in a row that the stick did not accept (RES `13 00`) or whose
//!    callback it lost, or `unresponsive_after` requests in a row it did not answer at all:
//!    the stick is soft-reset and started again, on the same port.
//! 3. Still stuck after that, before any SendData got through (or the startup failed): the
//!    port is closed and opened again, after a backoff doubling from `backoff_initial` to
//!    `backoff_max`; again on each further failure.
//! 4. After `reopen_attempts` reopens that did not help the ladder is exhausted: the driver
//!    goes on reopening at the longest backoff, and says the stick is
//!    [`NotConnected::Unresponsive`](super::NotConnected::Unresponsive).
//!
//! The stick works again when it accepts a SendData, or, when the last step was taken because
//! it did not answer at all, when a startup goes through: the next failure starts from
//! step 2. A port
//! that cannot be opened (stick unplugged, no such device) is not a step: the driver tries
//! again with the same backoff, forever, and the stick is absent, never unresponsive.
//!
//! The watchdog rule ([`feeds_watchdog`]): systemd's watchdog is fed after a ping that went
//! through the driver to the stick and back, and while the stick is legitimately not there
//! (absent, connecting, being recovered: a restart would not bring it back sooner). It is
//! not fed after a ping that failed on a connected stick, nor once the ladder is exhausted, so
//! a stick that no step fixes ends with systemd restarting the service.

use std::time::Duration;

use super::DriverError;
use crate::serial::link::LinkError;
use crate::serialapi::session::{Exchange, SessionError};
use crate::serialapi::StickResponse;

/// The ladder's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LadderConfig {
    /// SendData in a row not accepted, or whose callback was lost, before a soft reset.
    pub stuck_after: u32,
    /// Requests in a row with no answer at all (no ACK, no RES) before a soft reset.
    pub unresponsive_after: u32,
    /// Reopens of the port tried before the ladder is exhausted.
    pub reopen_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

/// What the stick did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// It accepted a SendData and called back: it works.
    Accepted,
    /// It answered a SendData with RES "not accepted".
    NotAccepted,
    /// It accepted a SendData but its callback was lost (it came only after SendDataAbort, or
    /// never).
    CallbackLost,
    /// It did not answer at all (no ACK, no RES).
    NoAnswer,
    /// It answered a request other than SendData. A jammed stick still does, so this says
    /// nothing about a jam.
    Answered,
}

/// How an attempt to start the stick ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Startup went through.
    Started,
    /// The port could not be opened.
    PortUnavailable,
    /// The port opened (or was open) but the stick did not start.
    StartupFailed,
}

/// What the actor must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    /// Stop the traffic, soft-reset the stick and run startup again, on the open port.
    StartAgain,
    /// Close the port (if open), and open it again after `after`.
    Reopen {
        after: Duration,
    },
}

/// Where the stick is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The port is being opened and the stick started.
    Connecting,
    /// Started, and taking requests.
    Up,
    /// The link closed under the driver (unplugged); reconnecting.
    LinkLost,
    /// The stick restarted on its own; it is started again on the same port.
    Restarting,
    /// The port could not be opened; trying again after a backoff.
    Absent,
    /// Step 2: soft reset and startup again.
    SoftReset,
    /// Step 3: the port was closed; reopen number `attempt`.
    Reopening { attempt: u32 },
}

/// The steps taken since the stick last worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escalation {
    None,
    SoftReset,
    Reopened(u32),
}

/// What made the ladder take its last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// SendData refused or their callbacks lost: only an accepted SendData proves it works.
    Jam,
    /// No answer at all, or a startup that failed: a startup that goes through proves it.
    Silent,
}

/// The ladder's state.
#[derive(Debug, Clone)]
pub struct Ladder {
    config: LadderConfig,
    phase: Phase,
    stuck: u32,
    silent: u32,
    escalation: Escalation,
    cause: Cause,
    /// Attempts in a row that did not start the stick (for the backoff).
    failures: u32,
    soft_resets: u64,
    reopens: u64,
}

impl Ladder {
    pub fn new(config: LadderConfig) -> Ladder {
        Ladder {
            config,
            phase: Phase::Connecting,
            stuck: 0,
            silent: 0,
            escalation: Escalation::None,
            cause: Cause::Jam,
            failures: 0,
            soft_resets: 0,
            reopens: 0,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Every step was tried and the stick still does not work (an absent stick never is).
    pub fn exhausted(&self) -> bool {
        self.phase != Phase::Absent
            && matches!(self.escalation, Escalation::Reopened(n) if n > self.config.reopen_attempts)
    }

    /// Whether a step of the ladder was taken since the stick last worked.
    pub fn recovering(&self) -> bool {
        self.escalation != Escalation::None
    }

    /// Reopens tried since the stick last worked.
    pub fn reopens_tried(&self) -> u32 {
        match self.escalation {
            Escalation::Reopened(n) => n.min(self.config.reopen_attempts),
            _ => 0,
        }
    }

    /// Soft resets (step 2) taken since start.
    pub fn soft_resets(&self) -> u64 {
        self.soft_resets
    }

    /// Reopens of the port (step 3) taken since start.
    pub fn reopens(&self) -> u64 {
        self.reopens
    }

    /// The stick did something with a request.
    pub fn on_signal(&mut self, signal: Signal) -> Action {
        if self.phase != Phase::Up {
            return Action::None;
        }
        match signal {
            Signal::Accepted => {
                self.stuck = 0;
                self.silent = 0;
                self.escalation = Escalation::None;
                Action::None
            }
            Signal::Answered => {
                self.silent = 0;
                Action::None
            }
            Signal::NotAccepted | Signal::CallbackLost => {
                self.silent = 0;
                self.stuck += 1;
                if self.stuck >= self.config.stuck_after {
                    self.escalate(Cause::Jam)
                } else {
                    Action::None
                }
            }
            Signal::NoAnswer => {
                self.silent += 1;
                if self.silent >= self.config.unresponsive_after {
                    self.escalate(Cause::Silent)
                } else {
                    Action::None
                }
            }
        }
    }

    /// An attempt to start the stick ended.
    pub fn on_attempt(&mut self, attempt: Attempt) -> Action {
        self.stuck = 0;
        self.silent = 0;
        match attempt {
            Attempt::Started => {
                self.phase = Phase::Up;
                self.failures = 0;
                if self.cause == Cause::Silent {
                    // It answered its whole startup: what was wrong is mended.
                    self.escalation = Escalation::None;
                }
                Action::None
            }
            Attempt::PortUnavailable => {
                self.phase = Phase::Absent;
                self.failures += 1;
                Action::Reopen {
                    after: self.backoff(self.failures - 1),
                }
            }
            Attempt::StartupFailed => {
                self.failures += 1;
                // Startup soft-resets the stick itself: the next step is a reopen.
                self.cause = Cause::Silent;
                let next = match self.escalation {
                    Escalation::None | Escalation::SoftReset => 1,
                    Escalation::Reopened(n) => n + 1,
                };
                self.reopen(next)
            }
        }
    }

    /// The link closed under the driver: reconnect at once.
    pub fn on_link_lost(&mut self) -> Action {
        self.phase = Phase::LinkLost;
        self.stuck = 0;
        self.silent = 0;
        Action::Reopen {
            after: Duration::ZERO,
        }
    }

    /// The stick restarted on its own: reconnect at once (not a step of the ladder). The
    /// port is reopened rather than reused: a request the stick forgot in its restart would
    /// otherwise hold the session until its timeout.
    pub fn on_restarted(&mut self) -> Action {
        if self.phase != Phase::Up {
            return Action::None;
        }
        self.phase = Phase::Restarting;
        self.stuck = 0;
        self.silent = 0;
        Action::Reopen {
            after: Duration::ZERO,
        }
    }

    fn escalate(&mut self, cause: Cause) -> Action {
        self.stuck = 0;
        self.silent = 0;
        self.cause = cause;
        match self.escalation {
            Escalation::None => {
                self.escalation = Escalation::SoftReset;
                self.phase = Phase::SoftReset;
                self.soft_resets += 1;
                Action::StartAgain
            }
            Escalation::SoftReset => self.reopen(1),
            Escalation::Reopened(n) => self.reopen(n + 1),
        }
    }

    fn reopen(&mut self, attempt: u32) -> Action {
        self.escalation = Escalation::Reopened(attempt);
        self.phase = Phase::Reopening { attempt };
        self.reopens += 1;
        let after = if attempt > self.config.reopen_attempts {
            self.config.backoff_max
        } else {
            self.backoff(attempt - 1)
        };
        Action::Reopen { after }
    }

    /// `backoff_initial × 2^n`, at most `backoff_max`.
    fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32 << n.min(16);
        self.config
            .backoff_initial
            .saturating_mul(factor)
            .min(self.config.backoff_max)
    }
}

/// What the outcome of one stick request says about the stick. `send_data`: the request was
/// a SendData; `aborted`: the session had to send SendDataAbort for it. `None`: nothing (the
/// link closed, the request could not be encoded).
pub fn signal(
    r: &Result<Exchange, SessionError>,
    send_data: bool,
    aborted: bool,
) -> Option<Signal> {
    match r {
        Ok(ex) => Some(match ex.response {
            Some(StickResponse::SendData { accepted: false })
            | Some(StickResponse::SendDataBridge { accepted: false }) => Signal::NotAccepted,
            _ if send_data && aborted => Signal::CallbackLost,
            _ if send_data => Signal::Accepted,
            _ => Signal::Answered,
        }),
        Err(SessionError::CallbackTimeout { .. }) => Some(Signal::CallbackLost),
        Err(SessionError::ResponseTimeout { .. })
        | Err(SessionError::Link(LinkError::NotAcknowledged { .. })) => Some(Signal::NoAnswer),
        Err(SessionError::Link(_) | SessionError::Encode(_) | SessionError::Stopped) => None,
    }
}

/// Whether systemd's watchdog may be fed after this ping (the rule in the module header).
pub fn feeds_watchdog(ping: &Result<(), DriverError>) -> bool {
    match ping {
        Ok(()) => true,
        Err(DriverError::Disconnected { reason }) => !reason.is_unresponsive(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::NotConnected;

    fn config() -> LadderConfig {
        LadderConfig {
            stuck_after: 3,
            unresponsive_after: 2,
            reopen_attempts: 2,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5),
        }
    }

    fn up() -> Ladder {
        let mut l = Ladder::new(config());
        assert_eq!(l.on_attempt(Attempt::Started), Action::None);
        l
    }

    fn reopen(secs: u64) -> Action {
        Action::Reopen {
            after: Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_jam_climbs_the_ladder_one_step_at_a_time() {
        let mut l = up();
        // Two refusals, then a lost callback: the third in a row resets the stick.
        assert_eq!(l.on_signal(Signal::NotAccepted), Action::None);
        assert_eq!(l.on_signal(Signal::NotAccepted), Action::None);
        assert_eq!(l.on_signal(Signal::CallbackLost), Action::StartAgain);
        assert_eq!(l.phase(), Phase::SoftReset);
        assert_eq!(l.soft_resets(), 1);
        // Signals while it is down change nothing.
        assert_eq!(l.on_signal(Signal::NotAccepted), Action::None);
        assert_eq!(l.on_attempt(Attempt::Started), Action::None);
        assert!(l.recovering());
        // Still stuck: reopen, with a doubling backoff.
        for _ in 0..2 {
            l.on_signal(Signal::NotAccepted);
        }
        assert_eq!(l.on_signal(Signal::NotAccepted), reopen(1));
        assert_eq!(l.phase(), Phase::Reopening { attempt: 1 });
        assert_eq!(l.on_attempt(Attempt::Started), Action::None);
        for _ in 0..2 {
            l.on_signal(Signal::NotAccepted);
        }
        assert_eq!(l.on_signal(Signal::NotAccepted), reopen(2));
        assert!(!l.exhausted());
        // Still jammed after the last reopen: the ladder is exhausted and goes on at the
        // longest backoff.
        assert_eq!(l.on_attempt(Attempt::Started), Action::None);
        for _ in 0..2 {
            l.on_signal(Signal::CallbackLost);
        }
        assert_eq!(l.on_signal(Signal::NotAccepted), reopen(5));
        assert!(l.exhausted());
        assert_eq!(l.reopens(), 3);
        assert_eq!(l.reopens_tried(), 2);
        // It starts, but that is not working yet (a jammed stick starts); a SendData that
        // gets through is: the ladder starts over.
        assert_eq!(l.on_attempt(Attempt::Started), Action::None);
        assert!(l.exhausted(), "started is not yet working");
        assert_eq!(l.on_signal(Signal::Accepted), Action::None);
        assert!(!l.exhausted() && !l.recovering());
        for _ in 0..2 {
            l.on_signal(Signal::NotAccepted);
        }
        assert_eq!(l.on_signal(Signal::NotAccepted), Action::StartAgain);
        assert_eq!(l.soft_resets(), 2);
    }

    #[test]
    fn only_consecutive_failures_count() {
        let mut l = up();
        for _ in 0..10 {
            assert_eq!(l.on_signal(Signal::NotAccepted), Action::None);
            assert_eq!(l.on_signal(Signal::CallbackLost), Action::None);
            assert_eq!(l.on_signal(Signal::Accepted), Action::None);
        }
        // Other requests answered do not hide a jam.
        assert_eq!(l.on_signal(Signal::NotAccepted), Action::None);
        assert_eq!(l.on_signal(Signal::Answered), Action::None);
        assert_eq!(l.on_signal(Signal::NotAccepted), Action::None);
        assert_eq!(l.on_signal(Signal::NotAccepted), Action::StartAgain);
    }

    #[test]
    fn a_silent_stick_is_reset_after_unresponsive_after_requests() {
        let mut l = up();
        assert_eq!(l.on_signal(Signal::NoAnswer), Action::None);
        assert_eq!(l.on_signal(Signal::Answered), Action::None);
        assert_eq!(l.on_signal(Signal::NoAnswer), Action::None);
        assert_eq!(l.on_signal(Signal::NoAnswer), Action::StartAgain);
        // The soft reset's startup gets no answer either: the port is reopened.
        assert_eq!(l.on_attempt(Attempt::StartupFailed), reopen(1));
    }

    #[test]
    fn a_stick_that_starts_again_after_failed_startups_is_no_longer_given_up() {
        let mut l = up();
        for _ in 0..2 {
            l.on_signal(Signal::NoAnswer);
        }
        for _ in 0..3 {
            l.on_attempt(Attempt::StartupFailed);
        }
        assert!(l.exhausted());
        l.on_attempt(Attempt::Started);
        assert!(!l.exhausted() && !l.recovering());
        // A jam is different: started is not working until a SendData is accepted.
        let mut l = up();
        for _ in 0..3 {
            l.on_signal(Signal::NotAccepted);
        }
        l.on_attempt(Attempt::Started);
        for _ in 0..3 {
            l.on_signal(Signal::NotAccepted);
        }
        l.on_attempt(Attempt::Started);
        assert!(l.recovering());
    }

    #[test]
    fn an_absent_stick_is_retried_with_backoff_and_never_unresponsive() {
        let mut l = Ladder::new(config());
        let mut waits = Vec::new();
        for _ in 0..5 {
            match l.on_attempt(Attempt::PortUnavailable) {
                Action::Reopen { after } => waits.push(after.as_secs()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        assert_eq!(l.phase(), Phase::Absent);
        assert!(!l.exhausted());
        assert_eq!(l.reopens(), 0, "not a ladder step");
        // Even an exhausted ladder is not unresponsive while the port is gone.
        let mut l = up();
        for _ in 0..3 {
            l.on_signal(Signal::NotAccepted);
        }
        for _ in 0..3 {
            l.on_attempt(Attempt::StartupFailed);
        }
        assert!(l.exhausted());
        l.on_attempt(Attempt::PortUnavailable);
        assert!(!l.exhausted());
    }

    #[test]
    fn a_lost_link_or_a_restart_is_not_a_step() {
        let mut l = up();
        assert_eq!(l.on_link_lost(), reopen(0));
        assert_eq!(l.phase(), Phase::LinkLost);
        assert_eq!(l.on_attempt(Attempt::Started), Action::None);
        assert_eq!(l.on_restarted(), reopen(0));
        assert_eq!(l.phase(), Phase::Restarting);
        assert_eq!(l.on_restarted(), Action::None, "once");
        l.on_attempt(Attempt::Started);
        assert!(!l.recovering());
        assert_eq!((l.soft_resets(), l.reopens()), (0, 0));
    }

    #[test]
    fn outcomes_become_signals() {
        use crate::serialapi::transmit::SendDataCallback;
        use crate::serialapi::{StickRequest, TransmitStatus};
        let res = |accepted| Exchange {
            response: Some(StickResponse::SendData { accepted }),
            callback: None,
        };
        let called_back = Exchange {
            response: Some(StickResponse::SendData { accepted: true }),
            callback: Some(StickRequest::SendDataCallback(SendDataCallback {
                callback_id: 1,
                transmit_status: TransmitStatus::Fail,
                tx_report: None,
            })),
        };
        assert_eq!(
            signal(&Ok(res(false)), true, false),
            Some(Signal::NotAccepted)
        );
        assert_eq!(
            signal(&Ok(called_back.clone()), true, false),
            Some(Signal::Accepted)
        );
        assert_eq!(
            signal(&Ok(called_back), true, true),
            Some(Signal::CallbackLost)
        );
        assert_eq!(
            signal(&Ok(Exchange::default()), false, false),
            Some(Signal::Answered)
        );
        let timeout = SessionError::CallbackTimeout {
            function: "SendData",
            callback_id: 1,
            waited: Duration::from_secs(30),
        };
        assert_eq!(
            signal(&Err(timeout), true, true),
            Some(Signal::CallbackLost)
        );
        let silent = SessionError::ResponseTimeout {
            function: "GetControllerId",
            waited: Duration::from_secs(10),
        };
        assert_eq!(signal(&Err(silent), false, false), Some(Signal::NoAnswer));
        let nak = SessionError::Link(LinkError::NotAcknowledged {
            sends: 4,
            last: crate::serial::link::Refusal::Nak,
        });
        assert_eq!(signal(&Err(nak), true, false), Some(Signal::NoAnswer));
        let closed = SessionError::Link(LinkError::Closed {
            reason: "eof".into(),
        });
        assert_eq!(signal(&Err(closed), true, false), None);
    }

    #[test]
    fn the_watchdog_is_fed_unless_a_connected_stick_fails_or_the_ladder_is_exhausted() {
        let down = |reason| Err(DriverError::not_connected(reason));
        let absent = NotConnected::Absent {
            source: std::sync::Arc::new(crate::serial::TransportError::DeviceNotFound {
                url: "/dev/ttyACM0".into(),
            }),
        };
        assert!(feeds_watchdog(&Ok(())));
        assert!(feeds_watchdog(&down(absent)));
        assert!(feeds_watchdog(&down(NotConnected::Connecting)));
        assert!(feeds_watchdog(&down(NotConnected::SoftReset)));
        assert!(feeds_watchdog(&down(NotConnected::Reopening {
            attempt: 1
        })));
        assert!(!feeds_watchdog(&down(NotConnected::Unresponsive {
            reopens: 3
        })));
        assert!(!feeds_watchdog(&Err(DriverError::PingTimeout {
            waited: Duration::from_secs(5)
        })));
        assert!(!feeds_watchdog(&Err(DriverError::Stopped)));
    }
}
