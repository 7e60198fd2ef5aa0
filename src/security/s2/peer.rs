//! S2 state between this node and its peers: the SPAN (the shared nonce generator) each
//! pair keeps in lockstep, sequence numbers, and the Nonce Get / Nonce Report exchange that
//! (re)synchronises a SPAN. Pure: no I/O, randomness passed in; the driver and the simulated
//! locks both use it.
//!
//! * To send without a SPAN, ask for a nonce (`Nonce Get`); the peer answers `Nonce Report`
//!   with SOS and its entropy input; the next message carries our entropy input in a SPAN
//!   extension and both sides derive the same generator.
//! * A message that fails to decrypt gets a `Nonce Report` with SOS and a fresh entropy input
//!   back (resynchronisation); a repeated sequence number is dropped.
//! * A SPAN belongs to the key it was made with: sending with another key (a network key
//!   class, or an inclusion's temporary key) starts a new one.

use std::collections::HashMap;

use super::ckdf::{self, ClassKeys};
use super::drbg::CtrDrbg;
use super::encap::{self, Addressing, Envelope, Extension, Message};
use crate::security::{SecurityClass, SecurityError};

pub const NONCE_GET: u8 = 0x01;
pub const NONCE_REPORT: u8 = 0x02;

/// Which key encrypts: a network key class, or the temporary key of an inclusion in
/// progress with that peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySlot {
    Class(SecurityClass),
    Temporary,
}

impl From<SecurityClass> for KeySlot {
    fn from(c: SecurityClass) -> KeySlot {
        KeySlot::Class(c)
    }
}

#[derive(Debug, Clone)]
enum Span {
    None,
    /// We sent our entropy input in a Nonce Report; the peer's SPAN extension completes it.
    Local([u8; 16]),
    /// The peer sent its entropy input; our next message starts the SPAN.
    Remote([u8; 16]),
    Established {
        drbg: CtrDrbg,
        slot: KeySlot,
    },
}

#[derive(Debug, Clone)]
struct Peer {
    span: Span,
    last_received_seq: Option<u8>,
}

impl Default for Peer {
    fn default() -> Self {
        Peer {
            span: Span::None,
            last_received_seq: None,
        }
    }
}

/// What to do with an incoming S2 frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A command decrypted with the key in `slot`.
    Command { slot: KeySlot, command: Vec<u8> },
    /// Send this back (a Nonce Report); nothing to dispatch.
    Reply(Vec<u8>),
    /// A SPAN is now known (or reset); nothing to answer.
    Synced,
    /// A repeat of the last message: ignored.
    Duplicate,
}

impl Incoming {
    /// A decrypted command and the class it came under (`None` for a temporary key).
    pub fn command(self) -> Option<(Option<SecurityClass>, Vec<u8>)> {
        match self {
            Incoming::Command { slot, command } => Some((
                match slot {
                    KeySlot::Class(c) => Some(c),
                    KeySlot::Temporary => None,
                },
                command,
            )),
            _ => None,
        }
    }
}

/// Sending needs a nonce from the peer first: send this Nonce Get.
#[derive(Debug, PartialEq, Eq)]
pub struct NeedNonce(pub Vec<u8>);

/// This node's S2 state towards every peer.
#[derive(Debug, Clone)]
pub struct S2 {
    own: u16,
    home_id: u32,
    keys: HashMap<SecurityClass, ClassKeys>,
    /// Temporary keys of inclusions in progress, by peer.
    temporary: HashMap<u16, ClassKeys>,
    peers: HashMap<u16, Peer>,
    sequence: u8,
}

impl S2 {
    /// `keys`: the permanent network keys this node holds (S0 excluded).
    pub fn new(own: u16, home_id: u32, keys: &[(SecurityClass, [u8; 16])]) -> S2 {
        S2 {
            own,
            home_id,
            keys: keys
                .iter()
                .filter(|(c, _)| *c != SecurityClass::S0Legacy)
                .map(|(c, k)| (*c, ckdf::network_keys(k)))
                .collect(),
            temporary: HashMap::new(),
            peers: HashMap::new(),
            sequence: 0,
        }
    }

