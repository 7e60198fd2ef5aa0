//! Security 0 (CC 0x98): keys from the network key, Message Encapsulation (AES-OFB with an
//! 8-byte CBC-MAC), and the receiver's table of one-use nonces.
//!
//! `98 81 | sender nonce (8) | ciphertext | receiver nonce id | MAC (8)`; the plaintext is a
//! frame-control byte and the command; IV = sender nonce ‖ receiver nonce; the MAC covers
//! both nonces, the command byte, source, destination, ciphertext length and ciphertext.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::primitives::{aes_ecb, aes_ofb, cbc_mac, Key};
use super::SecurityError;

pub const CC: u8 = 0x98;
pub const NONCE_GET: u8 = 0x40;
pub const NONCE_REPORT: u8 = 0x80;
pub const ENCAPSULATION: u8 = 0x81;
pub const ENCAPSULATION_NONCE_GET: u8 = 0xC1;
pub const NONCE_LEN: usize = 8;
const MAC_LEN: usize = 8;

/// The two keys S0 derives from a network key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct S0Keys {
    auth: Key,
    enc: Key,
}

impl std::fmt::Debug for S0Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S0Keys(..)")
    }
}

impl S0Keys {
    pub fn derive(network_key: &Key) -> S0Keys {
        S0Keys {
            auth: aes_ecb(network_key, &[0x55; 16]),
            enc: aes_ecb(network_key, &[0xAA; 16]),
        }
    }

    /// The all-zero key a node uses before it has the network key (S0 inclusion).
    pub fn temporary() -> S0Keys {
        S0Keys::derive(&[0; 16])
    }

    fn mac(
        &self,
        cmd: u8,
        sender: &[u8; 8],
        receiver: &[u8; 8],
        src: u8,
        dst: u8,
        ciphertext: &[u8],
    ) -> [u8; 8] {
        let mut data = Vec::with_capacity(20 + ciphertext.len());
        data.extend_from_slice(sender);
        data.extend_from_slice(receiver);
        data.extend_from_slice(&[cmd, src, dst, ciphertext.len() as u8]);
        data.extend_from_slice(ciphertext);
        let full = cbc_mac(&self.auth, &data);
        full[..MAC_LEN].try_into().expect("8 of 16 bytes")
    }
}

fn iv(sender: &[u8; 8], receiver: &[u8; 8]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(sender);
    iv[8..].copy_from_slice(receiver);
    iv
}

/// Encapsulate `command` (a whole node command, single frame) from `src` to `dst`. With
/// `nonce_get`, the frame also asks the receiver for a nonce (0xC1).
pub fn encapsulate(
    keys: &S0Keys,
    sender_nonce: &[u8; 8],
    receiver_nonce: &[u8; 8],
    src: u8,
    dst: u8,
    command: &[u8],
    nonce_get: bool,
) -> Vec<u8> {
    let cmd = if nonce_get {
        ENCAPSULATION_NONCE_GET
    } else {
        ENCAPSULATION
    };
    let mut payload = Vec::with_capacity(command.len() + 1);
    payload.push(0x00); // frame control: one unsequenced frame
    payload.extend_from_slice(command);
    aes_ofb(&keys.enc, &iv(sender_nonce, receiver_nonce), &mut payload);
    let mac = keys.mac(cmd, sender_nonce, receiver_nonce, src, dst, &payload);
    let mut out = Vec::with_capacity(2 + 8 + payload.len() + 1 + 8);
    out.extend_from_slice(&[CC, cmd]);
    out.extend_from_slice(sender_nonce);
    out.extend_from_slice(&payload);
    out.push(receiver_nonce[0]);
    out.extend_from_slice(&mac);
    out
}

/// The parts of an S0 Message Encapsulation frame, before decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulated<'a> {
    pub command: u8,
    pub sender_nonce: [u8; 8],
    pub ciphertext: &'a [u8],
    pub receiver_nonce_id: u8,
    pub mac: [u8; 8],
}

