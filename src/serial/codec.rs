//! A `tokio_util` codec for the Serial API byte stream.
//!
//! The decoder turns any byte stream into [`Received`] items: frames, and damaged frames the
//! link must answer with NAK. Bytes that cannot start a frame are skipped and counted, so a
//! burst of line noise never costs the next valid frame. Memory is bounded: the decoder never
//! waits for more than one maximal frame (257 bytes).

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{data_from_body, parse_head, DataFrame, Frame, FrameTooLong, Head};

/// One item out of the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A well-formed frame (ACK, NAK, CAN, or a data frame with a good checksum).
    Frame(Frame),
    /// A complete data frame whose checksum was wrong. Answer with NAK.
    BadChecksum { expected: u8, found: u8 },
    /// SOF with a LEN below 3. Answer with NAK.
    Malformed { len: u8 },
}

/// Counters kept by the decoder since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodecCounters {
    /// Bytes skipped because they could not start a frame.
    pub garbage_bytes: u64,
    /// Data frames with a bad checksum.
    pub bad_checksums: u64,
    /// Data frames with LEN < 3.
    pub malformed: u64,
    /// Partial frames discarded by [`SerialCodec::discard_partial`].
    pub discarded_partials: u64,
}

/// Codec for the Serial API framing (see [`super::frame`]).
#[derive(Debug, Default)]
pub struct SerialCodec {
    counters: CodecCounters,
    sloppy_ack: bool,
}

impl SerialCodec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept the next byte whose low nibble is 0x6 as an ACK. After a soft reset some
    /// 700-series sticks garble the high nibble of their first ACK.
    pub fn accept_sloppy_ack_once(&mut self) {
        self.sloppy_ack = true;
    }

    pub fn counters(&self) -> CodecCounters {
        self.counters
    }

    /// Drop a partially received frame from `buf` (the receive timeout expired).
    ///
    /// After a decode that returned `Ok(None)`, whatever is left in the buffer is the start of
    /// a data frame. Returns true if something was dropped.
    pub fn discard_partial(&mut self, buf: &mut BytesMut) -> bool {
        if buf.is_empty() {
            return false;
        }
        buf.clear();
        self.counters.discarded_partials += 1;
        true
    }
}

impl Decoder for SerialCodec {
    type Item = Received;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Received>, Self::Error> {
        loop {
            if self.sloppy_ack {
                match src.first() {
                    None => return Ok(None),
                    Some(&b) if b & 0x0F == 0x06 => {
                        self.sloppy_ack = false;
                        src.advance(1);
                        return Ok(Some(Received::Frame(Frame::Ack)));
                    }
                    Some(_) => {}
                }
            }
            let (consumed, item) = match parse_head(src) {
                Err(_) => return Ok(None), // incomplete: wait for more bytes
                Ok((rest, head)) => {
                    let consumed = src.len() - rest.len();
                    let item = match head {
                        Head::Ack => Some(Received::Frame(Frame::Ack)),
                        Head::Nak => Some(Received::Frame(Frame::Nak)),
                        Head::Can => Some(Received::Frame(Frame::Can)),
                        Head::Data { .. } => None, // built below, sharing the buffer
                        Head::BadChecksum {
                            expected, found, ..
                        } => {
                            self.counters.bad_checksums += 1;
                            Some(Received::BadChecksum { expected, found })
                        }
                        Head::Malformed { len } => {
                            self.counters.malformed += 1;
                            Some(Received::Malformed { len })
                        }
                        Head::Garbage { count } => {
                            self.counters.garbage_bytes += count as u64;
                            src.advance(count);
                            continue;
                        }
                    };
                    (consumed, item)
                }
            };
            self.sloppy_ack = false;
            return Ok(Some(match item {
                Some(item) => {
                    src.advance(consumed);
                    item
                }
                None => {
                    // SOF | LEN | body | CHK: keep the body, shared with the read buffer.
                    let mut frame = src.split_to(consumed);
                    frame.advance(2);
                    frame.truncate(frame.len() - 1);
                    Received::Frame(Frame::Data(data_from_body(frame.freeze())))
                }
            }));
        }
    }
}

impl Encoder<Frame> for SerialCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), Self::Error> {
        encode_checked(&item, dst)
    }
}

impl Encoder<&DataFrame> for SerialCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: &DataFrame, dst: &mut BytesMut) -> Result<(), Self::Error> {
        dst.reserve(item.wire_len());
        item.encode_into(dst).map_err(too_long)
    }
}

fn encode_checked(item: &Frame, dst: &mut BytesMut) -> Result<(), std::io::Error> {
    item.encode_into(dst).map_err(too_long)
}