    /// This node's id.
    pub fn own(&self) -> u16 {
        self.own
    }

    pub fn home_id(&self) -> u32 {
        self.home_id
    }

    /// Add (or replace) the network key of `class` (an inclusion just delivered it).
    pub fn set_class_key(&mut self, class: SecurityClass, key: &[u8; 16]) {
        self.keys.insert(class, ckdf::network_keys(key));
    }

    /// The temporary keys of an inclusion with `peer` (`None` when it ends).
    pub fn set_temporary(&mut self, peer: u16, keys: Option<ClassKeys>) {
        match keys {
            Some(k) => self.temporary.insert(peer, k),
            None => self.temporary.remove(&peer),
        };
    }

    fn keys_for(&self, peer: u16, slot: KeySlot) -> Option<&ClassKeys> {
        match slot {
            KeySlot::Class(c) => self.keys.get(&c),
            KeySlot::Temporary => self.temporary.get(&peer),
        }
    }

    fn next_sequence(&mut self) -> u8 {
        self.sequence = self.sequence.wrapping_add(1);
        self.sequence
    }

    fn addr_to(&self, peer: u16) -> Addressing {
        Addressing {
            source: self.own,
            destination: peer,
            home_id: self.home_id,
        }
    }

    fn addr_from(&self, peer: u16) -> Addressing {
        Addressing {
            source: peer,
            destination: self.own,
            home_id: self.home_id,
        }
    }

    /// Forget the SPAN with `peer` (e.g. it was reset).
    pub fn reset(&mut self, peer: u16) {
        self.peers.remove(&peer);
    }

    /// `9F 01 seq`: ask `peer` for a nonce.
    pub fn nonce_get(&mut self, peer: u16) -> Vec<u8> {
        self.peers.entry(peer).or_default();
        vec![encap::CC, NONCE_GET, self.next_sequence()]
    }

    /// A Nonce Report with SOS and a fresh entropy input; the SPAN with `peer` restarts.
    fn nonce_report(&mut self, peer: u16, random: &mut dyn FnMut() -> [u8; 16]) -> Vec<u8> {
        let ei = random();
        self.peers.entry(peer).or_default().span = Span::Local(ei);
        let mut out = vec![encap::CC, NONCE_REPORT, self.next_sequence(), 0x01];
        out.extend_from_slice(&ei);
        out
    }

    /// Encrypt `command` for `peer` with the key in `slot`; without a usable SPAN, a Nonce
    /// Get to send first (then call again once its report is handled).
    pub fn encapsulate(
        &mut self,
        peer: u16,
        slot: impl Into<KeySlot>,
        command: &[u8],
        random: &mut dyn FnMut() -> [u8; 16],
    ) -> Result<Vec<u8>, NeedNonce> {
        let slot = slot.into();
        let Some(keys) = self.keys_for(peer, slot).cloned() else {
            return Err(NeedNonce(self.nonce_get(peer)));
        };
        let addr = self.addr_to(peer);
        let sequence = self.next_sequence();
        let state = self.peers.entry(peer).or_default();
        let mut extensions = Vec::new();
        let nonce = match &mut state.span {
            Span::Established { drbg, slot: s } if *s == slot => drbg.next_nonce(),
            Span::Remote(receiver_ei) => {
                let sender_ei = random();
                let mei = ckdf::mei(&ckdf::nonce_prk(&sender_ei, receiver_ei));
                let mut drbg = CtrDrbg::new(&mei, &keys.personalization);
                let nonce = drbg.next_nonce();
                state.span = Span::Established { drbg, slot };
                extensions.push(Extension::span(&sender_ei));
                nonce
            }
            _ => return Err(NeedNonce(self.nonce_get(peer))),
        };
        let msg = Message {
            sequence,
            extensions,
            encrypted_extensions: Vec::new(),
            command: command.to_vec(),
        };
        Ok(encap::encapsulate(&keys.ccm, &nonce, &addr, &msg))
    }

