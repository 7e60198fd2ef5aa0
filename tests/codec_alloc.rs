//! The decoder allocates nothing per frame: frames share the read buffer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};
use zwlock::serial::frame::DataFrame;
use zwlock::serial::SerialCodec;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_and_encode_allocate_nothing_per_frame() {
    let frame = DataFrame::request(0x13, vec![0x05, 0x03, 0x63, 0x02, 0x05, 0x25, 0x07]);
    let mut wire = BytesMut::with_capacity(frame.wire_len() * 1000);
    for _ in 0..1000 {
        frame.encode_into(&mut wire).unwrap();
    }
    let mut codec = SerialCodec::new();
    let mut frames = Vec::with_capacity(1000);

    let before = ALLOCS.load(Ordering::Relaxed);
    while let Some(item) = codec.decode(&mut wire).unwrap() {
        frames.push(item);
    }
    let decode_allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(frames.len(), 1000);
    // The first split turns the buffer into a shared one (one allocation); frames after
    // that only bump a reference count.
    assert!(
        decode_allocs <= 2,
        "{decode_allocs} allocations for 1000 frames"
    );

    let mut dst = BytesMut::with_capacity(frame.wire_len() * 1000);
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        codec.encode(&frame, &mut dst).unwrap();
    }
    let encode_allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(encode_allocs, 0);
}
