//! S2 bootstrapping (KEX): how a node that just joined gets its network keys, from both ends.
//! Pure state machines over command bytes, each driving an [`S2`] for nonces and encryption;
//! the driver runs [`Including`], a simulated lock runs [`Joining`].
//!
//! KEX Get → KEX Report (requested keys) → KEX Set (granted) → both Public Key Reports →
//! both derive temporary keys (X25519, CKDF) → KEX Set echo and KEX Report echo under the
//! temporary key → per granted key: Network Key Get, Network Key Report, Network Key Verify
//! (under the new key), Transfer End → the node's final Transfer End. For Authenticated and
//! Access Control, the node's public key travels with its first two bytes zeroed: the user
//! types them (the 5-digit PIN printed on the lock, the start of its DSK).

use rand_core::{OsRng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};

use super::ckdf;
pub use super::joining::Joining;
use super::peer::{Incoming, KeySlot, NeedNonce, S2};
use crate::cc::{Command, Security2Command as K};
use crate::security::keys::NetworkKeys;
use crate::security::SecurityClass;

/// KEX scheme 1 and the Curve25519 ECDH profile: the only ones defined.
pub(super) const SCHEME_1: u8 = 0x02;
pub(super) const CURVE_25519: u8 = 0x01;
/// The S2 keys zwlock grants (S0 through S2 bootstrapping is not offered).
const GRANTABLE: u8 = 0x07;

/// KEX Fail types.
pub mod fail {
    pub const KEX_KEY: u8 = 0x01;
    pub const KEX_SCHEME: u8 = 0x02;
    pub const KEX_CURVES: u8 = 0x03;
    pub const DECRYPT: u8 = 0x05;
    pub const CANCEL: u8 = 0x06;
    pub const AUTH: u8 = 0x07;
    pub const KEY_GET: u8 = 0x08;
    pub const KEY_VERIFY: u8 = 0x09;
}

/// Why bootstrapping failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    #[error("wrong PIN: the lock's messages do not decrypt with the key it gives (check the 5-digit PIN on the lock)")]
    WrongPin,
    #[error(
        "the lock asks for Authenticated or Access Control security: its 5-digit PIN is needed"
    )]
    PinRequired,
    #[error("the lock requested only {requested} but {required} was required")]
    NotRequested {
        requested: String,
        required: &'static str,
    },
    #[error("the lock does not support KEX scheme 1 with Curve25519")]
    Unsupported,
    #[error("the lock ended key exchange: KEX Fail {0:#04x}")]
    KexFail(u8),
    #[error("the lock's echo does not match what was agreed")]
    EchoMismatch,
    #[error("unexpected {0} during key exchange")]
    Unexpected(&'static str),
}

/// What one step produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Frames to send to the peer, in order.
    pub send: Vec<Vec<u8>>,
    /// `Some` once bootstrapping ended: the granted key bits, or why it failed.
    pub outcome: Option<Result<u8, BootstrapError>>,
}

impl Step {
    pub(super) fn send(frames: Vec<Vec<u8>>) -> Step {
        Step {
            send: frames,
            outcome: None,
        }
    }

    pub(super) fn fail(e: BootstrapError, kex_fail: Option<u8>) -> Step {
        Step {
            send: kex_fail
                .map(|t| Command::Security2(K::KexFail { fail_type: t }).encode())
                .into_iter()
                .collect(),
            outcome: Some(Err(e)),
        }
    }
}

fn key_names(mask: u8) -> String {
    let names: Vec<&str> = SecurityClass::ALL
        .iter()
        .filter(|c| mask & c.key_bit() != 0)
        .map(|c| c.zwave_js_name())
        .collect();
    if names.is_empty() {
        "no keys".into()
    } else {
        names.join(", ")
    }
}

pub(super) fn class_of(bit: u8) -> Option<SecurityClass> {
    SecurityClass::ALL.into_iter().find(|c| c.key_bit() == bit)
}

