//! Security 2 (CC 0x9F): key derivation, the SPAN nonce generator, and Message Encapsulation.

pub mod bootstrap;
pub mod ckdf;
pub mod drbg;
pub mod encap;
pub mod joining;
pub mod peer;
