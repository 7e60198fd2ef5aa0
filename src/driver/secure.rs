//! The driver's security layer: commands to a secure node are sealed at its granted class
//! just before they go to the stick, and S2 frames from nodes are opened before dispatch.
//! The engine never sees any of it.
//!
//! S2 state (SPANs) lives in [`crate::security::s2::peer::S2`]; S0 needs a fresh nonce from
//! the receiver for every message, kept here with the nonces this side hands out. This adds
//! the node's class, the OS random source, and counters.

use std::collections::HashMap;
use std::time::Duration;

use rand_core::{OsRng, RngCore};

use crate::security::keys::NetworkKeys;
use crate::security::s0::{self, NonceTable, S0Keys};
use crate::security::s2::peer::{Incoming, KeySlot, NeedNonce, S2};
use crate::security::{SecurityClass, SecurityError};
use crate::serialapi::NodeId;

/// How a job's command is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protection {
    /// At the node's granted class (plain when it has none).
    Node,
    /// At this class (probing which class a node was granted).
    Class(SecurityClass),
    /// Plain, whatever the node (nonce reports, non-secure classes).
    Plain,
}

/// What goes to the stick for a command.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sealed {
    /// The bytes to send, plain or encapsulated.
    Send(Vec<u8>),
    /// No SPAN with the node yet: send this Nonce Get; the command waits for the report.
    NonceFirst(Vec<u8>),
}

/// What an S2 frame from a node turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Opened {
    Command {
        /// `None`: under an inclusion's temporary key.
        class: Option<SecurityClass>,
        command: Vec<u8>,
        /// Send this back too (the sender asked for a nonce along with its message, S0).
        reply: Option<Vec<u8>>,
    },
    /// Send this back to the node, plain (a Nonce Report).
    Reply(Vec<u8>),
    /// A Nonce Report from the node; `sos` when it could not decrypt what we sent.
    NonceReport { sos: bool },
    /// Nothing to do (a repeat).
    Nothing,
}

/// How long a nonce a node gave us stays usable (the receiver's lifetime is 3-20 s).
const S0_NONCE_USE_WITHIN: Duration = Duration::from_secs(3);

pub(super) struct Secure {
    keys: Option<NetworkKeys>,
    s2: Option<S2>,
    own: NodeId,
    s0_keys: Option<S0Keys>,
    /// Nonces we handed to nodes (one use each).
    s0_issued: NonceTable,
    /// The last nonce each node gave us, and when.
    s0_received: HashMap<NodeId, ([u8; 8], std::time::Instant)>,
    /// S2 frames from nodes that did not authenticate.
    pub auth_failures: u64,
}

fn now() -> std::time::Instant {
    // The tokio clock, so that paused test clocks apply.
    tokio::time::Instant::now().into_std()
}

fn nonce8() -> [u8; 8] {
    let mut out = [0u8; 8];
    OsRng.fill_bytes(&mut out);
    out
}

fn s0_nonce_report(nonce: &[u8; 8]) -> Vec<u8> {
    let mut r = vec![s0::CC, s0::NONCE_REPORT];
    r.extend_from_slice(nonce);
    r
}

fn entropy() -> [u8; 16] {
    let mut out = [0u8; 16];
    OsRng.fill_bytes(&mut out);
    out
}

impl Secure {
    pub fn new(keys: Option<NetworkKeys>) -> Secure {
        let s0_keys = keys
            .as_ref()
            .map(|k| S0Keys::derive(k.get(SecurityClass::S0Legacy)));
        Secure {
            keys,
            s2: None,
            own: NodeId(1),
            s0_keys,
            s0_issued: NonceTable::new(Duration::from_secs(10)),
            s0_received: HashMap::new(),
            auth_failures: 0,
        }
    }

    /// The S2 classes this controller holds keys for, highest first.
    pub fn s2_classes(&self) -> Vec<SecurityClass> {
        if self.keys.is_none() {
            return Vec::new();
        }
        SecurityClass::ALL
            .into_iter()
            .filter(|c| *c != SecurityClass::S0Legacy)
            .collect()
    }

    /// The stick is (re)connected: S2 state starts afresh for this controller and network.
    pub fn on_connected(&mut self, own: NodeId, home_id: u32) {
        self.own = own;
        self.s0_received.clear();
        self.s2 = self.keys.as_ref().map(|k| {
            let keys: Vec<(SecurityClass, [u8; 16])> = SecurityClass::ALL
                .iter()
                .map(|c| (*c, *k.get(*c)))
                .collect();
            S2::new(own.0, home_id, &keys)
        });
    }

    /// Seal `plain` for `node` at `class` (`None`: send it plain).
    pub fn seal(
        &mut self,
        node: NodeId,
        class: Option<SecurityClass>,
        plain: Vec<u8>,
    ) -> Result<Sealed, SecurityError> {
        let Some(class) = class else {
            return Ok(Sealed::Send(plain));
        };
        if class == SecurityClass::S0Legacy {
            return self.seal_s0(node, plain);
        }
        let s2 = self
            .s2
            .as_mut()
            .ok_or(SecurityError::Unsupported("no network keys loaded"))?;
        match s2.encapsulate(node.0, class, &plain, &mut entropy) {
            Ok(frame) => Ok(Sealed::Send(frame)),
            Err(NeedNonce(get)) => Ok(Sealed::NonceFirst(get)),
        }
    }

    fn seal_s0(&mut self, node: NodeId, plain: Vec<u8>) -> Result<Sealed, SecurityError> {
        let keys = self
            .s0_keys
            .clone()
            .ok_or(SecurityError::Unsupported("no network keys loaded"))?;
        self.seal_s0_with(&keys, node, plain)
    }

