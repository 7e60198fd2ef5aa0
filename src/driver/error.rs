//! What can go wrong in the driver, and what a caller can do about it.
//!
//! Every error made from a lower one keeps it as its `source` (the serial session's, the
//! link's, the transport's), so nothing is flattened into a string on the way up, and
//! [`DriverError::class`] says what a caller can do about it: try again soon, try that node
//! later, wait for the stick, or give up. A stick that is not connected, for whatever reason
//! ([`NotConnected`]: connecting, unplugged, being recovered), is always
//! [`ErrorClass::NotConnected`].

use std::sync::Arc;
use std::time::Duration;

use crate::serial::link::LinkError;
use crate::serial::transport::TransportError;
use crate::serialapi::session::SessionError;
use crate::serialapi::NodeId;

/// Why the driver could not do what was asked. Device refusals (a Supervision FAIL) are not
/// errors: they come back as [`super::SetOutcome::Refused`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("node {node} did not acknowledge (asleep, out of range or gone); retry after {retry_after:?}")]
    NodeUnreachable { node: NodeId, retry_after: Duration },
    #[error("node {node} did not answer {command} within {waited:?}")]
    NoReport {
        node: NodeId,
        command: &'static str,
        waited: Duration,
    },
    #[error("the stick could not transmit to node {node}: {status}")]
    TransmitFailed { node: NodeId, status: String },
    #[error("the stick stayed busy")]
    StickBusy,
    /// The stick is not connected: nothing reaches any node until it is back.
    #[error("the stick is disconnected: {reason}")]
    Disconnected {
        #[source]
        reason: NotConnected,
    },
    /// A request to the stick failed in the serial session (no answer, link closed, …).
    #[error("{context}: {source}")]
    Session {
        context: &'static str,
        #[source]
        source: SessionError,
    },
    /// The stick (or the node, through it) answered something other than what was asked.
    #[error("{context}: unexpected answer {answer}")]
    UnexpectedAnswer {
        context: &'static str,
        answer: String,
    },
    /// An inclusion, exclusion or removal did not complete.
    #[error("{failure}")]
    Learn { failure: LearnFailure },
    /// The stick did not answer a ping in time.
    #[error("the stick did not answer a ping within {waited:?}")]
    PingTimeout { waited: Duration },
    #[error("node {node} has {depth} jobs waiting; try again later")]
    QueueFull { node: NodeId, depth: usize },
    #[error("no node {node} in the network")]
    UnknownNode { node: NodeId },
    #[error("{command} is not a Get this driver can pair with a report")]
    NotAGet { command: &'static str },
    #[error("node {node}: security: {reason}")]
    Security { node: NodeId, reason: String },
    /// The node must be reached securely (it advertises S0 or S2, or zwlock's inclusion
    /// asked for security) and holds no key this hub can use: a command that carries PINs
    /// or works the door was not sent. Retrying cannot help until the lock is included again.
    #[error("node {node} must be reached securely and cannot be: {command} not sent (secure inclusion failed: exclude and include again)")]
    SecurityRequired { node: NodeId, command: &'static str },
    #[error("the driver has stopped")]
    Stopped,
}

/// What a caller can do about a [`DriverError`]: the class the engine acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again soon: the stick was busy, a frame was lost, a queue was full.
    Transient,
    /// The node did not answer (asleep, out of range, gone): try that node again after this.
    Unreachable { retry_after: Duration },
    /// The stick is not connected (unplugged, reconnecting, recovering): nothing reaches any
    /// node until it is back. The API answers 503; codes show `hub_disconnected`.
    NotConnected,
    /// Retrying the same request cannot help (no such node, not a Get, the driver stopped).
    Permanent,
}