    /// Handle an S2 frame from `peer` (`9F …`). `classes`: the classes it may use, highest
    /// first (its granted ones, or all of ours while probing).
    pub fn receive(
        &mut self,
        peer: u16,
        frame: &[u8],
        classes: &[SecurityClass],
        random: &mut dyn FnMut() -> [u8; 16],
    ) -> Result<Incoming, SecurityError> {
        let slots: Vec<KeySlot> = classes.iter().map(|c| KeySlot::Class(*c)).collect();
        self.receive_with(peer, frame, &slots, random)
    }

    /// [`S2::receive`] with key slots (an inclusion's temporary key among them).
    pub fn receive_with(
        &mut self,
        peer: u16,
        frame: &[u8],
        slots: &[KeySlot],
        random: &mut dyn FnMut() -> [u8; 16],
    ) -> Result<Incoming, SecurityError> {
        match frame {
            [encap::CC, NONCE_GET, _seq] => Ok(Incoming::Reply(self.nonce_report(peer, random))),
            [encap::CC, NONCE_REPORT, _seq, flags, rest @ ..] => {
                if flags & 0x01 != 0 {
                    let ei: [u8; 16] = rest.get(..16).and_then(|e| e.try_into().ok()).ok_or(
                        SecurityError::Malformed("Nonce Report without its entropy input"),
                    )?;
                    self.peers.entry(peer).or_default().span = Span::Remote(ei);
                }
                Ok(Incoming::Synced)
            }
            [encap::CC, encap::ENCAPSULATION, ..] => self.open(peer, frame, slots, random),
            _ => Err(SecurityError::Malformed("not an S2 command zwlock handles")),
        }
    }