    /// Seal under the all-zero temporary key (S0 inclusion: the Network Key Set).
    pub fn seal_s0_temporary(
        &mut self,
        node: NodeId,
        plain: Vec<u8>,
    ) -> Result<Sealed, SecurityError> {
        self.seal_s0_with(&S0Keys::temporary(), node, plain)
    }

    /// The S0 network key, to hand to a node being included.
    pub fn s0_network_key(&self) -> Option<[u8; 16]> {
        self.keys.as_ref().map(|k| *k.get(SecurityClass::S0Legacy))
    }

    fn seal_s0_with(
        &mut self,
        keys: &S0Keys,
        node: NodeId,
        plain: Vec<u8>,
    ) -> Result<Sealed, SecurityError> {
        let (Ok(src), Ok(dst)) = (u8::try_from(self.own.0), u8::try_from(node.0)) else {
            return Err(SecurityError::Unsupported("S0 with 16-bit node ids"));
        };
        let fresh = self
            .s0_received
            .remove(&node)
            .filter(|(_, at)| now().duration_since(*at) < S0_NONCE_USE_WITHIN);
        match fresh {
            Some((receiver_nonce, _)) => Ok(Sealed::Send(s0::encapsulate(
                keys,
                &nonce8(),
                &receiver_nonce,
                src,
                dst,
                &plain,
                false,
            ))),
            None => Ok(Sealed::NonceFirst(vec![s0::CC, s0::NONCE_GET])),
        }
    }

    /// Open an S0 frame (`98 …`) from `node`.
    fn open_s0(&mut self, node: NodeId, frame: &[u8]) -> Opened {
        let (Some(keys), Ok(peer), Ok(own)) = (
            self.s0_keys.as_ref(),
            u8::try_from(node.0),
            u8::try_from(self.own.0),
        ) else {
            return Opened::Nothing;
        };
        match frame {
            [s0::CC, s0::NONCE_GET] => {
                let nonce = self.s0_issued.issue(peer, now(), nonce8);
                Opened::Reply(s0_nonce_report(&nonce))
            }
            [s0::CC, s0::NONCE_REPORT, nonce @ ..] if nonce.len() == 8 => {
                let n: [u8; 8] = nonce.try_into().expect("8 bytes");
                self.s0_received.insert(node, (n, now()));
                Opened::NonceReport { sos: false }
            }
            [s0::CC, s0::ENCAPSULATION | s0::ENCAPSULATION_NONCE_GET, ..] => {
                let opened = s0::parse(frame).and_then(|f| {
                    let ours = self.s0_issued.take(peer, f.receiver_nonce_id, now())?;
                    s0::decapsulate(keys, &f, &ours, peer, own)
                });
                match opened {
                    Ok((command, wants_nonce)) => {
                        let reply = wants_nonce
                            .then(|| s0_nonce_report(&self.s0_issued.issue(peer, now(), nonce8)));
                        Opened::Command {
                            class: Some(SecurityClass::S0Legacy),
                            command,
                            reply,
                        }
                    }
                    Err(e) => {
                        self.auth_failures += 1;
                        tracing::debug!(%node, error = %e, "S0 frame did not open: dropped");
                        Opened::Nothing
                    }
                }
            }
            _ => Opened::Nothing,
        }
    }

    /// One step of an S2 key exchange with `inc`'s node.
    pub fn bootstrap(
        &mut self,
        inc: &mut crate::security::s2::bootstrap::Including,
        frame: &[u8],
    ) -> crate::security::s2::bootstrap::Step {
        match self.s2.as_mut() {
            Some(s2) => inc.on_frame(s2, frame),
            None => crate::security::s2::bootstrap::Step::default(),
        }
    }

    /// A node left the network: forget its nonces and SPAN.
    pub fn forget(&mut self, node: NodeId) {
        if let Some(s2) = self.s2.as_mut() {
            s2.reset(node.0);
            s2.set_temporary(node.0, None);
        }
        self.s0_received.remove(&node);
    }

    /// Open a secure frame (`98 …` S0 or `9F …` S2) from `node`, trying `classes` for S2.
    pub fn open(&mut self, node: NodeId, frame: &[u8], classes: &[SecurityClass]) -> Opened {
        if frame.first() == Some(&s0::CC) {
            return self.open_s0(node, frame);
        }
        let Some(s2) = self.s2.as_mut() else {
            return Opened::Nothing;
        };
        let encapsulated = frame.get(1) == Some(&crate::security::s2::encap::ENCAPSULATION);
        let sos = frame.get(1) == Some(&crate::security::s2::peer::NONCE_REPORT)
            && frame.get(3).is_some_and(|f| f & 0x01 != 0);
        match s2.receive(node.0, frame, classes, &mut entropy) {
            Ok(Incoming::Command { slot, command }) => Opened::Command {
                class: match slot {
                    KeySlot::Class(c) => Some(c),
                    KeySlot::Temporary => None,
                },
                command,
                reply: None,
            },
            Ok(Incoming::Reply(reply)) => {
                if encapsulated {
                    self.auth_failures += 1;
                    tracing::debug!(%node, "S2 frame did not authenticate: dropped, nonce resynchronised");
                }
                Opened::Reply(reply)
            }
            Ok(Incoming::Synced) => Opened::NonceReport { sos },
            Ok(Incoming::Duplicate) => Opened::Nothing,
            Err(e) => {
                self.auth_failures += 1;
                tracing::debug!(%node, error = %e, "malformed S2 frame dropped");
                Opened::Nothing
            }
        }
    }
}
