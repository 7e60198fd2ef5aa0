//! Keeping PINs out of logs: `Debug` views of bytes that may hold a user code.

use std::fmt;

/// A command class payload shown as its class and command bytes only, e.g. `63 01 +6 bytes`.
/// The rest may hold a PIN, so it is never printed.
pub struct CommandBytes<'a>(pub &'a [u8]);

impl fmt::Debug for CommandBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.write_str("[]"),
            [cc] => write!(f, "[{cc:02x}]"),
            [cc, cmd] => write!(f, "[{cc:02x} {cmd:02x}]"),
            [cc, cmd, rest @ ..] => write!(f, "[{cc:02x} {cmd:02x} +{} bytes]", rest.len()),
        }
    }
}

impl fmt::Display for CommandBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_only_class_and_command() {
        assert_eq!(
            format!(
                "{:?}",
                CommandBytes(&[0x63, 0x01, 0x05, 0x01, 0x31, 0x32, 0x33, 0x34])
            ),
            "[63 01 +6 bytes]"
        );
        assert_eq!(format!("{:?}", CommandBytes(&[0x80])), "[80]");
    }
}