fn too_long(e: FrameTooLong) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::frame::FrameType;
    use bytes::Bytes;

    fn hex(s: &str) -> Vec<u8> {
        crate::util::hex::decode(s).unwrap()
    }

    fn decode_all(codec: &mut SerialCodec, buf: &mut BytesMut) -> Vec<Received> {
        let mut out = Vec::new();
        while let Some(item) = codec.decode(buf).unwrap() {
            out.push(item);
        }
        out
    }

    fn data(s: &str) -> Received {
        match crate::serial::frame::parse_exact(&hex(s)).unwrap() {
            f @ Frame::Data(_) => Received::Frame(f),
            _ => unreachable!(),
        }
    }

    #[test]
    fn several_frames_in_one_read() {
        let mut codec = SerialCodec::new();
        let mut buf = BytesMut::from(&hex("060104011301e8150109001303020000250bca18")[..]);
        let items = decode_all(&mut codec, &mut buf);
        assert_eq!(
            items,
            vec![
                Received::Frame(Frame::Ack),
                data("0104011301e8"),
                Received::Frame(Frame::Nak),
                data("0109001303020000250bca"),
                Received::Frame(Frame::Can),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn frame_split_at_every_byte_boundary() {
        let wire = hex("0109001303020000250bca");
        for cut in 0..=wire.len() {
            let mut codec = SerialCodec::new();
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut items = decode_all(&mut codec, &mut buf);
            buf.extend_from_slice(&wire[cut..]);
            items.extend(decode_all(&mut codec, &mut buf));
            assert_eq!(items, vec![data("0109001303020000250bca")], "cut {cut}");
        }
    }

    #[test]
    fn frame_fed_one_byte_at_a_time() {
        let wire = hex("0104011301e8010700130f000002e6");
        let mut codec = SerialCodec::new();
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for b in wire {
            buf.extend_from_slice(&[b]);
            items.extend(decode_all(&mut codec, &mut buf));
        }
        assert_eq!(
            items,
            vec![data("0104011301e8"), data("010700130f000002e6")]
        );
    }

    #[test]
    fn garbage_is_skipped_and_counted() {
        let mut codec = SerialCodec::new();
        let mut buf = BytesMut::from(&hex("00ffee80400104011301e8")[..]);
        assert_eq!(decode_all(&mut codec, &mut buf), vec![data("0104011301e8")]);
        assert_eq!(codec.counters().garbage_bytes, 5);
    }

    #[test]
    fn bad_checksum_then_good_frame() {
        let mut codec = SerialCodec::new();
        let mut buf = BytesMut::from(&hex("0104011301e90104011301e8")[..]);
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![
                Received::BadChecksum {
                    expected: 0xe8,
                    found: 0xe9
                },
                data("0104011301e8")
            ]
        );
        assert_eq!(codec.counters().bad_checksums, 1);
    }

    #[test]
    fn malformed_len_then_resync() {
        let mut codec = SerialCodec::new();
        let mut buf = BytesMut::from(&hex("0102060104011301e8")[..]);
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![
                Received::Malformed { len: 2 },
                Received::Frame(Frame::Ack),
                data("0104011301e8")
            ]
        );
    }

    #[test]
    fn discard_partial_drops_the_tail() {
        let mut codec = SerialCodec::new();
        let mut buf = BytesMut::from(&hex("01090013")[..]);
        assert!(decode_all(&mut codec, &mut buf).is_empty());
        assert!(codec.discard_partial(&mut buf));
        assert!(buf.is_empty());
        assert!(!codec.discard_partial(&mut buf));
        assert_eq!(codec.counters().discarded_partials, 1);
    }

    #[test]
    fn sloppy_ack_is_accepted_once() {
        let mut codec = SerialCodec::new();
        codec.accept_sloppy_ack_once();
        let mut buf = BytesMut::from(&[0x86u8, 0x86][..]);
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![Received::Frame(Frame::Ack)]
        );
        // The second garbled byte is garbage again.
        assert_eq!(codec.counters().garbage_bytes, 1);
    }

    #[test]
    fn encoder_writes_wire_bytes() {
        let mut codec = SerialCodec::new();
        let mut dst = BytesMut::new();
        codec.encode(Frame::Ack, &mut dst).unwrap();
        let f = DataFrame {
            frame_type: FrameType::Request,
            function: 0x13,
            payload: Bytes::from(hex("03020000250b")),
        };
        codec.encode(&f, &mut dst).unwrap();
        assert_eq!(&dst[..], &hex("060109001303020000250bca")[..]);
    }
}
