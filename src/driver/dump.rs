//! Frame dumps for trace logs, with every PIN starred out.
//!
//! The link layer dumps frames through [`redacted_hex`] at trace level. A node command the
//! Serial API message carries is redacted with [`crate::cc::redact`]; anything that cannot be
//! parsed shows only its first two command bytes, so an unknown layout never leaks a code.

use crate::cc::redact::redact_bytes;
use crate::cc::Command;
use crate::serial::DataFrame;
use crate::serialapi::{HostRequest, Message, NodeIdType, Origin};
use crate::util::hex;

/// `function: payload` in hex, codes as `2a` (`*`) bytes.
pub fn redacted_hex(frame: &DataFrame, outgoing: bool) -> String {
    let payload = redacted_payload(frame, outgoing);
    format!("{:02x}: {}", frame.function, payload)
}

fn redacted_payload(frame: &DataFrame, outgoing: bool) -> String {
    let origin = if outgoing {
        Origin::Host
    } else {
        Origin::Stick
    };
    let Ok(msg) = Message::parse(frame, origin, NodeIdType::Bits8) else {
        return hidden(&frame.payload, 0);
    };
    let command: Option<&[u8]> = match &msg {
        Message::HostRequest(HostRequest::SendData(r)) => Some(&r.command),
        Message::HostRequest(HostRequest::SendDataBridge(r)) => Some(&r.command),
        Message::StickRequest(s) => s.node_command().map(|(_, c)| c),
        _ => None,
    };
    let Some(cmd) = command else {
        return hex::encode_spaced(&frame.payload);
    };
    let Some(at) = frame
        .payload
        .windows(cmd.len().max(1))
        .position(|w| w == cmd)
    else {
        return hidden(&frame.payload, 0);
    };
    if Command::parse(cmd).is_err() {
        // Unknown layout: keep class and command, hide the rest.
        return hidden(&frame.payload, at + 2);
    }
    let mut out = frame.payload.to_vec();
    out[at..at + cmd.len()].copy_from_slice(&redact_bytes(cmd));
    hex::encode_spaced(&out)
}

/// The first `keep` bytes in hex, then how many were left out.
fn hidden(payload: &[u8], keep: usize) -> String {
    let keep = keep.min(payload.len());
    let shown = hex::encode_spaced(&payload[..keep]);
    let rest = payload.len() - keep;
    if rest == 0 {
        shown
    } else if shown.is_empty() {
        format!("(+{rest} bytes not shown)")
    } else {
        format!("{shown} (+{rest} bytes not shown)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_code_set_is_dumped_without_its_pin() {
        // SendData to node 5: User Code Set, user 3, enabled, "48213579"; tx options, callback.
        let mut payload = vec![0x05, 12, 0x63, 0x01, 3, 0x01];
        payload.extend_from_slice(b"48213579");
        payload.extend_from_slice(&[0x25, 0x07]);
        let frame = DataFrame::request(0x13, payload);
        let dump = redacted_hex(&frame, true);
        assert!(dump.starts_with("13: 05 0c 63 01 03 01 2a 2a"), "{dump}");
        assert!(!dump.contains("34 38 32 31"), "{dump}");
    }

    #[test]
    fn a_report_from_a_lock_is_dumped_without_its_pin() {
        // ApplicationCommandHandler from node 5: User Code Report, user 3, "4821".
        let frame = DataFrame::request(
            0x04,
            vec![0x00, 0x05, 8, 0x63, 0x03, 3, 0x01, b'4', b'8', b'2', b'1'],
        );
        let dump = redacted_hex(&frame, false);
        assert!(dump.ends_with("63 03 03 01 2a 2a 2a 2a"), "{dump}");
    }

    #[test]
    fn an_unparsable_command_shows_class_and_command_only() {
        // A User Code Set too short to parse.
        let frame = DataFrame::request(0x13, vec![0x05, 3, 0x63, 0x01, 0x34, 0x25, 0x07]);
        let dump = redacted_hex(&frame, true);
        assert!(!dump.contains("34"), "{dump}");
    }
}