fn entropy() -> [u8; 16] {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b
}

/// Sending through an S2 that may need a nonce first; what waits is kept per key slot.
#[derive(Debug, Default)]
pub(super) struct Outbox(Vec<(KeySlot, Vec<u8>)>);

impl Outbox {
    pub(super) fn send(
        &mut self,
        s2: &mut S2,
        peer: u16,
        slot: KeySlot,
        cmd: Vec<u8>,
        random: &mut dyn FnMut() -> [u8; 16],
    ) -> Vec<Vec<u8>> {
        if !self.0.is_empty() {
            self.0.push((slot, cmd));
            return Vec::new();
        }
        match s2.encapsulate(peer, slot, &cmd, random) {
            Ok(f) => vec![f],
            Err(NeedNonce(get)) => {
                self.0.push((slot, cmd));
                vec![get]
            }
        }
    }

    /// A Nonce Report arrived: send what waited (until one needs another nonce).
    /// Nothing waits for a nonce.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn flush(
        &mut self,
        s2: &mut S2,
        peer: u16,
        random: &mut dyn FnMut() -> [u8; 16],
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let waiting = std::mem::take(&mut self.0);
        let mut rest = waiting.into_iter();
        for (slot, cmd) in rest.by_ref() {
            match s2.encapsulate(peer, slot, &cmd, random) {
                Ok(f) => out.push(f),
                Err(NeedNonce(get)) => {
                    self.0.push((slot, cmd));
                    out.push(get);
                    break;
                }
            }
        }
        self.0.extend(rest);
        out
    }
}

