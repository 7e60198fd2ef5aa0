//! `zwlock decode`: frames as text in, one description per frame out.
//!
//! Accepted input, one frame (or a run of frames) per line:
//! `01 0a 00 13 …`, `0x01, 0x0a, …`, `010a0013…`, fixture lines (`> 01 …`, `< 06`), and
//! zwave-js log lines (`SERIAL » 0x0103…  (5 bytes)`, `SERIAL « [ACK]  (0x06)`).

use std::io::{BufRead, Write};

use serde::Serialize;

use super::describe::{describe_command, describe_frame, CommandDescription, DescribeOptions};
use crate::serial::frame::{data_from_body, parse_head, FrameType, Head};
use crate::serialapi::function::FunctionId;
use crate::serialapi::Origin;
use crate::util::hex;

/// How to decode.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// Print JSON objects (one per line) instead of one-line summaries.
    pub json: bool,
    /// Input lines are bare command class payloads, not frames.
    pub payload_mode: bool,
    /// PINs and node ids width.
    pub describe: DescribeOptions,
}

/// One decoded frame. Field names are the stable output schema of `zwlock decode --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodedFrame {
    /// ">" host→stick, "<" stick→host, or null when the input did not say.
    pub direction: Option<&'static str>,
    /// "data", "ack", "nak", "can" or "invalid".
    pub frame: &'static str,
    /// "request" or "response" for data frames.
    #[serde(rename = "type")]
    pub frame_type: Option<&'static str>,
    pub function_id: Option<u8>,
    pub function: Option<&'static str>,
    /// Payload bytes after FUNC, as hex.
    pub payload: Option<String>,
    /// Why the input is not a valid frame (or its contents not a valid message).
    pub error: Option<String>,
    /// The node a SendData goes to or an ApplicationCommandHandler came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u16>,
    /// The node command inside the frame, when there is one.
    #[serde(flatten)]
    pub command: Option<CommandDescription>,
    /// Serial API fields of a frame without a node command (callbacks, responses, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
}

impl DecodedFrame {
    fn bare(direction: Option<&'static str>, frame: &'static str) -> Self {
        DecodedFrame {
            direction,
            frame,
            frame_type: None,
            function_id: None,
            function: None,
            payload: None,
            error: None,
            node_id: None,
            command: None,
            fields: None,
        }
    }

    fn invalid(direction: Option<&'static str>, error: String) -> Self {
        DecodedFrame {
            error: Some(error),
            ..Self::bare(direction, "invalid")
        }
    }

    /// One-line human summary.
    pub fn summary(&self) -> String {
        let dir = self.direction.unwrap_or(" ");
        match self.frame {
            "data" => {
                let ty = match self.frame_type {
                    Some("request") => "REQ",
                    Some("response") => "RES",
                    _ => "???",
                };
                let func = self.function.unwrap_or("Unknown");
                let id = self.function_id.unwrap_or(0);
                let payload = self
                    .payload
                    .as_deref()
                    .map(|p| hex::encode_spaced(&hex::decode(p).unwrap_or_default()))
                    .unwrap_or_default();
                let mut line = format!("{dir} {ty} {func} (0x{id:02x}) [{payload}]");
                if let Some(n) = self.node_id {
                    line.push_str(&format!(" node {n}"));
                }
                if let Some(c) = &self.command {
                    line.push_str(&format!(" {}", command_summary(c)));
                } else if let Some(f) = self.fields.as_ref().filter(|f| !is_empty_object(f)) {
                    line.push_str(&format!(" {f}"));
                }
                if let Some(e) = &self.error {
                    line.push_str(&format!(" ERROR: {e}"));
                }
                line
            }
            "payload" => match &self.command {
                Some(c) => command_summary(c),
                None => format!(
                    "INVALID: {}",
                    self.error.as_deref().unwrap_or("unknown error")
                ),
            },
            "invalid" => format!(
                "{dir} INVALID: {}",
                self.error.as_deref().unwrap_or("unknown error")
            ),
            other => format!("{dir} {}", other.to_uppercase()),
        }
    }
}

