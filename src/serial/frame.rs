//! Serial API frames: the bytes on the wire between host and stick.
//!
//! Four kinds of frame exist: the single bytes ACK (0x06), NAK (0x15) and CAN (0x18), and data
//! frames `SOF(0x01) | LEN | TYPE | FUNC | payload | CHK`, where LEN counts every byte after
//! itself (checksum included) and `CHK = 0xFF ^ LEN ^ TYPE ^ FUNC ^ payload…`.
//!
//! This module holds pure functions only: a nom parser that classifies the head of a byte
//! slice, and an encoder. The stream codec (resync, counters) is in [`super::codec`].

use bytes::{BufMut, Bytes};
use nom::{Err as NomErr, IResult, Needed};

/// Start of a data frame.
pub const SOF: u8 = 0x01;
/// Acknowledge: the last data frame arrived intact.
pub const ACK: u8 = 0x06;
/// Negative acknowledge: a data frame arrived damaged.
pub const NAK: u8 = 0x15;
/// Cancel: a data frame was dropped (collision).
pub const CAN: u8 = 0x18;

/// Smallest legal LEN: TYPE + FUNC + CHK.
pub const MIN_LEN: u8 = 3;
/// Largest data frame on the wire: SOF + LEN(0xFF) + 255 bytes.
pub const MAX_FRAME_BYTES: usize = 2 + u8::MAX as usize;
/// Largest payload a data frame can carry.
pub const MAX_PAYLOAD: usize = u8::MAX as usize - MIN_LEN as usize;

/// The TYPE byte of a data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// 0x00: a request (host→stick command, or an unsolicited stick→host callback).
    Request,
    /// 0x01: the synchronous response to a request.
    Response,
    /// Any other value. Such a frame is still acknowledged (its checksum is good); the layers
    /// above decide what to do with it.
    Other(u8),
}

impl FrameType {
    pub fn from_byte(b: u8) -> Self {
        match b {
            0x00 => FrameType::Request,
            0x01 => FrameType::Response,
            other => FrameType::Other(other),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            FrameType::Request => 0x00,
            FrameType::Response => 0x01,
            FrameType::Other(b) => b,
        }
    }
}

/// A data frame with a valid checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFrame {
    pub frame_type: FrameType,
    pub function: u8,
    pub payload: Bytes,
}

impl DataFrame {
    /// A request frame (TYPE 0x00).
    pub fn request(function: u8, payload: impl Into<Bytes>) -> Self {
        DataFrame {
            frame_type: FrameType::Request,
            function,
            payload: payload.into(),
        }
    }

    /// A response frame (TYPE 0x01).
    pub fn response(function: u8, payload: impl Into<Bytes>) -> Self {
        DataFrame {
            frame_type: FrameType::Response,
            function,
            payload: payload.into(),
        }
    }

    /// Number of bytes this frame occupies on the wire.
    pub fn wire_len(&self) -> usize {
        self.payload.len() + 5
    }

    /// Append the wire form of this frame to `dst`.
    ///
    /// Fails when the payload is longer than a LEN byte can describe.
    pub fn encode_into<B: BufMut>(&self, dst: &mut B) -> Result<(), FrameTooLong> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(FrameTooLong {
                payload_len: self.payload.len(),
            });
        }
        let len = (self.payload.len() + MIN_LEN as usize) as u8;
        let ty = self.frame_type.to_byte();
        dst.put_u8(SOF);
        dst.put_u8(len);
        dst.put_u8(ty);
        dst.put_u8(self.function);
        dst.put_slice(&self.payload);
        let chk = checksum_parts(len, ty, self.function, &self.payload);
        dst.put_u8(chk);
        Ok(())
    }

    /// The wire form of this frame as a fresh vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FrameTooLong> {
        let mut v = Vec::with_capacity(self.wire_len());
        self.encode_into(&mut v)?;
        Ok(v)
    }
}

/// A payload too long for one data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payload of {payload_len} bytes does not fit in a data frame (max {MAX_PAYLOAD})")]
pub struct FrameTooLong {
    pub payload_len: usize,
}

/// Any frame on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Ack,
    Nak,
    Can,
    Data(DataFrame),
}

