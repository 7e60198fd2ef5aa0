//! S0 and S2 decapsulation over arbitrary bytes: never a panic, and nothing authenticates
//! unless it was sealed with the key (a forgery found by the fuzzer would fail the assert).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zwlock::security::s0::{self, S0Keys};
use zwlock::security::s2::encap::{Addressing, Envelope};

fuzz_target!(|data: &[u8]| {
    let keys = S0Keys::derive(&[0x42; 16]);
    if let Ok(frame) = s0::parse(data) {
        assert!(s0::decapsulate(&keys, &frame, &[frame.receiver_nonce_id, 1, 2, 3, 4, 5, 6, 7], 1, 5).is_err());
    }
    let addr = Addressing { source: 5, destination: 1, home_id: 0xC0FFEE01 };
    if let Ok(env) = Envelope::parse(data) {
        let _ = env.sender_ei();
        assert!(env.open(&[0x42; 16], &[7; 13], &addr).is_err());
    }
});