/// A direction marker and the bytes of one input line.
type LineBytes = (Option<&'static str>, Vec<u8>);

/// What one input line says: the direction (if any) and the bytes.
fn split_line(line: &str) -> Result<Option<LineBytes>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    // zwave-js: "... SERIAL » 0x0103…  (5 bytes)" / "SERIAL « [ACK]  (0x06)"
    if let Some(pos) = line.find("SERIAL") {
        let rest = line[pos + "SERIAL".len()..].trim_start();
        let (dir, rest) = if let Some(r) = rest.strip_prefix('»') {
            (">", r)
        } else if let Some(r) = rest.strip_prefix('«') {
            ("<", r)
        } else {
            return Err("zwave-js SERIAL line without » or «".into());
        };
        let rest = rest.trim();
        let bytes = match rest.split_whitespace().next() {
            Some("[ACK]") => vec![0x06],
            Some("[NAK]") => vec![0x15],
            Some("[CAN]") => vec![0x18],
            Some(tok) => hex::decode(tok).map_err(|e| e.to_string())?,
            None => return Err("zwave-js SERIAL line without bytes".into()),
        };
        return Ok(Some((Some(dir), bytes)));
    }
    let (dir, rest) = if let Some(r) = line.strip_prefix('>') {
        (Some(">"), r)
    } else if let Some(r) = line.strip_prefix('<') {
        (Some("<"), r)
    } else {
        (None, line)
    };
    let rest = rest.split('#').next().unwrap_or("");
    let bytes = hex::decode(rest).map_err(|e| e.to_string())?;
    if bytes.is_empty() {
        return Err("no bytes".into());
    }
    Ok(Some((dir, bytes)))
}

fn is_empty_object(v: &serde_json::Value) -> bool {
    v.as_object().is_some_and(|o| o.is_empty())
}

fn command_summary(c: &CommandDescription) -> String {
    let mut s = format!("{}.{}", c.command_class, c.command);
    if !is_empty_object(&c.fields) {
        s.push_str(&format!(" {}", c.fields));
    }
    if c.encrypted == Some(true) {
        s.push_str(" (encrypted)");
    }
    if let Some(inner) = &c.encapsulated {
        s.push_str(&format!(" -> {}", command_summary(inner)));
    }
    s
}

/// Decode one input line into zero or more frames.
pub fn decode_line(line: &str, opts: &DecodeOptions) -> Vec<DecodedFrame> {
    let (direction, bytes) = match split_line(line) {
        Ok(None) => return Vec::new(),
        Ok(Some(x)) => x,
        Err(e) => return vec![DecodedFrame::invalid(None, e)],
    };
    if opts.payload_mode {
        return vec![decode_payload(&bytes, opts)];
    }
    decode_bytes(direction, &bytes, opts)
}

/// Decode a bare command class payload (`--payload`).
fn decode_payload(bytes: &[u8], opts: &DecodeOptions) -> DecodedFrame {
    let mut f = DecodedFrame::bare(None, "payload");
    match describe_command(bytes, &opts.describe) {
        Ok(c) => f.command = Some(c),
        Err(e) => {
            f.frame = "invalid";
            f.error = Some(e);
        }
    }
    let shown = if opts.describe.show_codes {
        bytes.to_vec()
    } else {
        crate::cc::redact::redact_bytes(bytes)
    };
    f.payload = Some(hex::encode(&shown));
    f
}