/// The controller's side.
pub struct Including {
    node: u16,
    keys: NetworkKeys,
    pin: Option<u16>,
    required: Option<SecurityClass>,
    secret: StaticSecret,
    public: [u8; 32],
    state: IncState,
    requested: u8,
    granted: u8,
    outbox: Outbox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IncState {
    KexReport,
    PublicKey,
    Echo,
    KeyGet,
    Verify(u8),
    Ended,
}

impl std::fmt::Debug for Including {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Including")
            .field("node", &self.node)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Including {
    /// Bootstrap `node` with our `keys`; `pin`: the 5 digits printed on the lock (needed for
    /// Authenticated and Access Control); `required`: a class the lock must ask for.
    pub fn new(
        node: u16,
        keys: NetworkKeys,
        pin: Option<u16>,
        required: Option<SecurityClass>,
    ) -> Including {
        let secret = StaticSecret::random_from_rng(OsRng);
        let public = *PublicKey::from(&secret).as_bytes();
        Including {
            node,
            keys,
            pin,
            required,
            secret,
            public,
            state: IncState::KexReport,
            requested: 0,
            granted: 0,
            outbox: Outbox::default(),
        }
    }

    /// The first frame: KEX Get.
    pub fn start(&self) -> Vec<u8> {
        Command::Security2(K::KexGet).encode()
    }

    fn send_temp(&mut self, s2: &mut S2, cmd: K) -> Vec<Vec<u8>> {
        self.outbox.send(
            s2,
            self.node,
            KeySlot::Temporary,
            Command::Security2(cmd).encode(),
            &mut entropy,
        )
    }

    /// A frame from the node being included.
    pub fn on_frame(&mut self, s2: &mut S2, frame: &[u8]) -> Step {
        if self.state == IncState::Ended {
            return Step::default();
        }
        let node = self.node;
        match frame {
            [0x9F, 0x01, ..] | [0x9F, 0x02, ..] => {
                match s2.receive_with(node, frame, &[], &mut entropy) {
                    Ok(Incoming::Reply(r)) => Step::send(vec![r]),
                    Ok(Incoming::Synced) => Step::send(self.outbox.flush(s2, node, &mut entropy)),
                    _ => Step::default(),
                }
            }
            [0x9F, 0x03, ..] => {
                let slots = match self.state {
                    IncState::Verify(bit) => class_of(bit)
                        .map(KeySlot::Class)
                        .into_iter()
                        .collect::<Vec<_>>(),
                    _ => vec![KeySlot::Temporary],
                };
                match s2.receive_with(node, frame, &slots, &mut entropy) {
                    Ok(Incoming::Command { command, .. }) => match Command::parse(&command) {
                        Ok(Command::Security2(k)) => self.on_secure(s2, k),
                        _ => Step::default(),
                    },
                    Ok(Incoming::Reply(r)) if self.state == IncState::Echo => {
                        // The first encrypted message does not open: the shared secret differs,
                        // i.e. the PIN typed is not the lock's.
                        self.state = IncState::Ended;
                        s2.set_temporary(node, None);
                        let mut step = Step::fail(BootstrapError::WrongPin, Some(fail::DECRYPT));
                        step.send.insert(0, r);
                        step
                    }
                    Ok(Incoming::Reply(r)) => Step::send(vec![r]),
                    _ => Step::default(),
                }
            }
            _ => match Command::parse(frame) {
                Ok(Command::Security2(k)) => self.on_plain(s2, k),
                _ => Step::default(),
            },
        }
    }

    fn end(&mut self, s2: &mut S2, step: Step) -> Step {
        self.state = IncState::Ended;
        s2.set_temporary(self.node, None);
        step
    }

    fn on_plain(&mut self, s2: &mut S2, k: K) -> Step {
        match (self.state, k) {
            (_, K::KexFail { fail_type }) => {
                self.end(s2, Step::fail(BootstrapError::KexFail(fail_type), None))
            }
            (
                IncState::KexReport,
                K::KexReport {
                    echo: false,
                    supported_schemes,
                    supported_ecdh_profiles,
                    requested_keys,
                    ..
                },
            ) => {
                if supported_schemes & SCHEME_1 == 0 {
                    return self.end(
                        s2,
                        Step::fail(BootstrapError::Unsupported, Some(fail::KEX_SCHEME)),
                    );
                }
                if supported_ecdh_profiles & CURVE_25519 == 0 {
                    return self.end(
                        s2,
                        Step::fail(BootstrapError::Unsupported, Some(fail::KEX_CURVES)),
                    );
                }
                if let Some(r) = self.required.filter(|r| requested_keys & r.key_bit() == 0) {
                    let e = BootstrapError::NotRequested {
                        requested: key_names(requested_keys),
                        required: r.zwave_js_name(),
                    };
                    return self.end(s2, Step::fail(e, Some(fail::KEX_KEY)));
                }
                self.requested = requested_keys;
                self.granted = requested_keys & GRANTABLE;
                if self.granted & 0x06 != 0 && self.pin.is_none() {
                    return self.end(
                        s2,
                        Step::fail(BootstrapError::PinRequired, Some(fail::CANCEL)),
                    );
                }
                self.state = IncState::PublicKey;
                Step::send(vec![Command::Security2(K::KexSet {
                    permit_csa: false,
                    echo: false,
                    selected_scheme: SCHEME_1,
                    selected_ecdh_profile: CURVE_25519,
                    granted_keys: self.granted,
                })
                .encode()])
            }
            (
                IncState::PublicKey,
                K::PublicKeyReport {
                    including_node: false,
                    mut public_key,
                },
            ) => {
                if self.granted & 0x06 != 0 {
                    // The PIN is the part of the DSK the lock leaves out.
                    public_key[..2].copy_from_slice(&self.pin.unwrap_or_default().to_be_bytes());
                }
                let shared = self.secret.diffie_hellman(&PublicKey::from(public_key));
                let prk = ckdf::temp_prk(shared.as_bytes(), &self.public, &public_key);
                s2.set_temporary(self.node, Some(ckdf::temp_keys(&prk)));
                self.state = IncState::Echo;
                Step::send(vec![Command::Security2(K::PublicKeyReport {
                    including_node: true,
                    public_key: self.public,
                })
                .encode()])
            }
            _ => self.end(
                s2,
                Step::fail(
                    BootstrapError::Unexpected("plain S2 command"),
                    Some(fail::CANCEL),
                ),
            ),
        }
    }

    fn on_secure(&mut self, s2: &mut S2, k: K) -> Step {
        match (self.state, k) {
            (_, K::KexFail { fail_type }) => {
                self.end(s2, Step::fail(BootstrapError::KexFail(fail_type), None))
            }
            (
                IncState::Echo,
                K::KexSet {
                    echo: true,
                    selected_scheme,
                    selected_ecdh_profile,
                    granted_keys,
                    ..
                },
            ) => {
                if selected_scheme != SCHEME_1
                    || selected_ecdh_profile != CURVE_25519
                    || granted_keys != self.granted
                {
                    return self.end(
                        s2,
                        Step::fail(BootstrapError::EchoMismatch, Some(fail::AUTH)),
                    );
                }
                self.state = IncState::KeyGet;
                let requested = self.requested;
                Step::send(self.send_temp(
                    s2,
                    K::KexReport {
                        request_csa: false,
                        echo: true,
                        supported_schemes: SCHEME_1,
                        supported_ecdh_profiles: CURVE_25519,
                        requested_keys: requested,
                    },
                ))
            }
            (IncState::KeyGet, K::NetworkKeyGet { requested_key }) => {
                let Some(class) =
                    class_of(requested_key).filter(|_| self.granted & requested_key != 0)
                else {
                    return self.end(
                        s2,
                        Step::fail(
                            BootstrapError::Unexpected("request for a key not granted"),
                            Some(fail::KEY_GET),
                        ),
                    );
                };
                self.state = IncState::Verify(requested_key);
                let key = *self.keys.get(class);
                Step::send(self.send_temp(
                    s2,
                    K::NetworkKeyReport {
                        granted_key: requested_key,
                        network_key: crate::cc::RawCommand(key.to_vec()),
                    },
                ))
            }
            (IncState::Verify(_), K::NetworkKeyVerify) => {
                self.state = IncState::KeyGet;
                Step::send(self.send_temp(
                    s2,
                    K::TransferEnd {
                        key_verified: true,
                        key_request_complete: false,
                    },
                ))
            }
            (
                IncState::KeyGet,
                K::TransferEnd {
                    key_request_complete: true,
                    ..
                },
            ) => {
                let granted = self.granted;
                self.end(
                    s2,
                    Step {
                        send: Vec::new(),
                        outcome: Some(Ok(granted)),
                    },
                )
            }
            _ => self.end(
                s2,
                Step::fail(
                    BootstrapError::Unexpected("secure S2 command"),
                    Some(fail::CANCEL),
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: u32 = 0xC0FFEE01;
    const LOCK: u16 = 5;

    fn keys() -> NetworkKeys {
        NetworkKeys::import(
            "S2_AccessControl = 11111111111111111111111111111111\nS2_Authenticated = 22222222222222222222222222222222\nS2_Unauthenticated = 33333333333333333333333333333333\nS0_Legacy = 44444444444444444444444444444444",
        )
        .unwrap()
        .0
    }

    struct Run {
        ctl: S2,
        lock: S2,
        inc: Including,
        join: Joining,
    }

    fn run(
        requested: u8,
        pin: impl FnOnce(u16) -> Option<u16>,
        required: Option<SecurityClass>,
    ) -> (Run, Result<u8, BootstrapError>) {
        let k = keys();
        let ctl_keys: Vec<(SecurityClass, [u8; 16])> = SecurityClass::ALL
            .iter()
            .map(|c| (*c, *k.get(*c)))
            .collect();
        let join = Joining::new(1, requested, [0x42; 32]);
        let pin = pin(join.pin());
        let mut r = Run {
            ctl: S2::new(1, HOME, &ctl_keys),
            lock: S2::new(LOCK, HOME, &[]),
            inc: Including::new(LOCK, k, pin, required),
            join,
        };
        let mut n = 0u8;
        let mut random = move || {
            n = n.wrapping_add(1);
            [n; 16]
        };
        let mut to_lock = vec![r.inc.start()];
        for _ in 0..100 {
            let mut to_ctl = Vec::new();
            for f in to_lock.drain(..) {
                let s = r.join.on_frame(&mut r.lock, &f, &mut random);
                to_ctl.extend(s.send);
            }
            for f in to_ctl {
                let s = r.inc.on_frame(&mut r.ctl, &f);
                to_lock.extend(s.send);
                if let Some(outcome) = s.outcome {
                    // Deliver what the controller still sends (a KEX Fail), then stop.
                    for f in to_lock.drain(..) {
                        r.join.on_frame(&mut r.lock, &f, &mut random);
                    }
                    return (r, outcome);
                }
            }
            if to_lock.is_empty() {
                break;
            }
        }
        panic!("bootstrapping never ended")
    }

    #[test]
    fn access_control_is_granted_and_works_afterwards() {
        let (mut r, outcome) = run(0x04 | 0x01, Some, Some(SecurityClass::S2AccessControl));
        assert_eq!(outcome, Ok(0x05));
        assert_eq!(r.join.received.len(), 2);
        assert!(r
            .join
            .received
            .contains(&(SecurityClass::S2AccessControl, [0x11; 16])));
        // The lock now holds the network key: a command under Access Control opens.
        let mut rnd = || [9u8; 16];
        let get = match r.ctl.encapsulate(
            LOCK,
            SecurityClass::S2AccessControl,
            &[0x63, 0x02, 0x01],
            &mut rnd,
        ) {
            Ok(f) => f,
            Err(NeedNonce(g)) => {
                let Incoming::Reply(rep) = r.lock.receive(1, &g, &[], &mut rnd).unwrap() else {
                    panic!()
                };
                r.ctl.receive(LOCK, &rep, &[], &mut rnd).unwrap();
                r.ctl
                    .encapsulate(
                        LOCK,
                        SecurityClass::S2AccessControl,
                        &[0x63, 0x02, 0x01],
                        &mut rnd,
                    )
                    .unwrap()
            }
        };
        let got = r
            .lock
            .receive(1, &get, &[SecurityClass::S2AccessControl], &mut rnd)
            .unwrap();
        assert_eq!(
            got.command(),
            Some((Some(SecurityClass::S2AccessControl), vec![0x63, 0x02, 0x01]))
        );
    }

    #[test]
    fn a_wrong_pin_is_named_and_no_key_leaves_the_controller() {
        let (r, outcome) = run(0x04, |p| Some(p.wrapping_add(1)), None);
        assert_eq!(outcome, Err(BootstrapError::WrongPin));
        assert!(r.join.received.is_empty());
    }

    #[test]
    fn a_pin_is_needed_for_access_control() {
        let (_, outcome) = run(0x04, |_| None, None);
        assert_eq!(outcome, Err(BootstrapError::PinRequired));
    }

    #[test]
    fn unauthenticated_needs_no_pin() {
        let (r, outcome) = run(0x01, |_| None, None);
        assert_eq!(outcome, Ok(0x01));
        assert_eq!(
            r.join.received,
            vec![(SecurityClass::S2Unauthenticated, [0x33; 16])]
        );
    }

    #[test]
    fn a_lock_that_asks_for_less_than_required_is_refused() {
        let (r, outcome) = run(0x01, |_| None, Some(SecurityClass::S2AccessControl));
        assert!(
            matches!(outcome, Err(BootstrapError::NotRequested { .. })),
            "{outcome:?}"
        );
        assert!(outcome
            .unwrap_err()
            .to_string()
            .contains("S2_AccessControl"));
        assert!(r.join.received.is_empty());
    }
}
