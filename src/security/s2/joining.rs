//! S2 key exchange, the joining node's side: what a simulated lock runs when it is included.
//! See [`super::bootstrap`] for the exchange itself.

use x25519_dalek::{PublicKey, StaticSecret};

use super::bootstrap::{class_of, fail, BootstrapError, Outbox, Step, CURVE_25519, SCHEME_1};
use super::ckdf;
use super::peer::{Incoming, KeySlot, S2};
use crate::cc::{Command, Security2Command as K};
use crate::security::SecurityClass;

impl std::fmt::Debug for Joining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joining")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
/// The joining node's side (what a simulated lock runs).
pub struct Joining {
    controller: u16,
    requested: u8,
    secret: StaticSecret,
    public: [u8; 32],
    granted: u8,
    state: JoinState,
    outbox: Outbox,
    /// Keys received so far.
    pub received: Vec<(SecurityClass, [u8; 16])>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinState {
    KexGet,
    KexSet,
    PublicKey,
    ReportEcho,
    KeyReport(u8),
    TransferEnd(u8),
    Ended,
}

impl Joining {
    /// A node that will request `requested` keys, with its own key pair from `secret`.
    pub fn new(controller: u16, requested: u8, secret: [u8; 32]) -> Joining {
        let secret = StaticSecret::from(secret);
        let public = *PublicKey::from(&secret).as_bytes();
        Joining {
            controller,
            requested,
            secret,
            public,
            granted: 0,
            state: JoinState::KexGet,
            outbox: Outbox::default(),
            received: Vec::new(),
        }
    }

    /// The 5-digit PIN printed on the node: the first two bytes of its DSK.
    pub fn pin(&self) -> u16 {
        u16::from_be_bytes([self.public[0], self.public[1]])
    }

    fn next_key(&self, after: u8) -> Option<u8> {
        [0x01u8, 0x02, 0x04]
            .into_iter()
            .find(|b| *b > after && self.granted & b != 0)
    }

    pub fn on_frame(
        &mut self,
        s2: &mut S2,
        frame: &[u8],
        random: &mut dyn FnMut() -> [u8; 16],
    ) -> Step {
        let ctl = self.controller;
        match frame {
            [0x9F, 0x01, ..] | [0x9F, 0x02, ..] => match s2.receive_with(ctl, frame, &[], random) {
                Ok(Incoming::Reply(r)) => Step::send(vec![r]),
                Ok(Incoming::Synced) => Step::send(self.outbox.flush(s2, ctl, random)),
                _ => Step::default(),
            },
            [0x9F, 0x03, ..] => match s2.receive_with(ctl, frame, &[KeySlot::Temporary], random) {
                Ok(Incoming::Command { command, .. }) => match Command::parse(&command) {
                    Ok(Command::Security2(k)) => self.on_secure(s2, k, random),
                    _ => Step::default(),
                },
                Ok(Incoming::Reply(r)) => Step::send(vec![r]),
                _ => Step::default(),
            },
            _ => match Command::parse(frame) {
                Ok(Command::Security2(k)) => self.on_plain(s2, k, random),
                _ => Step::default(),
            },
        }
    }

