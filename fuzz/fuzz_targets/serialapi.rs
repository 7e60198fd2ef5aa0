//! Serial API message parsers over arbitrary frames, both node id widths.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use zwlock::serial::frame::{DataFrame, FrameType};
use zwlock::serialapi::{HostRequest, NodeIdType, StickRequest, StickResponse};

fuzz_target!(|data: &[u8]| {
    let [ty, function, payload @ ..] = data else { return };
    let frame = DataFrame {
        frame_type: FrameType::from_byte(*ty & 1),
        function: *function,
        payload: Bytes::copy_from_slice(payload),
    };
    for id in [NodeIdType::Bits8, NodeIdType::Bits16] {
        if let Ok(m) = HostRequest::parse(&frame, id) {
            if let Ok(e) = m.encode(id) {
                assert_eq!(HostRequest::parse(&e, id).unwrap(), m);
            }
        }
        if let Ok(m) = StickResponse::parse(&frame, id) {
            if let Ok(e) = m.encode(id) {
                assert_eq!(StickResponse::parse(&e, id).unwrap(), m);
            }
        }
        if let Ok(m) = StickRequest::parse(&frame, id) {
            if let Ok(e) = m.encode(id) {
                assert_eq!(StickRequest::parse(&e, id).unwrap(), m);
            }
        }
    }
});