impl DriverError {
    /// What a caller can do about this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            DriverError::NodeUnreachable { retry_after, .. } => ErrorClass::Unreachable {
                retry_after: *retry_after,
            },
            DriverError::Disconnected { .. } => ErrorClass::NotConnected,
            DriverError::Session { source, .. } => session_class(source),
            DriverError::UnknownNode { .. }
            | DriverError::NotAGet { .. }
            | DriverError::SecurityRequired { .. }
            | DriverError::Stopped => ErrorClass::Permanent,
            DriverError::NoReport { .. }
            | DriverError::TransmitFailed { .. }
            | DriverError::StickBusy
            | DriverError::QueueFull { .. }
            // A node that could not open our frame resynchronises on the next one.
            | DriverError::Security { .. }
            | DriverError::UnexpectedAnswer { .. }
            | DriverError::Learn { .. }
            | DriverError::PingTimeout { .. } => ErrorClass::Transient,
        }
    }

    /// Whether trying again later can help.
    pub fn is_retryable(&self) -> bool {
        self.class() != ErrorClass::Permanent
    }

    /// Whether a wait ran out: no report, no answer from the stick, nothing joined learn mode.
    pub fn is_timeout(&self) -> bool {
        match self {
            DriverError::NoReport { .. } | DriverError::PingTimeout { .. } => true,
            DriverError::Learn { failure } => failure.is_timeout(),
            DriverError::Session { source, .. } => matches!(
                source,
                SessionError::ResponseTimeout { .. } | SessionError::CallbackTimeout { .. }
            ),
            _ => false,
        }
    }

    /// A request to the stick failed in the session; `context` names what was asked.
    pub fn session(context: &'static str, source: SessionError) -> DriverError {
        DriverError::Session { context, source }
    }

    /// The link to the stick failed; `context` names what was being sent.
    pub fn link(context: &'static str, source: LinkError) -> DriverError {
        DriverError::Session {
            context,
            source: SessionError::Link(source),
        }
    }

    /// Not connected, for `reason`.
    pub fn not_connected(reason: NotConnected) -> DriverError {
        DriverError::Disconnected { reason }
    }
}

fn session_class(e: &SessionError) -> ErrorClass {
    match e {
        SessionError::Link(LinkError::Closed { .. }) | SessionError::Stopped => {
            ErrorClass::NotConnected
        }
        SessionError::Link(LinkError::FrameTooLong { .. }) | SessionError::Encode(_) => {
            ErrorClass::Permanent
        }
        SessionError::Link(LinkError::NotAcknowledged { .. })
        | SessionError::ResponseTimeout { .. }
        | SessionError::CallbackTimeout { .. } => ErrorClass::Transient,
    }
}

/// Why the stick is not connected, and so where it is on its way back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotConnected {
    /// The port is being opened and the stick started (at start, or after it was lost).
    #[error("connecting to the stick")]
    Connecting,
    /// The serial link closed (unplugged, the TCP peer went away); reconnecting.
    #[error("the serial link closed: {reason}")]
    LinkLost { reason: String },
    /// The port cannot be opened (no such device, permission denied, nothing listening).
    #[error("the port cannot be opened: {source}")]
    Absent {
        #[source]
        source: Arc<TransportError>,
    },
    /// The stick restarted on its own; it is being started again.
    #[error("the stick restarted on its own")]
    Restarted,
    /// The stick kept refusing or losing requests: it is being soft-reset.
    #[error("the stick is jammed: recovering it with a soft reset")]
    SoftReset,
    /// Still stuck after the soft reset: the port was closed and is being reopened.
    #[error("the stick is still stuck after a soft reset: reopening its port (attempt {attempt})")]
    Reopening { attempt: u32 },
    /// Every step of the recovery ladder was tried and the stick still does not work. A
    /// restart of the service is the last thing left.
    #[error("the stick does not work after a soft reset and {reopens} reopens of its port")]
    Unresponsive { reopens: u32 },
}

impl NotConnected {
    /// Whether this is a stick that opens but does not work even after every recovery step:
    /// the only state in which restarting the service is what is left to try. A stick that is
    /// absent, connecting or being recovered is not (a restart would not bring it back sooner).
    pub fn is_unresponsive(&self) -> bool {
        matches!(self, NotConnected::Unresponsive { .. })
    }
}

/// Equal when the same thing is meant; transport errors compare by kind and message (their
/// I/O errors are not comparable).
impl PartialEq for NotConnected {
    fn eq(&self, other: &Self) -> bool {
        use NotConnected::*;
        match (self, other) {
            (Connecting, Connecting) | (Restarted, Restarted) | (SoftReset, SoftReset) => true,
            (LinkLost { reason: a }, LinkLost { reason: b }) => a == b,
            (Absent { source: a }, Absent { source: b }) => {
                Arc::ptr_eq(a, b) || a.to_string() == b.to_string()
            }
            (Reopening { attempt: a }, Reopening { attempt: b }) => a == b,
            (Unresponsive { reopens: a }, Unresponsive { reopens: b }) => a == b,
            _ => false,
        }
    }
}