/// Decode a run of bytes into frames.
pub fn decode_bytes(
    direction: Option<&'static str>,
    mut bytes: &[u8],
    opts: &DecodeOptions,
) -> Vec<DecodedFrame> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (rest, head) = match parse_head(bytes) {
            Ok(x) => x,
            Err(_) => {
                let need = bytes.get(1).map(|l| *l as usize + 2);
                out.push(DecodedFrame::invalid(
                    direction,
                    match need {
                        Some(n) => format!("truncated: {} of {n} bytes", bytes.len()),
                        None => "truncated: SOF without LEN".into(),
                    },
                ));
                break;
            }
        };
        out.push(match head {
            Head::Ack => DecodedFrame::bare(direction, "ack"),
            Head::Nak => DecodedFrame::bare(direction, "nak"),
            Head::Can => DecodedFrame::bare(direction, "can"),
            Head::Data { body } => {
                let ty = FrameType::from_byte(body[0]);
                let func = FunctionId::from_byte(body[1]);
                let frame = data_from_body(bytes::Bytes::copy_from_slice(body));
                let origin = match direction {
                    Some(">") => Some(Origin::Host),
                    Some("<") => Some(Origin::Stick),
                    _ => None,
                };
                let desc = describe_frame(&frame, origin, &opts.describe);
                let payload = desc.redacted_payload.as_deref().unwrap_or(&body[2..]);
                DecodedFrame {
                    direction,
                    frame: "data",
                    frame_type: match ty {
                        FrameType::Request => Some("request"),
                        FrameType::Response => Some("response"),
                        FrameType::Other(_) => None,
                    },
                    function_id: Some(body[1]),
                    function: func.name(),
                    payload: Some(hex::encode(payload)),
                    error: match ty {
                        FrameType::Other(b) => Some(format!("unknown frame type 0x{b:02x}")),
                        _ => desc.error,
                    },
                    node_id: desc.node_id,
                    command: desc.command,
                    fields: desc.fields,
                }
            }
            Head::BadChecksum {
                expected, found, ..
            } => DecodedFrame::invalid(
                direction,
                format!("bad checksum: expected 0x{expected:02x}, found 0x{found:02x}"),
            ),
            Head::Malformed { len } => DecodedFrame::invalid(
                direction,
                format!("malformed: LEN {len} is below the minimum of 3"),
            ),
            Head::Garbage { count } => {
                DecodedFrame::invalid(direction, format!("{count} byte(s) that are not a frame"))
            }
        });
        bytes = rest;
    }
    out
}

