//! The link layer when the byte stream misbehaves or goes away.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zwlock::serial::link::{self, LinkConfig, LinkError, LinkEvent};
use zwlock::serial::DataFrame;

#[tokio::test(start_paused = true)]
async fn stream_closing_fails_the_frame_in_flight_and_the_queue() {
    let (host, mut stick) = tokio::io::duplex(1024);
    let (handle, mut events, task) = link::spawn(Box::new(host), LinkConfig::default());
    let h1 = handle.clone();
    let first = tokio::spawn(async move { h1.send(DataFrame::request(0x07, vec![])).await });
    let h2 = handle.clone();
    let second = tokio::spawn(async move { h2.send(DataFrame::request(0x15, vec![])).await });
    // The stick reads the first frame, then the cable is pulled.
    let mut buf = [0u8; 5];
    stick.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, [0x01, 0x03, 0x00, 0x07, 0xfb]);
    drop(stick);
    for r in [first.await.unwrap(), second.await.unwrap()] {
        let err = r.unwrap_err();
        assert!(matches!(err, LinkError::Closed { .. }), "{err}");
        assert!(err.is_retryable());
    }
    assert!(matches!(
        events.recv().await,
        Some(LinkEvent::Closed { .. })
    ));
    task.await.unwrap();
    assert!(handle.is_closed());
    assert!(matches!(
        handle.send(DataFrame::request(0x07, vec![])).await,
        Err(LinkError::Closed { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn frames_are_sent_one_at_a_time() {
    let (host, mut stick) = tokio::io::duplex(1024);
    let (handle, _events, _task) = link::spawn(Box::new(host), LinkConfig::default());
    for f in [0x07u8, 0x15] {
        let h = handle.clone();
        tokio::spawn(async move { h.send(DataFrame::request(f, vec![])).await });
    }
    let mut buf = [0u8; 5];
    stick.read_exact(&mut buf).await.unwrap();
    let first = buf[3];
    // Nothing more may arrive until the first frame is ACKed.
    let mut more = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(1000), stick.read(&mut more))
            .await
            .is_err()
    );
    stick.write_all(&[0x06]).await.unwrap();
    stick.read_exact(&mut buf).await.unwrap();
    let mut seen = [first, buf[3]];
    seen.sort();
    assert_eq!(seen, [0x07, 0x15]);
}

#[tokio::test(start_paused = true)]
async fn a_full_inbound_queue_drops_but_still_acks() {
    let (host, mut stick) = tokio::io::duplex(4096);
    let config = LinkConfig {
        inbound_capacity: 2,
        ..LinkConfig::default()
    };
    let (handle, _events, _task) = link::spawn(Box::new(host), config);
    let frame = [0x01, 0x05, 0x00, 0x13, 0x14, 0x00, 0xfd];
    for _ in 0..4 {
        stick.write_all(&frame).await.unwrap();
        let mut ack = [0u8; 1];
        stick.read_exact(&mut ack).await.unwrap();
        assert_eq!(ack, [0x06]);
    }
    let c = handle.stats();
    assert_eq!(c.frames_received, 4);
    assert_eq!(c.inbound_dropped, 2);
}

#[tokio::test]
async fn oversized_frame_is_refused_without_touching_the_wire() {
    let (host, _stick) = tokio::io::duplex(1024);
    let (handle, _events, _task) = link::spawn(Box::new(host), LinkConfig::default());
    let err = handle
        .send(DataFrame::request(0x13, vec![0u8; 300]))
        .await
        .unwrap_err();
    assert_eq!(err, LinkError::FrameTooLong { payload_len: 300 });
    assert!(!err.is_retryable());
    assert_eq!(handle.stats().frames_sent, 0);
}