impl Eq for NotConnected {}

/// Why an inclusion, exclusion or removal did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LearnFailure {
    #[error("an inclusion or exclusion is already running")]
    AlreadyRunning,
    #[error("no lock joined or left in time (was its button pressed?)")]
    NothingJoined,
    #[error("the stick did not finish the inclusion in time")]
    NotFinished,
    #[error("the stick reports the inclusion failed")]
    StickFailed,
    #[error("no protocol information for the new node")]
    NoProtocolInfo,
    #[error("the stick did not remove node {node}: it still answers, or the stick refused")]
    NotRemoved { node: NodeId },
}

impl LearnFailure {
    /// Whether learn mode ended because its time ran out.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            LearnFailure::NothingJoined | LearnFailure::NotFinished
        )
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn closed() -> SessionError {
        SessionError::Link(LinkError::Closed {
            reason: "unplugged".into(),
        })
    }

    #[test]
    fn session_errors_keep_their_source_and_class() {
        let cases = [
            (closed(), ErrorClass::NotConnected),
            (SessionError::Stopped, ErrorClass::NotConnected),
            (
                SessionError::ResponseTimeout {
                    function: "GetControllerId",
                    waited: Duration::from_secs(10),
                },
                ErrorClass::Transient,
            ),
            (
                SessionError::CallbackTimeout {
                    function: "SendData",
                    callback_id: 3,
                    waited: Duration::from_secs(30),
                },
                ErrorClass::Transient,
            ),
            (
                SessionError::Link(LinkError::NotAcknowledged {
                    sends: 4,
                    last: crate::serial::link::Refusal::Nak,
                }),
                ErrorClass::Transient,
            ),
            (
                SessionError::Link(LinkError::FrameTooLong { payload_len: 300 }),
                ErrorClass::Permanent,
            ),
        ];
        for (source, class) in cases {
            let e = DriverError::session("SendData", source.clone());
            assert_eq!(e.class(), class, "{e}");
            let inner = e.source().expect("a source");
            assert_eq!(inner.to_string(), source.to_string());
            assert!(e.to_string().starts_with("SendData: "), "{e}");
        }
    }

    #[test]
    fn every_not_connected_reason_is_not_connected() {
        let absent = NotConnected::Absent {
            source: Arc::new(TransportError::DeviceNotFound {
                url: "/dev/ttyACM0".into(),
            }),
        };
        for reason in [
            NotConnected::Connecting,
            NotConnected::LinkLost {
                reason: "eof".into(),
            },
            absent.clone(),
            NotConnected::Restarted,
            NotConnected::SoftReset,
            NotConnected::Reopening { attempt: 2 },
            NotConnected::Unresponsive { reopens: 3 },
        ] {
            let e = DriverError::not_connected(reason.clone());
            assert_eq!(e.class(), ErrorClass::NotConnected, "{e}");
            assert!(e.is_retryable());
            assert_eq!(
                reason.is_unresponsive(),
                e.to_string().contains("does not work")
            );
        }
        // The transport error stays reachable as the source of the source.
        let e = DriverError::not_connected(absent);
        let transport = e
            .source()
            .and_then(|s| s.source())
            .expect("transport error");
        assert!(
            transport.to_string().contains("no such device"),
            "{transport}"
        );
    }

    #[test]
    fn permanent_errors_are_not_retryable_and_timeouts_say_so() {
        for e in [
            DriverError::Stopped,
            DriverError::UnknownNode { node: NodeId(4) },
            DriverError::NotAGet { command: "Set" },
            DriverError::SecurityRequired {
                node: NodeId(4),
                command: "User Code Set",
            },
        ] {
            assert_eq!(e.class(), ErrorClass::Permanent);
            assert!(!e.is_retryable());
        }
        assert!(DriverError::Learn {
            failure: LearnFailure::NothingJoined
        }
        .is_timeout());
        assert!(!DriverError::Learn {
            failure: LearnFailure::StickFailed
        }
        .is_timeout());
        assert!(DriverError::session(
            "GetControllerId",
            SessionError::ResponseTimeout {
                function: "GetControllerId",
                waited: Duration::from_secs(1)
            }
        )
        .is_timeout());
        assert!(!DriverError::session("GetControllerId", closed()).is_timeout());
        assert!(!DriverError::StickBusy.is_timeout());
    }
}