    fn on_plain(&mut self, s2: &mut S2, k: K, random: &mut dyn FnMut() -> [u8; 16]) -> Step {
        match (self.state, k) {
            (_, K::KexFail { fail_type }) => {
                self.state = JoinState::Ended;
                Step::fail(BootstrapError::KexFail(fail_type), None)
            }
            (JoinState::KexGet, K::KexGet) => {
                self.state = JoinState::KexSet;
                Step::send(vec![Command::Security2(K::KexReport {
                    request_csa: false,
                    echo: false,
                    supported_schemes: SCHEME_1,
                    supported_ecdh_profiles: CURVE_25519,
                    requested_keys: self.requested,
                })
                .encode()])
            }
            (
                JoinState::KexSet,
                K::KexSet {
                    echo: false,
                    granted_keys,
                    ..
                },
            ) => {
                self.granted = granted_keys;
                self.state = JoinState::PublicKey;
                let mut shown = self.public;
                if granted_keys & 0x06 != 0 {
                    shown[..2].copy_from_slice(&[0, 0]);
                }
                Step::send(vec![Command::Security2(K::PublicKeyReport {
                    including_node: false,
                    public_key: shown,
                })
                .encode()])
            }
            (
                JoinState::PublicKey,
                K::PublicKeyReport {
                    including_node: true,
                    public_key,
                },
            ) => {
                let shared = self.secret.diffie_hellman(&PublicKey::from(public_key));
                let prk = ckdf::temp_prk(shared.as_bytes(), &public_key, &self.public);
                s2.set_temporary(self.controller, Some(ckdf::temp_keys(&prk)));
                self.state = JoinState::ReportEcho;
                let echo = Command::Security2(K::KexSet {
                    permit_csa: false,
                    echo: true,
                    selected_scheme: SCHEME_1,
                    selected_ecdh_profile: CURVE_25519,
                    granted_keys: self.granted,
                })
                .encode();
                Step::send(
                    self.outbox
                        .send(s2, self.controller, KeySlot::Temporary, echo, random),
                )
            }
            _ => Step::default(),
        }
    }

    fn on_secure(&mut self, s2: &mut S2, k: K, random: &mut dyn FnMut() -> [u8; 16]) -> Step {
        let ctl = self.controller;
        let temp = |c: K| Command::Security2(c).encode();
        match (self.state, k) {
            (_, K::KexFail { fail_type }) => {
                self.state = JoinState::Ended;
                Step::fail(BootstrapError::KexFail(fail_type), None)
            }
            (
                JoinState::ReportEcho,
                K::KexReport {
                    echo: true,
                    requested_keys,
                    ..
                },
            ) => {
                if requested_keys != self.requested {
                    self.state = JoinState::Ended;
                    return Step::fail(BootstrapError::EchoMismatch, Some(fail::AUTH));
                }
                match self.next_key(0) {
                    Some(bit) => {
                        self.state = JoinState::KeyReport(bit);
                        Step::send(self.outbox.send(
                            s2,
                            ctl,
                            KeySlot::Temporary,
                            temp(K::NetworkKeyGet { requested_key: bit }),
                            random,
                        ))
                    }
                    None => self.finish(s2, random),
                }
            }
            (
                JoinState::KeyReport(bit),
                K::NetworkKeyReport {
                    granted_key,
                    network_key,
                },
            ) if granted_key == bit => {
                let (Some(class), Ok(key)) = (
                    class_of(bit),
                    <[u8; 16]>::try_from(network_key.0.as_slice()),
                ) else {
                    self.state = JoinState::Ended;
                    return Step::fail(
                        BootstrapError::Unexpected("malformed key report"),
                        Some(fail::KEY_VERIFY),
                    );
                };
                s2.set_class_key(class, &key);
                self.received.push((class, key));
                self.state = JoinState::TransferEnd(bit);
                Step::send(self.outbox.send(
                    s2,
                    ctl,
                    KeySlot::Class(class),
                    temp(K::NetworkKeyVerify),
                    random,
                ))
            }
            (
                JoinState::TransferEnd(bit),
                K::TransferEnd {
                    key_verified: true, ..
                },
            ) => match self.next_key(bit) {
                Some(next) => {
                    self.state = JoinState::KeyReport(next);
                    Step::send(self.outbox.send(
                        s2,
                        ctl,
                        KeySlot::Temporary,
                        temp(K::NetworkKeyGet {
                            requested_key: next,
                        }),
                        random,
                    ))
                }
                None => self.finish(s2, random),
            },
            _ => Step::default(),
        }
    }

    fn finish(&mut self, s2: &mut S2, random: &mut dyn FnMut() -> [u8; 16]) -> Step {
        self.state = JoinState::Ended;
        let end = Command::Security2(K::TransferEnd {
            key_verified: false,
            key_request_complete: true,
        })
        .encode();
        Step {
            send: self
                .outbox
                .send(s2, self.controller, KeySlot::Temporary, end, random),
            outcome: Some(Ok(self.granted)),
        }
    }

    /// Key exchange over (either way) and nothing left to send.
    pub fn is_finished(&self) -> bool {
        self.state == JoinState::Ended && self.outbox.is_empty()
    }
}