    fn open(
        &mut self,
        peer: u16,
        frame: &[u8],
        slots: &[KeySlot],
        random: &mut dyn FnMut() -> [u8; 16],
    ) -> Result<Incoming, SecurityError> {
        let env = Envelope::parse(frame)?;
        let addr = self.addr_from(peer);
        let state = self.peers.get(&peer).cloned().unwrap_or_default();
        if state.last_received_seq == Some(env.sequence) {
            return Ok(Incoming::Duplicate);
        }
        let mut opened: Option<(Message, Span)> = None;
        if let Some(sender_ei) = env.sender_ei() {
            if let Span::Local(receiver_ei) = &state.span {
                let mei = ckdf::mei(&ckdf::nonce_prk(&sender_ei, receiver_ei));
                for slot in slots {
                    let Some(keys) = self.keys_for(peer, *slot) else {
                        continue;
                    };
                    let mut drbg = CtrDrbg::new(&mei, &keys.personalization);
                    let nonce = drbg.next_nonce();
                    if let Ok(msg) = env.open(&keys.ccm, &nonce, &addr) {
                        opened = Some((msg, Span::Established { drbg, slot: *slot }));
                        break;
                    }
                }
            }
        } else if let Span::Established { drbg, slot } = &state.span {
            if let Some(keys) = self.keys_for(peer, *slot) {
                let mut next = drbg.clone();
                let nonce = next.next_nonce();
                if let Ok(msg) = env.open(&keys.ccm, &nonce, &addr) {
                    opened = Some((
                        msg,
                        Span::Established {
                            drbg: next,
                            slot: *slot,
                        },
                    ));
                }
            }
        }
        match opened {
            Some((msg, span)) => {
                let Span::Established { slot, .. } = &span else {
                    unreachable!("opened messages establish a SPAN")
                };
                let slot = *slot;
                let state = self.peers.entry(peer).or_default();
                state.span = span;
                state.last_received_seq = Some(env.sequence);
                Ok(Incoming::Command {
                    slot,
                    command: msg.command,
                })
            }
            // Out of step, tampered, or a key we lack: ask the sender to start over.
            None => Ok(Incoming::Reply(self.nonce_report(peer, random))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCESS: SecurityClass = SecurityClass::S2AccessControl;
    const HOME: u32 = 0xC0FFEE01;

    fn rng(seed: u8) -> impl FnMut() -> [u8; 16] {
        let mut n = seed;
        move || {
            n = n.wrapping_add(1);
            [n; 16]
        }
    }

    fn pair() -> (S2, S2) {
        let keys = [
            (ACCESS, [0x11; 16]),
            (SecurityClass::S2Unauthenticated, [0x22; 16]),
        ];
        (S2::new(1, HOME, &keys), S2::new(5, HOME, &keys))
    }

    /// Controller → lock: through the nonce exchange if needed; the lock's view of it.
    fn send(
        a: &mut S2,
        b: &mut S2,
        cmd: &[u8],
        ra: &mut dyn FnMut() -> [u8; 16],
        rb: &mut dyn FnMut() -> [u8; 16],
    ) -> Incoming {
        let frame = match a.encapsulate(5, ACCESS, cmd, ra) {
            Ok(f) => f,
            Err(NeedNonce(get)) => {
                let Incoming::Reply(report) = b.receive(1, &get, &[ACCESS], rb).unwrap() else {
                    panic!("no nonce report")
                };
                assert_eq!(
                    a.receive(5, &report, &[ACCESS], ra).unwrap(),
                    Incoming::Synced
                );
                a.encapsulate(5, ACCESS, cmd, ra).expect("SPAN ready")
            }
        };
        b.receive(1, &frame, &[ACCESS], rb).unwrap()
    }

    #[test]
    fn a_span_is_set_up_once_and_then_used_both_ways() {
        let (mut c, mut l) = pair();
        let (mut rc, mut rl) = (rng(0), rng(100));
        let cmd = [0x63, 0x02, 0x05];
        assert_eq!(
            send(&mut c, &mut l, &cmd, &mut rc, &mut rl),
            Incoming::Command {
                slot: KeySlot::Class(ACCESS),
                command: cmd.to_vec()
            }
        );
        // Established: no nonce exchange any more, in either direction.
        let f = c.encapsulate(5, ACCESS, &[0x62, 0x02], &mut rc).unwrap();
        assert_eq!(
            l.receive(1, &f, &[ACCESS], &mut rl).unwrap(),
            Incoming::Command {
                slot: KeySlot::Class(ACCESS),
                command: vec![0x62, 0x02]
            }
        );
        let back = l
            .encapsulate(
                1,
                ACCESS,
                &[0x63, 0x03, 0x05, 0x01, b'1', b'2', b'3', b'4'],
                &mut rl,
            )
            .unwrap();
        assert!(matches!(
            c.receive(5, &back, &[ACCESS], &mut rc).unwrap(),
            Incoming::Command { .. }
        ));
    }

    #[test]
    fn a_replayed_frame_is_dropped_and_a_tampered_one_resyncs() {
        let (mut c, mut l) = pair();
        let (mut rc, mut rl) = (rng(0), rng(100));
        send(&mut c, &mut l, &[0x63, 0x02, 0x05], &mut rc, &mut rl);
        let f = c.encapsulate(5, ACCESS, &[0x62, 0x02], &mut rc).unwrap();
        assert!(matches!(
            l.receive(1, &f, &[ACCESS], &mut rl).unwrap(),
            Incoming::Command { .. }
        ));
        assert_eq!(
            l.receive(1, &f, &[ACCESS], &mut rl).unwrap(),
            Incoming::Duplicate
        );
        let mut bad = c.encapsulate(5, ACCESS, &[0x62, 0x02], &mut rc).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let Incoming::Reply(sos) = l.receive(1, &bad, &[ACCESS], &mut rl).unwrap() else {
            panic!("no resync")
        };
        assert_eq!(&sos[..2], &[0x9F, NONCE_REPORT]);
        assert_eq!(sos[3] & 1, 1, "SOS");
        assert_eq!(
            c.receive(5, &sos, &[ACCESS], &mut rc).unwrap(),
            Incoming::Synced
        );
        // The retransmission carries a new SPAN and gets through.
        let again = c.encapsulate(5, ACCESS, &[0x62, 0x02], &mut rc).unwrap();
        assert!(Envelope::parse(&again).unwrap().sender_ei().is_some());
        assert!(matches!(
            l.receive(1, &again, &[ACCESS], &mut rl).unwrap(),
            Incoming::Command { .. }
        ));
    }

    #[test]
    fn a_peer_that_lost_its_span_gets_the_sender_back_in_step() {
        let (mut c, mut l) = pair();
        let (mut rc, mut rl) = (rng(0), rng(100));
        send(&mut c, &mut l, &[0x63, 0x02, 0x05], &mut rc, &mut rl);
        l.reset(1); // the lock rebooted
        let f = c.encapsulate(5, ACCESS, &[0x62, 0x02], &mut rc).unwrap();
        let Incoming::Reply(sos) = l.receive(1, &f, &[ACCESS], &mut rl).unwrap() else {
            panic!("stale SPAN accepted")
        };
        c.receive(5, &sos, &[ACCESS], &mut rc).unwrap();
        let again = c.encapsulate(5, ACCESS, &[0x62, 0x02], &mut rc).unwrap();
        assert!(matches!(
            l.receive(1, &again, &[ACCESS], &mut rl).unwrap(),
            Incoming::Command { .. }
        ));
    }

    #[test]
    fn a_wrong_key_or_network_never_decrypts() {
        let stranger = S2::new(5, HOME, &[(ACCESS, [0x99; 16])]);
        let other_net = S2::new(5, HOME + 1, &[(ACCESS, [0x11; 16])]);
        for mut l in [stranger, other_net] {
            let mut c = S2::new(1, HOME, &[(ACCESS, [0x11; 16])]);
            let (mut rc, mut rl) = (rng(0), rng(100));
            let r = send(&mut c, &mut l, &[0x63, 0x02, 0x05], &mut rc, &mut rl);
            assert!(matches!(r, Incoming::Reply(_)), "{r:?}");
        }
    }

    #[test]
    fn the_class_is_learnt_by_trying_the_candidates() {
        let (mut c, mut l) = pair();
        let (mut rc, mut rl) = (rng(0), rng(100));
        let Err(NeedNonce(get)) = c.encapsulate(
            5,
            SecurityClass::S2Unauthenticated,
            &[0x86, 0x13, 0x63],
            &mut rc,
        ) else {
            panic!()
        };
        let Incoming::Reply(report) = l.receive(1, &get, &[ACCESS], &mut rl).unwrap() else {
            panic!()
        };
        c.receive(5, &report, &[], &mut rc).unwrap();
        let f = c
            .encapsulate(
                5,
                SecurityClass::S2Unauthenticated,
                &[0x86, 0x13, 0x63],
                &mut rc,
            )
            .unwrap();
        let r = l
            .receive(1, &f, &[ACCESS, SecurityClass::S2Unauthenticated], &mut rl)
            .unwrap();
        assert_eq!(
            r,
            Incoming::Command {
                slot: KeySlot::Class(SecurityClass::S2Unauthenticated),
                command: vec![0x86, 0x13, 0x63]
            }
        );
    }

    #[test]
    fn malformed_reports_are_errors_not_panics() {
        let (mut c, _) = pair();
        let mut r = rng(0);
        assert!(c
            .receive(5, &[0x9F, NONCE_REPORT, 1, 0x01, 1, 2], &[ACCESS], &mut r)
            .is_err());
        assert!(c.receive(5, &[0x9F], &[ACCESS], &mut r).is_err());
        assert!(c.receive(5, &[0x9F, 0x03, 1], &[ACCESS], &mut r).is_err());
    }
}
