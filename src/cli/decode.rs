//! `zwlock decode`: frames as text in, one description per frame out.
//!
//! Accepted input, one frame (or a run of frames) per line:
//! `01 0a 00 13 …`, `0x01, 0x0a, …`, `010a0013…`, fixture lines (`> 01 …`, `< 06`), and
//! zwave-js log lines (`SERIAL » 0x0103…  (5 bytes)`, `SERIAL « [ACK]  (0x06)`).

use std::io::{BufRead, Write};

use serde::Serialize;

use crate::serial::frame::{parse_head, FrameType, Head};
use crate::serialapi::function::FunctionId;
use crate::util::hex;

/// How to decode.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// Print JSON objects (one per line) instead of one-line summaries.
    pub json: bool,
}

/// One decoded frame. Field names are the stable output schema of `zwlock decode --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// Why the input is not a valid frame.
    pub error: Option<String>,
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
                format!("{dir} {ty} {func} (0x{id:02x}) [{payload}]")
            }
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

/// Decode one input line into zero or more frames.
pub fn decode_line(line: &str, _opts: &DecodeOptions) -> Vec<DecodedFrame> {
    let (direction, bytes) = match split_line(line) {
        Ok(None) => return Vec::new(),
        Ok(Some(x)) => x,
        Err(e) => return vec![DecodedFrame::invalid(None, e)],
    };
    decode_bytes(direction, &bytes)
}

/// Decode a run of bytes into frames.
pub fn decode_bytes(direction: Option<&'static str>, mut bytes: &[u8]) -> Vec<DecodedFrame> {
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
                    payload: Some(hex::encode(&body[2..])),
                    error: match ty {
                        FrameType::Other(b) => Some(format!("unknown frame type 0x{b:02x}")),
                        _ => None,
                    },
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
            if f.frame == "invalid" {
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
                "function": "SendData", "payload": "01", "error": null
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
            &DecodeOptions { json: true },
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