/// Split an encapsulation frame (`98 81 …` or `98 C1 …`).
pub fn parse(frame: &[u8]) -> Result<Encapsulated<'_>, SecurityError> {
    match frame {
        [CC, cmd @ (ENCAPSULATION | ENCAPSULATION_NONCE_GET), rest @ ..]
            if rest.len() >= 8 + 1 + 1 + 8 =>
        {
            let (nonce, rest) = rest.split_at(8);
            let (body, mac) = rest.split_at(rest.len() - MAC_LEN);
            let (ciphertext, id) = body.split_at(body.len() - 1);
            Ok(Encapsulated {
                command: *cmd,
                sender_nonce: nonce.try_into().expect("8 bytes"),
                ciphertext,
                receiver_nonce_id: id[0],
                mac: mac.try_into().expect("8 bytes"),
            })
        }
        [CC, ENCAPSULATION | ENCAPSULATION_NONCE_GET, ..] => {
            Err(SecurityError::Malformed("S0 encapsulation too short"))
        }
        _ => Err(SecurityError::Malformed("not an S0 encapsulation")),
    }
}

/// Check the MAC and decrypt: the command inside (frame-control byte removed), and whether
/// the sender also asked for a nonce.
pub fn decapsulate(
    keys: &S0Keys,
    frame: &Encapsulated<'_>,
    receiver_nonce: &[u8; 8],
    src: u8,
    dst: u8,
) -> Result<(Vec<u8>, bool), SecurityError> {
    if frame.receiver_nonce_id != receiver_nonce[0] {
        return Err(SecurityError::UnknownNonce);
    }
    let mac = keys.mac(
        frame.command,
        &frame.sender_nonce,
        receiver_nonce,
        src,
        dst,
        frame.ciphertext,
    );
    if mac != frame.mac {
        return Err(SecurityError::AuthenticationFailed);
    }
    let mut plain = frame.ciphertext.to_vec();
    aes_ofb(
        &keys.enc,
        &iv(&frame.sender_nonce, receiver_nonce),
        &mut plain,
    );
    match plain.split_first() {
        Some((control, command)) if control & 0x10 == 0 => {
            Ok((command.to_vec(), frame.command == ENCAPSULATION_NONCE_GET))
        }
        Some(_) => Err(SecurityError::Unsupported(
            "sequenced (two-frame) S0 messages",
        )),
        None => Err(SecurityError::Malformed("empty S0 payload")),
    }
}

/// Nonces this side handed out: one use each, expiring after a lifetime, first bytes unique
/// among the live ones (the first byte is the id a sender quotes).
#[derive(Debug)]
pub struct NonceTable {
    lifetime: Duration,
    live: HashMap<u8, ([u8; 8], Instant, u8)>,
}

