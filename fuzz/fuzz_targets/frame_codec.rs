//! The serial codec over arbitrary bytes, split into reads at arbitrary points.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use zwlock::serial::frame::{parse_exact, MAX_FRAME_BYTES};
use zwlock::serial::SerialCodec;

fuzz_target!(|data: &[u8]| {
    // First byte picks the read size, the rest is the stream.
    let Some((&split, stream)) = data.split_first() else { return };
    let split = usize::from(split).max(1);
    let mut codec = SerialCodec::new();
    let mut buf = BytesMut::new();
    for chunk in stream.chunks(split) {
        buf.extend_from_slice(chunk);
        while let Some(_item) = codec.decode(&mut buf).expect("decoder never fails") {}
        // Never more than one partial frame is held.
        assert!(buf.len() < MAX_FRAME_BYTES);
    }
    let _ = parse_exact(stream);
});
