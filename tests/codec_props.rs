//! Property tests of the frame codec over arbitrary bytes.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use zwlock::serial::codec::Received;
use zwlock::serial::frame::{Frame, FrameType, MAX_FRAME_BYTES, MAX_PAYLOAD};
use zwlock::serial::{DataFrame, SerialCodec};

fn data_frame() -> impl Strategy<Value = DataFrame> {
    (
        prop_oneof![Just(0u8), Just(1u8), any::<u8>()],
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD),
    )
        .prop_map(|(ty, function, payload)| DataFrame {
            frame_type: FrameType::from_byte(ty),
            function,
            payload: Bytes::from(payload),
        })
}

/// Bytes that can never start a frame.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("not a frame byte", |b| {
            ![0x01, 0x06, 0x15, 0x18].contains(b)
        }),
        0..40,
    )
}

fn decode_chunks(chunks: &[&[u8]]) -> (Vec<Received>, SerialCodec, usize) {
    let mut codec = SerialCodec::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut max_buffered = 0;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec.decode(&mut buf).expect("decoder never errors") {
            out.push(item);
        }
        max_buffered = max_buffered.max(buf.len());
    }
    (out, codec, max_buffered)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes, fed in any split: no panic, and what stays buffered is less than one frame.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                   split in 1usize..64) {
        let chunks: Vec<&[u8]> = bytes.chunks(split).collect();
        let (_items, _codec, max_buffered) = decode_chunks(&chunks);
        prop_assert!(max_buffered < MAX_FRAME_BYTES + split);
    }

    /// encode → decode gives the same frame back.
    #[test]
    fn round_trip(frame in data_frame()) {
        let wire = frame.to_bytes().unwrap();
        let (items, _, _) = decode_chunks(&[&wire]);
        prop_assert_eq!(items, vec![Received::Frame(Frame::Data(frame))]);
    }

    /// Noise between frames never costs a frame, whatever the read boundaries.
    #[test]
    fn frames_survive_noise(frames in proptest::collection::vec((noise(), data_frame()), 1..6),
                            tail in noise(), split in 1usize..300) {
        let mut wire = Vec::new();
        let mut noise_len = 0;
        for (n, f) in &frames {
            wire.extend_from_slice(n);
            noise_len += n.len();
            wire.extend_from_slice(&f.to_bytes().unwrap());
        }
        wire.extend_from_slice(&tail);
        noise_len += tail.len();
        let chunks: Vec<&[u8]> = wire.chunks(split).collect();
        let (items, codec, _) = decode_chunks(&chunks);
        let expected: Vec<Received> = frames.into_iter()
            .map(|(_, f)| Received::Frame(Frame::Data(f))).collect();
        prop_assert_eq!(items, expected);
        prop_assert_eq!(codec.counters().garbage_bytes, noise_len as u64);
    }

    /// A corrupted byte inside a frame gives a NAK-able item or a resync, never a wrong frame
    /// that passes as the original.
    #[test]
    fn corruption_is_detected(frame in data_frame(), pos in any::<prop::sample::Index>(),
                              flip in 1u8..=255) {
        let mut wire = frame.to_bytes().unwrap();
        let i = pos.index(wire.len());
        wire[i] ^= flip;
        let (items, _, _) = decode_chunks(&[&wire]);
        let original = Received::Frame(Frame::Data(frame));
        prop_assert!(!items.contains(&original));
    }
}
