//! S2 key derivation (CKDF, on AES-128-CMAC): the keys of each network key class, the
//! temporary keys of an inclusion, and the nonce seed (MEI) from two entropy inputs.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::security::primitives::{cmac, Key};

/// What S2 uses of one network key.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct ClassKeys {
    /// The AES-CCM key.
    pub ccm: Key,
    /// The CTR_DRBG personalization string for SPANs under this key.
    pub personalization: [u8; 32],
    /// The multicast (MPAN) key.
    pub mpan: Key,
}

impl std::fmt::Debug for ClassKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClassKeys(..)")
    }
}

/// `T(i) = CMAC(key, T(i-1) ‖ 15 × c ‖ i)`, T(0) empty.
fn expand(key: &Key, constant: u8, count: u8) -> Vec<[u8; 16]> {
    let mut out: Vec<[u8; 16]> = Vec::with_capacity(usize::from(count));
    for i in 1..=count {
        let mut msg = Vec::with_capacity(32);
        if let Some(prev) = out.last() {
            msg.extend_from_slice(prev);
        }
        msg.extend_from_slice(&[constant; 15]);
        msg.push(i);
        out.push(cmac(key, &msg));
    }
    out
}

fn join(a: &[u8; 16], b: &[u8; 16]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(a);
    out[16..].copy_from_slice(b);
    out
}

/// The keys of a permanent network key (PNK).
pub fn network_keys(pnk: &Key) -> ClassKeys {
    let t = expand(pnk, 0x55, 4);
    ClassKeys {
        ccm: t[0],
        personalization: join(&t[1], &t[2]),
        mpan: t[3],
    }
}

/// The pseudo-random key of an inclusion: from the ECDH shared secret and both public keys
/// (A = the including controller, B = the joining node).
pub fn temp_prk(shared_secret: &[u8; 32], pub_a: &[u8; 32], pub_b: &[u8; 32]) -> Key {
    let mut msg = Vec::with_capacity(96);
    msg.extend_from_slice(shared_secret);
    msg.extend_from_slice(pub_a);
    msg.extend_from_slice(pub_b);
    cmac(&[0x33; 16], &msg)
}

/// The temporary keys of an inclusion (no MPAN key).
pub fn temp_keys(prk: &Key) -> ClassKeys {
    let t = expand(prk, 0x88, 3);
    ClassKeys {
        ccm: t[0],
        personalization: join(&t[1], &t[2]),
        mpan: [0; 16],
    }
}

/// The nonce PRK of a SPAN from the sender's and the receiver's entropy inputs.
pub fn nonce_prk(sender_ei: &[u8; 16], receiver_ei: &[u8; 16]) -> Key {
    let mut msg = [0u8; 32];
    msg[..16].copy_from_slice(sender_ei);
    msg[16..].copy_from_slice(receiver_ei);
    cmac(&[0x26; 16], &msg)
}

/// The mixed entropy input (MEI) that seeds a SPAN's CTR_DRBG.
pub fn mei(nonce_prk: &Key) -> [u8; 32] {
    // T0 is 15 × 0x88 ‖ 0x00 here, unlike the key expansions.
    let mut first = Vec::with_capacity(32);
    first.extend_from_slice(&[0x88; 15]);
    first.push(0x00);
    first.extend_from_slice(&[0x88; 15]);
    first.push(0x01);
    let t1 = cmac(nonce_prk, &first);
    let mut second = Vec::with_capacity(32);
    second.extend_from_slice(&t1);
    second.extend_from_slice(&[0x88; 15]);
    second.push(0x02);
    let t2 = cmac(nonce_prk, &second);
    join(&t1, &t2)
}
