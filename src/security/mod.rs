//! Z-Wave security: S0 and S2 as pure functions over bytes and keys (the driver keeps the
//! per-node state: nonces, SPANs, sequence numbers), and the network keys file.
//!
//! Built on RustCrypto (aes, ccm, cmac, ofb, cbc-mac) and x25519-dalek; the only mode
//! written here is CTR_DRBG, checked against NIST's vectors and zwave-js.

pub mod keys;
pub mod primitives;
pub mod s0;
pub mod s2;

/// Why a secure frame was not accepted. None of these is worth retrying with the same bytes;
/// a fresh nonce (S0) or a resynchronised SPAN (S2) can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    #[error("malformed secure frame: {0}")]
    Malformed(&'static str),
    #[error("the frame does not authenticate (wrong key, tampered, or out of step)")]
    AuthenticationFailed,
    #[error("the frame quotes a nonce this side did not issue, or one that expired or was used")]
    UnknownNonce,
    #[error("not supported: {0}")]
    Unsupported(&'static str),
}

/// The security classes a node can be granted, highest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SecurityClass {
    S2AccessControl,
    S2Authenticated,
    S2Unauthenticated,
    S0Legacy,
}

impl SecurityClass {
    pub const ALL: [SecurityClass; 4] = [
        SecurityClass::S2AccessControl,
        SecurityClass::S2Authenticated,
        SecurityClass::S2Unauthenticated,
        SecurityClass::S0Legacy,
    ];

    /// Its bit in KEX granted/requested key masks.
    pub fn key_bit(self) -> u8 {
        match self {
            SecurityClass::S2Unauthenticated => 0x01,
            SecurityClass::S2Authenticated => 0x02,
            SecurityClass::S2AccessControl => 0x04,
            SecurityClass::S0Legacy => 0x80,
        }
    }

    /// The name zwave-js uses for the key of this class.
    pub fn zwave_js_name(self) -> &'static str {
        match self {
            SecurityClass::S2AccessControl => "S2_AccessControl",
            SecurityClass::S2Authenticated => "S2_Authenticated",
            SecurityClass::S2Unauthenticated => "S2_Unauthenticated",
            SecurityClass::S0Legacy => "S0_Legacy",
        }
    }
}
