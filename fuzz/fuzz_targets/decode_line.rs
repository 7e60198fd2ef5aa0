//! `zwlock decode` over arbitrary text lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zwlock::cli::decode::{decode_line, DecodeOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        for f in decode_line(line, &DecodeOptions { json: true }) {
            std::hint::black_box(f.summary());
        }
    }
});
