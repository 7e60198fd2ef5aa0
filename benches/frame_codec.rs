//! Frame codec throughput: decode and encode of typical 10–40 byte frames.
//!
//! `cargo bench --bench frame_codec`; criterion reports time per batch of 1000 frames, so
//! ns/frame = reported time / 1000.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tokio_util::codec::{Decoder, Encoder};
use zwlock::serial::frame::{DataFrame, Frame};
use zwlock::serial::SerialCodec;

const BATCH: usize = 1000;

fn typical_frames() -> Vec<DataFrame> {
    // A mix seen in a lock session: SendData requests, RES, callbacks, reports.
    let payloads: [&[u8]; 4] = [
        &[
            0x05, 0x08, 0x63, 0x01, 0x05, 0x01, 0x31, 0x32, 0x33, 0x34, 0x25, 0x07,
        ],
        &[0x01],
        &[
            0x07, 0x00, 0x00, 0x02, 0x00, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x00, 0x00, 0x03, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00,
        ],
        &[
            0x00, 0x05, 0x0f, 0x71, 0x05, 0x00, 0x00, 0x00, 0xff, 0x06, 0x0e, 0x06, 0x63, 0x03,
            0x05, 0x01, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x00,
        ],
    ];
    (0..BATCH)
        .map(|i| {
            let p = payloads[i % payloads.len()];
            DataFrame::request(
                if i % 4 == 3 { 0x04 } else { 0x13 },
                Bytes::copy_from_slice(p),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let frames = typical_frames();
    let mut wire = BytesMut::new();
    for f in &frames {
        f.encode_into(&mut wire).unwrap();
    }
    let wire = wire.freeze();
    let mut g = c.benchmark_group("frame_codec");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("decode_1000_frames", |b| {
        b.iter(|| {
            let mut codec = SerialCodec::new();
            let mut buf = BytesMut::from(&wire[..]);
            let mut n = 0;
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                black_box(&item);
                n += 1;
            }
            assert_eq!(n, BATCH);
        })
    });
    g.bench_function("encode_1000_frames", |b| {
        let mut codec = SerialCodec::new();
        let mut dst = BytesMut::with_capacity(wire.len());
        b.iter(|| {
            dst.clear();
            for f in &frames {
                codec.encode(f, &mut dst).unwrap();
            }
            codec.encode(Frame::Ack, &mut dst).unwrap();
            black_box(&dst);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