impl Frame {
    /// Append the wire form of this frame to `dst`.
    pub fn encode_into<B: BufMut>(&self, dst: &mut B) -> Result<(), FrameTooLong> {
        match self {
            Frame::Ack => dst.put_u8(ACK),
            Frame::Nak => dst.put_u8(NAK),
            Frame::Can => dst.put_u8(CAN),
            Frame::Data(d) => d.encode_into(dst)?,
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, FrameTooLong> {
        let mut v = Vec::new();
        self.encode_into(&mut v)?;
        Ok(v)
    }
}

/// The checksum over LEN, TYPE, FUNC and the payload.
pub fn checksum(bytes_from_len: &[u8]) -> u8 {
    bytes_from_len.iter().fold(0xFF, |acc, b| acc ^ b)
}

fn checksum_parts(len: u8, ty: u8, func: u8, payload: &[u8]) -> u8 {
    checksum(payload) ^ len ^ ty ^ func
}

/// What the head of a byte slice holds, as far as framing goes.
///
/// Data frames are returned as borrowed slices so the parser allocates nothing; the codec turns
/// them into [`DataFrame`]s that share the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head<'a> {
    Ack,
    Nak,
    Can,
    /// A complete data frame with a valid checksum. `body` is TYPE | FUNC | payload.
    Data {
        body: &'a [u8],
    },
    /// A complete data frame whose checksum does not match. The receiver answers NAK.
    BadChecksum {
        expected: u8,
        found: u8,
        len: u8,
    },
    /// SOF followed by a LEN below the minimum of 3. The receiver answers NAK and skips SOF+LEN.
    Malformed {
        len: u8,
    },
    /// Bytes that are none of SOF/ACK/NAK/CAN, up to (not including) the next one of those.
    Garbage {
        count: usize,
    },
}

/// Parse one framing element from the head of `input`.
///
/// Returns `Err(nom::Err::Incomplete)` when more bytes are needed to decide (an empty slice, or
/// a data frame that is not complete yet). Every other byte sequence yields exactly one [`Head`]
/// that consumes at least one byte, so repeated calls always make progress.
pub fn parse_head(input: &[u8]) -> IResult<&[u8], Head<'_>> {
    let Some(&first) = input.first() else {
        return Err(NomErr::Incomplete(Needed::new(1)));
    };
    match first {
        ACK => Ok((&input[1..], Head::Ack)),
        NAK => Ok((&input[1..], Head::Nak)),
        CAN => Ok((&input[1..], Head::Can)),
        SOF => parse_data(input),
        _ => {
            let count = input
                .iter()
                .position(|b| matches!(*b, SOF | ACK | NAK | CAN))
                .unwrap_or(input.len());
            Ok((&input[count..], Head::Garbage { count }))
        }
    }
}

fn parse_data(input: &[u8]) -> IResult<&[u8], Head<'_>> {
    debug_assert_eq!(input.first(), Some(&SOF));
    let Some(&len) = input.get(1) else {
        return Err(NomErr::Incomplete(Needed::new(1)));
    };
    if len < MIN_LEN {
        return Ok((&input[2..], Head::Malformed { len }));
    }
    let total = len as usize + 2;
    if input.len() < total {
        return Err(NomErr::Incomplete(Needed::new(total - input.len())));
    }
    // LEN..=last payload byte, then CHK.
    let covered = &input[1..total - 1];
    let found = input[total - 1];
    let expected = checksum(covered);
    let rest = &input[total..];
    if expected != found {
        return Ok((
            rest,
            Head::BadChecksum {
                expected,
                found,
                len,
            },
        ));
    }
    Ok((
        rest,
        Head::Data {
            body: &input[2..total - 1],
        },
    ))
}

/// Parse exactly one complete frame from `input`, requiring that nothing else follows.
///
/// Used by tools (`zwlock decode`) and tests that hold a single frame. Garbage, a bad checksum,
/// a truncated frame or trailing bytes are reported as a [`FrameError`].
pub fn parse_exact(input: &[u8]) -> Result<Frame, FrameError> {
    match parse_head(input) {
        Err(NomErr::Incomplete(_)) => Err(FrameError::Truncated {
            have: input.len(),
            need: expected_len(input),
        }),
        Err(_) => Err(FrameError::Garbage { count: input.len() }),
        Ok((rest, head)) => {
            let frame = match head {
                Head::Ack => Frame::Ack,
                Head::Nak => Frame::Nak,
                Head::Can => Frame::Can,
                Head::Data { body } => Frame::Data(data_from_body(Bytes::copy_from_slice(body))),
                Head::BadChecksum {
                    expected, found, ..
                } => return Err(FrameError::BadChecksum { expected, found }),
                Head::Malformed { len } => return Err(FrameError::Malformed { len }),
                Head::Garbage { count } => return Err(FrameError::Garbage { count }),
            };
            if !rest.is_empty() {
                return Err(FrameError::TrailingBytes { count: rest.len() });
            }
            Ok(frame)
        }
    }
}

fn expected_len(input: &[u8]) -> Option<usize> {
    match input {
        [SOF, len, ..] => Some(*len as usize + 2),
        _ => None,
    }
}

/// Build a [`DataFrame`] from TYPE | FUNC | payload (at least two bytes, as [`Head::Data`] gives).
pub(crate) fn data_from_body(mut body: Bytes) -> DataFrame {
    debug_assert!(body.len() >= 2);
    let head = body.split_to(2);
    DataFrame {
        frame_type: FrameType::from_byte(head[0]),
        function: head[1],
        payload: body,
    }
}

