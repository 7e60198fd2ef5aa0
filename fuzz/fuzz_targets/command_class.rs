//! Command class parsers over arbitrary bytes; what parses must encode and parse back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zwlock::cc::Command;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = Command::parse(data) {
        let encoded = cmd.encode();
        let again = Command::parse(&encoded).expect("encoded command parses");
        assert_eq!(again, cmd);
        let _ = cmd.fields();
    }
});
