//! A simulated lock that speaks S0: its secure classes work only inside S0 Message
//! Encapsulation; every message in either direction takes a fresh nonce from the receiver.
//! A lock made to be included gets its network key from the controller (Network Key Set
//! under the all-zero temporary key) and proves it with Network Key Verify under the new key.

use std::time::{Duration, Instant};

use crate::security::s0::{self, NonceTable, S0Keys};

use super::rng::SimRng;
use super::secure::FromController;

const CONTROLLER: u8 = 1;

/// Classes a secure lock answers in plain text.
pub(super) const PLAIN_CLASSES: [u8; 3] = [0x98, 0x5E, 0x86];

#[derive(Debug, Clone)]
pub struct S0Link {
    node: u8,
    keys: S0Keys,
    /// Still waiting for its network key (inclusion).
    joining: bool,
    /// Nonces the lock gave the controller.
    issued: std::sync::Arc<std::sync::Mutex<NonceTable>>,
    /// The controller's last nonce for us.
    controller_nonce: Option<[u8; 8]>,
    /// Commands for the controller waiting for its nonce.
    waiting: Vec<Vec<u8>>,
    /// Frames to send after the command being handled (a nonce the controller asked for).
    extra: Vec<Vec<u8>>,
    rng: SimRng,
    /// Frames from the controller that did not open.
    pub rejected: u64,
}

impl S0Link {
    /// A lock included with `key` (`None`: waiting to be included).
    pub fn new(node: u8, key: Option<[u8; 16]>, seed: u64) -> S0Link {
        S0Link {
            node,
            keys: key.as_ref().map_or_else(S0Keys::temporary, S0Keys::derive),
            joining: key.is_none(),
            issued: std::sync::Arc::new(std::sync::Mutex::new(NonceTable::new(
                Duration::from_secs(10),
            ))),
            controller_nonce: None,
            waiting: Vec::new(),
            extra: Vec::new(),
            rng: SimRng::new(seed ^ 0x5330),
            rejected: 0,
        }
    }

    pub fn is_joining(&self) -> bool {
        self.joining
    }

    /// Leaving the network: back to the temporary key.
    pub fn forget_network(&mut self) {
        *self = S0Link::new(self.node, None, self.rng.next_u64());
    }

    /// Nonce state is volatile: a reboot loses it.
    pub fn forget_nonces(&mut self) {
        self.controller_nonce = None;
        self.waiting.clear();
        self.issued = std::sync::Arc::new(std::sync::Mutex::new(NonceTable::new(
            Duration::from_secs(10),
        )));
    }

    fn nonce8(&mut self) -> [u8; 8] {
        self.rng.next_u64().to_le_bytes()
    }

    fn nonce_report(&mut self) -> Vec<u8> {
        let mut rng = self.rng.clone();
        let n = self.issued.lock().unwrap_or_else(|e| e.into_inner()).issue(
            CONTROLLER,
            Instant::now(),
            || rng.next_u64().to_le_bytes(),
        );
        self.rng = rng;
        let mut out = vec![s0::CC, s0::NONCE_REPORT];
        out.extend_from_slice(&n);
        out
    }

    /// Frames to send after handling the last command.
    pub fn take_extra(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.extra)
    }

    pub fn from_controller(&mut self, bytes: &[u8]) -> FromController {
        match bytes {
            [s0::CC, 0x04, ..] if self.joining => {
                FromController::Send(vec![vec![s0::CC, 0x05, 0x00]])
            }
            [s0::CC, s0::NONCE_GET] => FromController::Send(vec![self.nonce_report()]),
            [s0::CC, s0::NONCE_REPORT, nonce @ ..] if nonce.len() == 8 => {
                self.controller_nonce = nonce.try_into().ok();
                FromController::Send(self.flush())
            }
            [s0::CC, s0::ENCAPSULATION | s0::ENCAPSULATION_NONCE_GET, ..] => {
                let opened = s0::parse(bytes).and_then(|f| {
                    let ours = self.issued.lock().unwrap_or_else(|e| e.into_inner()).take(
                        CONTROLLER,
                        f.receiver_nonce_id,
                        Instant::now(),
                    )?;
                    s0::decapsulate(&self.keys, &f, &ours, CONTROLLER, self.node)
                });
                match opened {
                    Ok((cmd, wants_nonce)) => {
                        if wants_nonce {
                            let r = self.nonce_report();
                            self.extra.push(r);
                        }
                        match cmd.as_slice() {
                            // Network Key Set: the key it will use from now on.
                            [s0::CC, 0x06, key @ ..] if self.joining && key.len() == 16 => {
                                let key: [u8; 16] = key.try_into().expect("16 bytes");
                                self.keys = S0Keys::derive(&key);
                                self.joining = false;
                                let mut out = std::mem::take(&mut self.extra);
                                out.extend(self.to_controller(vec![vec![s0::CC, 0x07]]));
                                FromController::Send(out)
                            }
                            _ if self.joining => FromController::Ignore,
                            _ => FromController::Command(cmd),
                        }
                    }
                    Err(_) => {
                        self.rejected += 1;
                        FromController::Ignore
                    }
                }
            }
            [cc, ..] if PLAIN_CLASSES.contains(cc) && *cc != s0::CC => {
                FromController::Command(bytes.to_vec())
            }
            _ => FromController::Ignore,
        }
    }

    /// Encapsulate commands for the controller: with its nonce when there is one, otherwise a
    /// Nonce Get first (they wait).
    pub fn to_controller(&mut self, commands: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let asked = !self.waiting.is_empty();
        self.waiting.extend(commands);
        if self.controller_nonce.is_some() {
            return self.flush();
        }
        if asked || self.waiting.is_empty() {
            Vec::new()
        } else {
            vec![vec![s0::CC, s0::NONCE_GET]]
        }
    }

    /// Send the first waiting command with the controller's nonce (asking for the next one
    /// when more wait).
    fn flush(&mut self) -> Vec<Vec<u8>> {
        let Some(receiver) = self.controller_nonce.take() else {
            return Vec::new();
        };
        if self.waiting.is_empty() {
            self.controller_nonce = Some(receiver);
            return Vec::new();
        }
        let cmd = self.waiting.remove(0);
        let sender = self.nonce8();
        let more = !self.waiting.is_empty();
        vec![s0::encapsulate(
            &self.keys, &sender, &receiver, self.node, CONTROLLER, &cmd, more,
        )]
    }

    /// The Security Commands Supported Report of a lock supporting `classes` securely.
    pub fn commands_supported(classes: &[u8]) -> Vec<u8> {
        let mut out = vec![s0::CC, 0x03, 0x00];
        out.extend(classes.iter().filter(|c| !PLAIN_CLASSES.contains(c)));
        out
    }
}
