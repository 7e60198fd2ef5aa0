//! `zwlock decode` over arbitrary text lines, in every mode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zwlock::cli::decode::{decode_line, DecodeOptions};
use zwlock::cli::describe::DescribeOptions;
use zwlock::serialapi::NodeIdType;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else { return };
    let opts = DecodeOptions {
        json: true,
        payload_mode: mode & 1 != 0,
        describe: DescribeOptions {
            show_codes: mode & 2 != 0,
            node_id_type: if mode & 4 != 0 { NodeIdType::Bits16 } else { NodeIdType::Bits8 },
        },
    };
    let text = String::from_utf8_lossy(text);
    for line in text.lines() {
        for f in decode_line(line, &opts) {
            std::hint::black_box(f.summary());
            std::hint::black_box(serde_json::to_string(&f).unwrap());
        }
    }
});