/// Why a byte sequence is not exactly one frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("bad checksum: expected 0x{expected:02x}, found 0x{found:02x}")]
    BadChecksum { expected: u8, found: u8 },
    #[error("malformed data frame: LEN {len} is below the minimum of 3")]
    Malformed { len: u8 },
    #[error("truncated frame: {have} bytes, {}", need.map(|n| format!("LEN says {n}")).unwrap_or_else(|| "need more".into()))]
    Truncated { have: usize, need: Option<usize> },
    #[error("{count} byte(s) that are not a frame")]
    Garbage { count: usize },
    #[error("{count} byte(s) after the end of the frame")]
    TrailingBytes { count: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn single_byte_frames() {
        assert_eq!(parse_exact(&[0x06]), Ok(Frame::Ack));
        assert_eq!(parse_exact(&[0x15]), Ok(Frame::Nak));
        assert_eq!(parse_exact(&[0x18]), Ok(Frame::Can));
    }

    #[test]
    fn checksum_of_spec_example() {
        // protocol.md 1.1: 01 03 00 07 fb
        assert_eq!(checksum(&[0x03, 0x00, 0x07]), 0xfb);
        let f = DataFrame::request(0x07, Bytes::new());
        assert_eq!(f.to_bytes().unwrap(), hex("01030007fb"));
    }

    #[test]
    fn vectors_round_trip() {
        // (hex, type, function, payload)
        let cases = [
            ("010300ff03", FrameType::Request, 0xff, ""),
            (
                "0109001303020000250bca",
                FrameType::Request,
                0x13,
                "03020000250b",
            ),
            (
                "010a001303038e020425400b",
                FrameType::Request,
                0x13,
                "03038e02042540",
            ),
            ("0104011301e8", FrameType::Response, 0x13, "01"),
            ("010700130f000002e6", FrameType::Request, 0x13, "0f000002"),
            ("01030008f4", FrameType::Request, 0x08, ""),
            ("01030020dc", FrameType::Request, 0x20, ""),
            ("0105000b02ff0c", FrameType::Request, 0x0b, "02ff"),
        ];
        for (wire, ty, func, payload) in cases {
            let bytes = hex(wire);
            let frame = parse_exact(&bytes).unwrap();
            let expected = DataFrame {
                frame_type: ty,
                function: func,
                payload: Bytes::from(hex(payload)),
            };
            assert_eq!(frame, Frame::Data(expected.clone()), "{wire}");
            assert_eq!(expected.to_bytes().unwrap(), bytes, "{wire}");
        }
    }

    #[test]
    fn bad_checksum_is_reported_with_both_values() {
        let mut bytes = hex("0104011301e8");
        bytes[5] = 0xe9;
        assert_eq!(
            parse_exact(&bytes),
            Err(FrameError::BadChecksum {
                expected: 0xe8,
                found: 0xe9
            })
        );
    }

    #[test]
    fn len_below_three_is_malformed() {
        for len in 0..3u8 {
            let input = [SOF, len, 0xAA];
            let (rest, head) = parse_head(&input).unwrap();
            assert_eq!(head, Head::Malformed { len });
            assert_eq!(rest, &[0xAA]);
        }
    }

    #[test]
    fn incomplete_frames_ask_for_more() {
        let full = hex("0109001303020000250bca");
        for cut in 0..full.len() {
            assert!(
                matches!(parse_head(&full[..cut]), Err(NomErr::Incomplete(_))),
                "cut at {cut}"
            );
        }
        assert_eq!(
            parse_exact(&full[..4]),
            Err(FrameError::Truncated {
                have: 4,
                need: Some(11)
            })
        );
    }

    #[test]
    fn garbage_runs_up_to_the_next_frame_byte() {
        let (rest, head) = parse_head(&[0x00, 0x7f, 0xff, 0x06, 0x01]).unwrap();
        assert_eq!(head, Head::Garbage { count: 3 });
        assert_eq!(rest, &[0x06, 0x01]);
    }

    #[test]
    fn trailing_bytes_are_an_error_for_parse_exact() {
        assert_eq!(
            parse_exact(&[0x06, 0x06]),
            Err(FrameError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn oversized_payload_is_refused() {
        let f = DataFrame::request(0x13, vec![0u8; MAX_PAYLOAD + 1]);
        assert!(f.to_bytes().is_err());
        let f = DataFrame::request(0x13, vec![0u8; MAX_PAYLOAD]);
        let bytes = f.to_bytes().unwrap();
        assert_eq!(bytes.len(), MAX_FRAME_BYTES);
        assert_eq!(parse_exact(&bytes), Ok(Frame::Data(f)));
    }

    #[test]
    fn unknown_type_byte_is_kept() {
        let f = DataFrame {
            frame_type: FrameType::Other(0x42),
            function: 0x13,
            payload: Bytes::from_static(&[1, 2]),
        };
        let bytes = f.to_bytes().unwrap();
        assert_eq!(parse_exact(&bytes), Ok(Frame::Data(f)));
    }
}