/// Run `zwlock decode`: decode `args` (one frame each), or every line of `input` when there
/// are none. Returns the number of invalid frames.
pub fn run(
    args: &[String],
    input: impl BufRead,
    mut out: impl Write,
    opts: &DecodeOptions,
) -> std::io::Result<usize> {
    let mut invalid = 0;
    let mut emit = |line: &str, out: &mut dyn Write| -> std::io::Result<()> {
        for f in decode_line(line, opts) {
            if f.frame == "invalid" || f.error.is_some() {
                invalid += 1;
            }
            if opts.json {
                serde_json::to_writer(&mut *out, &f)?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", f.summary())?;
            }
        }
        Ok(())
    };
    if args.is_empty() {
        for line in input.lines() {
            emit(&line?, &mut out)?;
        }
    } else {
        for a in args {
            emit(a, &mut out)?;
        }
    }
    Ok(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> DecodedFrame {
        let v = decode_line(line, &DecodeOptions::default());
        assert_eq!(v.len(), 1, "{line}: {v:?}");
        v.into_iter().next().unwrap()
    }

    #[test]
    fn every_input_spelling_gives_the_same_frame() {
        let want = one("01 0a 00 13 03 03 8e 02 04 25 40 0b");
        for line in [
            "0x01, 0x0a, 0x00, 0x13, 0x03, 0x03, 0x8e, 0x02, 0x04, 0x25, 0x40, 0x0b",
            "010a001303038e020425400b",
        ] {
            assert_eq!(one(line), want);
        }
        assert_eq!(want.frame, "data");
        assert_eq!(want.frame_type, Some("request"));
        assert_eq!(want.function_id, Some(0x13));
        assert_eq!(want.function, Some("SendData"));
        assert_eq!(want.payload.as_deref(), Some("03038e02042540"));
        assert_eq!(want.direction, None);
    }

    #[test]
    fn zwave_js_log_lines() {
        let f = one("2026-08-14 08:01:48.427 SERIAL » 0x01030002fe                  (5 bytes)");
        assert_eq!(f.direction, Some(">"));
        assert_eq!(f.function, Some("GetSerialApiInitData"));
        let f = one("2026-08-14 08:01:48.432 SERIAL « [ACK]                (0x06)");
        assert_eq!((f.direction, f.frame), (Some("<"), "ack"));
        let f = one("12:00:00.000Z SERIAL « 0x0104011301e8 (6 bytes)");
        assert_eq!((f.direction, f.frame_type), (Some("<"), Some("response")));
    }

    #[test]
    fn fixture_lines() {
        let f = one("< 15   # NAK");
        assert_eq!((f.direction, f.frame), (Some("<"), "nak"));
        let v = decode_line("> 06 01 03 00 07 fb", &DecodeOptions::default());
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].function, Some("GetSerialApiCapabilities"));
    }

    #[test]
    fn invalid_frames_say_why() {
        let f = one("01 04 01 13 01 e9");
        assert_eq!(f.frame, "invalid");
        assert!(f.error.unwrap().contains("bad checksum"));
        let f = one("01 0a 00 13");
        assert!(f.error.unwrap().contains("truncated"));
        let f = one("zz");
        assert_eq!(f.frame, "invalid");
        let f = one("01 02");
        assert!(f.error.unwrap().contains("malformed"));
    }

    #[test]
    fn json_schema_is_stable() {
        let f = one("0104011301e8");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "direction": null, "frame": "data", "type": "response", "function_id": 19,
                "function": "SendData", "payload": "01", "error": null,
                "fields": {"accepted": true}
            })
        );
        let ack = serde_json::to_value(one("06")).unwrap();
        assert_eq!(ack["frame"], "ack");
        assert!(ack["type"].is_null());
    }

    #[test]
    fn run_reads_stdin_lines_and_counts_invalid() {
        let input = "01 03 00 07 fb\n# comment\n\n01 03 00 07 fa\n";
        let mut out = Vec::new();
        let invalid = run(
            &[],
            input.as_bytes(),
            &mut out,
            &DecodeOptions {
                json: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(invalid, 1);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }
}

#[cfg(test)]
mod command_tests {
    use super::*;
    use serde_json::json;

    fn json_of(line: &str, opts: &DecodeOptions) -> serde_json::Value {
        let v = decode_line(line, opts);
        assert_eq!(v.len(), 1, "{line}");
        serde_json::to_value(&v[0]).unwrap()
    }

    fn default() -> DecodeOptions {
        DecodeOptions {
            json: true,
            ..Default::default()
        }
    }

    #[test]
    fn senddata_with_user_code_set_hides_the_pin() {
        let v = json_of("> 010f0013050863010501313233342507ae", &default());
        assert_eq!(v["node_id"], 5);
        assert_eq!(v["command_class"], "UserCode");
        assert_eq!(v["command_class_id"], 0x63);
        assert_eq!(v["command"], "Set");
        assert_eq!(v["fields"]["user_id"], 5);
        assert_eq!(v["fields"]["user_id_status"], "enabled");
        assert_eq!(v["fields"]["user_code"], "****");
        let text = v.to_string();
        assert!(
            !text.contains("1234") && !text.contains("31323334"),
            "{text}"
        );
        let mut show = default();
        show.describe.show_codes = true;
        let v = json_of("> 010f0013050863010501313233342507ae", &show);
        assert_eq!(v["fields"]["user_code"], "1234");
        assert_eq!(v["payload"], "050863010501313233342507");
    }

    #[test]
    fn user_code_reports_as_locks_send_them() {
        for (payload, status, masked) in [
            ("630305012a2a2a2a2a2a2a2a2a2a", json!("enabled"), true),
            ("6303050131323334000000000000", json!("enabled"), false),
            ("63030501000000000000", json!("enabled"), true),
            ("630305fe", json!("not_available"), false),
            ("63030500", json!("available"), false),
            ("6303050900", json!(9), true),
        ] {
            let v = json_of(
                payload,
                &DecodeOptions {
                    payload_mode: true,
                    ..default()
                },
            );
            assert_eq!(v["command"], "Report", "{payload}");
            assert_eq!(v["fields"]["user_id"], 5, "{payload}");
            assert_eq!(v["fields"]["user_id_status"], status, "{payload}");
            assert_eq!(v["fields"]["masked"], masked, "{payload}");
        }
    }

    #[test]
    fn callbacks_and_responses() {
        let v = json_of("< 010500130701ef", &default());
        assert_eq!(v["fields"]["callback_id"], 7);
        assert_eq!(v["fields"]["transmit_status"], "no_ack");
        // Without a direction the short callback is still recognised.
        let v = json_of("010700130f000002e6", &default());
        assert_eq!(v["fields"]["transmit_status"], "ok");
        assert_eq!(v["fields"]["callback_id"], 15);
        let v = json_of("0104011301e8", &default());
        assert_eq!(v["fields"], json!({"accepted": true}));
    }

    #[test]
    fn notification_user_id_in_every_form() {
        let opts = DecodeOptions {
            payload_mode: true,
            ..default()
        };
        for (payload, uid) in [
            ("7105000000ff06060463030301", 3),
            ("7105000000ff06050102", 2),
            ("7105000000ff060e086303050131323334", 5),
            ("7105000000ff060d0463030500", 5),
            ("7105000000ff060f0463030500", 5),
            ("7105000000ff0622020105", 0x0105),
            ("7105000000ff06060463030501ff", 5), // truncated nested report + trailing byte
        ] {
            let v = json_of(payload, &opts);
            assert_eq!(v["fields"]["user_id"], uid, "{payload}");
            assert_eq!(v["fields"]["notification_type"], 6, "{payload}");
        }
        // Legacy alarm fields and v2 fields in one frame.
        let v = json_of("7105130100ff060601 03", &opts);
        assert_eq!(v["fields"]["alarm_type"], 0x13);
        assert_eq!(v["fields"]["alarm_level"], 1);
        assert_eq!(v["fields"]["event"], 6);
        assert_eq!(v["fields"]["user_id"], 3);
        // v1 alarm.
        let v = json_of("71051301", &opts);
        assert_eq!(v["fields"]["alarm_type"], 0x13);
        assert!(v["fields"].get("event").is_none());
    }

    #[test]
    fn supervision_nests_and_security_stays_encrypted() {
        let opts = DecodeOptions {
            payload_mode: true,
            ..default()
        };
        let v = json_of("6c0101086301050131323334", &opts);
        assert_eq!(v["command_class"], "Supervision");
        assert_eq!(v["encapsulated"]["command_class"], "UserCode");
        assert_eq!(v["encapsulated"]["fields"]["user_code"], "****");
        assert_eq!(v["payload"], "6c010108630105012a2a2a2a");
        let v = json_of(
            "988178193fd7b91995ba47645ec33fcdb3994b104ebd712e8b7fbd9120d049284e39c14a0dc9aee5",
            &opts,
        );
        assert_eq!(v["command_class"], "Security");
        assert_eq!(v["command"], "MessageEncapsulation");
        assert_eq!(v["encrypted"], true);
        let v = json_of("9f0101", &opts);
        assert_eq!(v["command_class"], "Security2");
        assert_eq!(v["command"], "NonceGet");
    }

    #[test]
    fn sixteen_bit_node_ids() {
        let mut opts = default();
        opts.describe.node_id_type = crate::serialapi::NodeIdType::Bits16;
        let v = json_of("> 0110001300050863010501313233342507b1", &opts);
        assert_eq!(v["node_id"], 5);
        assert_eq!(v["command"], "Set");
    }

    #[test]
    fn unknown_classes_are_named_unknown() {
        let opts = DecodeOptions {
            payload_mode: true,
            ..default()
        };
        let v = json_of("5d02010203", &opts);
        assert_eq!(v["command_class"], "Unknown");
        assert_eq!(v["command_class_id"], 0x5d);
    }
}