impl NonceTable {
    /// zwave-js uses 5 s; the specification allows 3-20 s.
    pub fn new(lifetime: Duration) -> NonceTable {
        NonceTable {
            lifetime,
            live: HashMap::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        let lifetime = self.lifetime;
        self.live
            .retain(|_, (_, t, _)| now.duration_since(*t) < lifetime);
    }

    /// A fresh nonce for `peer` from `random` (retried until its first byte is free).
    pub fn issue(
        &mut self,
        peer: u8,
        now: Instant,
        mut random: impl FnMut() -> [u8; 8],
    ) -> [u8; 8] {
        self.expire(now);
        loop {
            let n = random();
            // Id 0 is avoided: some stacks treat it as "no nonce".
            if n[0] != 0 && !self.live.contains_key(&n[0]) {
                self.live.insert(n[0], (n, now, peer));
                return n;
            }
        }
    }

    /// Take the nonce `id` that `peer` quotes: gone afterwards, whatever the outcome.
    pub fn take(&mut self, peer: u8, id: u8, now: Instant) -> Result<[u8; 8], SecurityError> {
        self.expire(now);
        match self.live.remove(&id) {
            Some((n, _, p)) if p == peer => Ok(n),
            Some(entry) => {
                // Another peer's nonce: leave it for them.
                self.live.insert(id, entry);
                Err(SecurityError::UnknownNonce)
            }
            None => Err(SecurityError::UnknownNonce),
        }
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::hex::decode as h;

    fn net_key() -> Key {
        h("0102030405060708090a0b0c0d0e0f10")
            .unwrap()
            .try_into()
            .unwrap()
    }

    #[test]
    fn keys_from_the_network_key() {
        let k = S0Keys::derive(&net_key());
        assert_eq!(
            k.auth.to_vec(),
            h("c5fe1ca17d36c992731a0c0c468c1ef9").unwrap()
        );
        assert_eq!(
            k.enc.to_vec(),
            h("0a75a51776b28912f3ebe5da139f21ee").unwrap()
        );
    }

    /// `s0_encapsulation_real` (fixtures/vectors.json): captured from a real node 0x16 to the
    /// controller.
    #[test]
    fn a_real_encapsulated_frame_decrypts_and_reencrypts_to_the_same_bytes() {
        let frame =
            h("988178193fd7b91995ba47645ec33fcdb3994b104ebd712e8b7fbd9120d049284e39c14a0dc9aee5")
                .unwrap();
        let receiver: [u8; 8] = h("2866211bff3783d6").unwrap().try_into().unwrap();
        let keys = S0Keys::derive(&net_key());
        let parsed = parse(&frame).unwrap();
        assert_eq!(parsed.receiver_nonce_id, 0x28);
        let (cmd, nonce_get) = decapsulate(&keys, &parsed, &receiver, 0x16, 0x01).unwrap();
        assert!(!nonce_get);
        assert_eq!(cmd, h("9803008685598e60725a845b7170807aef2526ef").unwrap());
        let again = encapsulate(
            &keys,
            &parsed.sender_nonce,
            &receiver,
            0x16,
            0x01,
            &cmd,
            false,
        );
        assert_eq!(again, frame);
    }

    #[test]
    fn tampering_wrong_key_wrong_nonce_and_wrong_addresses_are_rejected() {
        let keys = S0Keys::derive(&net_key());
        let sender = [1, 2, 3, 4, 5, 6, 7, 8];
        let receiver = [9, 10, 11, 12, 13, 14, 15, 16];
        let frame = encapsulate(&keys, &sender, &receiver, 1, 5, &[0x63, 0x02, 0x03], true);
        let ok = parse(&frame).unwrap();
        assert_eq!(
            decapsulate(&keys, &ok, &receiver, 1, 5).unwrap(),
            (vec![0x63, 0x02, 0x03], true)
        );
        for i in 2..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x01;
            let p = parse(&bad).unwrap();
            assert!(
                decapsulate(&keys, &p, &receiver, 1, 5).is_err(),
                "byte {i} flipped"
            );
        }
        let other = S0Keys::derive(&[7; 16]);
        assert_eq!(
            decapsulate(&other, &ok, &receiver, 1, 5),
            Err(SecurityError::AuthenticationFailed)
        );
        assert_eq!(
            decapsulate(&keys, &ok, &receiver, 2, 5),
            Err(SecurityError::AuthenticationFailed)
        );
        let mut wrong = receiver;
        wrong[7] ^= 1;
        assert_eq!(
            decapsulate(&keys, &ok, &wrong, 1, 5),
            Err(SecurityError::AuthenticationFailed)
        );
        assert!(parse(&frame[..15]).is_err());
    }

    #[test]
    fn nonces_are_one_use_per_peer_and_expire() {
        let mut t = NonceTable::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let mut seq = [7u8, 7, 9].into_iter();
        let n = t.issue(5, t0, || {
            let b = seq.next().unwrap();
            [b, 1, 2, 3, 4, 5, 6, 7]
        });
        assert_eq!(n[0], 7);
        // A second nonce never reuses a live id.
        let m = t.issue(5, t0, || {
            let b = seq.next().unwrap();
            [b, 0, 0, 0, 0, 0, 0, 0]
        });
        assert_eq!(m[0], 9);
        assert_eq!(
            t.take(6, 7, t0),
            Err(SecurityError::UnknownNonce),
            "another peer's"
        );
        assert_eq!(t.take(5, 7, t0), Ok(n));
        assert_eq!(
            t.take(5, 7, t0),
            Err(SecurityError::UnknownNonce),
            "used once"
        );
        assert_eq!(
            t.take(5, 9, t0 + Duration::from_secs(6)),
            Err(SecurityError::UnknownNonce),
            "expired"
        );
        assert!(t.is_empty());
    }
}
