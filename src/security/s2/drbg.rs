//! CTR_DRBG with AES-128 and no derivation function (NIST SP 800-90A, 10.2.1), as S2 uses it
//! for the SPAN: instantiated from a 32-byte entropy input and a 32-byte personalization
//! string; each S2 nonce is the first 13 bytes of the next 16-byte output.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::security::primitives::aes_ecb;

const SEEDLEN: usize = 32;

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CtrDrbg {
    key: [u8; 16],
    v: [u8; 16],
}

impl std::fmt::Debug for CtrDrbg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CtrDrbg(..)")
    }
}

fn increment(v: &mut [u8; 16]) {
    for b in v.iter_mut().rev() {
        *b = b.wrapping_add(1);
        if *b != 0 {
            break;
        }
    }
}

impl CtrDrbg {
    /// Instantiate: seed material = entropy XOR personalization.
    pub fn new(entropy: &[u8; SEEDLEN], personalization: &[u8; SEEDLEN]) -> CtrDrbg {
        let mut d = CtrDrbg {
            key: [0; 16],
            v: [0; 16],
        };
        let mut seed = [0u8; SEEDLEN];
        for (i, s) in seed.iter_mut().enumerate() {
            *s = entropy[i] ^ personalization[i];
        }
        d.update(&seed);
        seed.zeroize();
        d
    }

    fn update(&mut self, provided: &[u8; SEEDLEN]) {
        let mut temp = [0u8; SEEDLEN];
        for chunk in temp.chunks_mut(16) {
            increment(&mut self.v);
            chunk.copy_from_slice(&aes_ecb(&self.key, &self.v));
        }
        for (t, p) in temp.iter_mut().zip(provided) {
            *t ^= p;
        }
        self.key.copy_from_slice(&temp[..16]);
        self.v.copy_from_slice(&temp[16..]);
        temp.zeroize();
    }

    /// Reseed with 32 bytes of entropy (no additional input).
    pub fn reseed(&mut self, entropy: &[u8; SEEDLEN]) {
        self.update(entropy);
    }

    /// Fill `out` (no additional input).
    pub fn generate(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(16) {
            increment(&mut self.v);
            let block = aes_ecb(&self.key, &self.v);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        self.update(&[0; SEEDLEN]);
    }

    /// The next S2 nonce.
    pub fn next_nonce(&mut self) -> [u8; 13] {
        let mut block = [0u8; 16];
        self.generate(&mut block);
        block[..13].try_into().expect("13 of 16")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::hex::decode as h;

    /// NIST CAVP drbgvectors_no_reseed, CTR_DRBG AES-128 no df, PredictionResistance False,
    /// EntropyInputLen 256, PersonalizationStringLen 0, AdditionalInputLen 0, COUNT 0: two
    /// generate calls of 64 bytes, the second returned.
    #[test]
    fn matches_nist_cavp_aes128_no_df() {
        let entropy: [u8; 32] =
            h("ce50f33da5d4c1d3d4004eb35244b7f2cd7f2e5076fbf6780a7ff634b249a5fc")
                .unwrap()
                .try_into()
                .unwrap();
        let mut d = CtrDrbg::new(&entropy, &[0; 32]);
        let mut out = [0u8; 64];
        d.generate(&mut out);
        d.generate(&mut out);
        assert_eq!(
            out.to_vec(),
            h("6545c0529d372443b392ceb3ae3a99a30f963eaf313280f1d1a1e87f9db373d361e75d18018266499cccd64d9bbb8de0185f213383080faddec46bae1f784e5a").unwrap()
        );
    }

    #[test]
    fn two_drbgs_from_the_same_seed_stay_in_lockstep() {
        let mut a = CtrDrbg::new(&[1; 32], &[2; 32]);
        let mut b = CtrDrbg::new(&[1; 32], &[2; 32]);
        for _ in 0..5 {
            assert_eq!(a.next_nonce(), b.next_nonce());
        }
        let mut c = CtrDrbg::new(&[1; 32], &[3; 32]);
        assert_ne!(a.next_nonce(), c.next_nonce());
    }
}
