//! The driver's security layer: commands to a secure node are sealed at its granted class
//! just before they go to the stick, and S2 frames from nodes are opened before dispatch.
//! The engine never sees any of it.
//!
//! S2 state (SPANs) lives in [`crate::security::s2::peer::S2`]; this adds the node's class,
//! the OS random source, and counters. S0 is not wired yet.

use rand_core::{OsRng, RngCore};

use crate::security::keys::NetworkKeys;
use crate::security::s2::peer::{Incoming, NeedNonce, S2};
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
        class: SecurityClass,
        command: Vec<u8>,
    },
    /// Send this back to the node, plain (a Nonce Report).
    Reply(Vec<u8>),
    /// A Nonce Report from the node; `sos` when it could not decrypt what we sent.
    NonceReport { sos: bool },
    /// Nothing to do (a repeat).
    Nothing,
}

pub(super) struct Secure {
    keys: Option<NetworkKeys>,
    s2: Option<S2>,
    /// S2 frames from nodes that did not authenticate.
    pub auth_failures: u64,
}

fn entropy() -> [u8; 16] {
    let mut out = [0u8; 16];
    OsRng.fill_bytes(&mut out);
    out
}

impl Secure {
    pub fn new(keys: Option<NetworkKeys>) -> Secure {
        Secure {
            keys,
            s2: None,
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
            return Err(SecurityError::Unsupported("S0 transport in the driver"));
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

    /// Open an S2 frame (`9F …`) from `node`, trying `classes` (highest first).
    pub fn open(&mut self, node: NodeId, frame: &[u8], classes: &[SecurityClass]) -> Opened {
        let Some(s2) = self.s2.as_mut() else {
            return Opened::Nothing;
        };
        let encapsulated = frame.get(1) == Some(&crate::security::s2::encap::ENCAPSULATION);
        let sos = frame.get(1) == Some(&crate::security::s2::peer::NONCE_REPORT)
            && frame.get(3).is_some_and(|f| f & 0x01 != 0);
        match s2.receive(node.0, frame, classes, &mut entropy) {
            Ok(Incoming::Command { class, command }) => Opened::Command { class, command },
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
