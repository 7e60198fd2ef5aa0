//! Replay tests of the link layer: the stick's side of each fixture is played back and the
//! host's bytes (written by our link layer) must match the capture exactly, timing included.
//!
//! The host's "application" here is derived from the fixture itself: every data frame the host
//! sends for the first time is handed to `LinkHandle::send` once the stick frames before it
//! have been received; retransmissions, ACKs and NAKs must come from the link on its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::watch;
use tokio_util::codec::Decoder;

use zwlock::replay::fixture::pattern_bytes;
use zwlock::replay::{spawn_stick, Direction, Fixture, ReplayOptions, Step};
use zwlock::serial::codec::Received;
use zwlock::serial::frame::{parse_exact, Frame, ACK, NAK};
use zwlock::serial::link::{self, LinkConfig, LinkError, LinkEvent, Refusal};
use zwlock::serial::{DataFrame, SerialCodec};

#[derive(Debug)]
enum HostAction {
    Nak {
        after_inbound: usize,
    },
    Send {
        frame: DataFrame,
        after_inbound: usize,
    },
}

struct Plan {
    actions: Vec<HostAction>,
    inbound: Vec<DataFrame>,
}

/// Work out what the host application does, and which frames the link must pass up.
fn plan(fixture: &Fixture, receive_timeout: Duration) -> Plan {
    let mut codec = SerialCodec::new();
    let mut buf = BytesMut::new();
    let mut inbound = Vec::new();
    let mut actions = Vec::new();
    let mut damaged_since_host_line = false;
    let mut unacked: Option<Vec<u8>> = None;
    let mut delay = Duration::ZERO;
    for step in &fixture.steps {
        match step {
            Step::Delay { after, .. } => delay += *after,
            Step::Bytes {
                direction: Direction::StickToHost,
                bytes,
                ..
            } => {
                if delay >= receive_timeout && !buf.is_empty() {
                    codec.discard_partial(&mut buf);
                }
                delay = Duration::ZERO;
                buf.extend_from_slice(&pattern_bytes(bytes));
                while let Some(item) = codec.decode(&mut buf).unwrap() {
                    match item {
                        Received::Frame(Frame::Data(d)) => inbound.push(d),
                        Received::Frame(Frame::Ack) => unacked = None,
                        Received::Frame(_) => {}
                        Received::BadChecksum { .. } | Received::Malformed { .. } => {
                            damaged_since_host_line = true
                        }
                    }
                }
            }
            Step::Bytes {
                direction: Direction::HostToStick,
                bytes,
                ..
            } => {
                delay = Duration::ZERO;
                let bytes = pattern_bytes(bytes);
                match bytes.as_slice() {
                    [ACK] => {}
                    [NAK] if damaged_since_host_line => {}
                    [NAK] => actions.push(HostAction::Nak {
                        after_inbound: inbound.len(),
                    }),
                    _ if unacked.as_deref() == Some(&bytes[..]) => {} // retransmission
                    _ => {
                        let Ok(Frame::Data(frame)) = parse_exact(&bytes) else {
                            panic!("host line is not a frame: {bytes:02x?}");
                        };
                        actions.push(HostAction::Send {
                            frame,
                            after_inbound: inbound.len(),
                        });
                        unacked = Some(bytes);
                    }
                }
                damaged_since_host_line = false;
            }
        }
    }
    Plan { actions, inbound }
}

struct Outcome {
    sends: Vec<Result<(), LinkError>>,
    received: Vec<DataFrame>,
    counters: zwlock::serial::link::LinkCounters,
}

async fn replay(name: &str) -> Outcome {
    let path = format!("{}/fixtures/replay/{name}", env!("CARGO_MANIFEST_DIR"));
    let fixture = Fixture::load(&path).unwrap();
    let config = LinkConfig::default();
    let plan = plan(&fixture, config.receive_timeout);
    let (stream, player) = spawn_stick(fixture, ReplayOptions::default());
    let (handle, mut events, _task) = link::spawn(stream, config);

    let received = Arc::new(Mutex::new(Vec::new()));
    let (count_tx, mut count_rx) = watch::channel(0usize);
    let collector = {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                match ev {
                    LinkEvent::Frame(f) => {
                        let mut r = received.lock().unwrap();
                        r.push(f);
                        let _ = count_tx.send(r.len());
                    }
                    LinkEvent::Closed { .. } => break,
                }
            }
        })
    };

    let mut sends = Vec::new();
    for action in plan.actions {
        let after = match &action {
            HostAction::Nak { after_inbound } | HostAction::Send { after_inbound, .. } => {
                *after_inbound
            }
        };
        count_rx.wait_for(|n| *n >= after).await.unwrap();
        match action {
            HostAction::Nak { .. } => handle.send_nak().await.unwrap(),
            HostAction::Send { frame, .. } => sends.push(handle.send(frame).await),
        }
    }
    player
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let counters = handle.stats();
    drop(handle);
    collector.await.unwrap();
    let received = received.lock().unwrap().clone();
    assert_eq!(received, plan.inbound, "{name}: frames passed up");
    Outcome {
        sends,
        received,
        counters,
    }
}

#[tokio::test(start_paused = true)]
async fn startup_sequence() {
    let out = replay("startup.txt").await;
    assert_eq!(out.sends.len(), 9);
    assert!(out.sends.iter().all(|r| r.is_ok()));
    assert_eq!(out.received.len(), 9); // SerialApiStarted + 8 responses
    assert_eq!(out.counters.retransmissions, 0);
}

#[tokio::test(start_paused = true)]
async fn senddata_round_trip() {
    let out = replay("senddata_roundtrip.txt").await;
    assert_eq!(out.sends, vec![Ok(())]);
    let functions: Vec<u8> = out.received.iter().map(|f| f.function).collect();
    assert_eq!(functions, vec![0x13, 0x13, 0x04]);
}

#[tokio::test(start_paused = true)]
async fn retransmission_after_nak() {
    let out = replay("retransmit_nak.txt").await;
    assert_eq!(out.sends, vec![Ok(())]);
    assert_eq!(out.counters.naks_received, 1);
    assert_eq!(out.counters.retransmissions, 1);
    assert_eq!(out.counters.frames_sent, 2);
}

#[tokio::test(start_paused = true)]
async fn retransmission_after_can_takes_the_stick_frame_first() {
    let out = replay("retransmit_can.txt").await;
    assert_eq!(out.sends, vec![Ok(())]);
    assert_eq!(out.counters.cans_received, 1);
    assert_eq!(out.received.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn retransmission_after_ack_timeout_with_backoff() {
    let out = replay("retransmit_ack_timeout.txt").await;
    assert_eq!(out.sends, vec![Ok(())]);
    assert_eq!(out.counters.ack_timeouts, 2);
    assert_eq!(out.counters.retransmissions, 2);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_three_retransmissions() {
    let out = replay("ack_timeout_gives_up.txt").await;
    assert_eq!(
        out.sends,
        vec![Err(LinkError::NotAcknowledged {
            sends: 4,
            last: Refusal::AckTimeout
        })]
    );
    assert_eq!(out.counters.send_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn garbage_before_a_frame_is_skipped() {
    let out = replay("garbage_before_frame.txt").await;
    assert_eq!(out.received.len(), 2);
    assert_eq!(out.counters.garbage_bytes, 7);
}

#[tokio::test(start_paused = true)]
async fn frame_split_across_reads() {
    let out = replay("split_frame.txt").await;
    assert_eq!(out.received.len(), 3);
    assert_eq!(out.counters.discarded_partials, 0);
}

#[tokio::test(start_paused = true)]
async fn bad_checksum_is_answered_with_nak() {
    let out = replay("bad_checksum.txt").await;
    assert_eq!(out.received.len(), 1);
    assert_eq!(out.counters.bad_checksums, 1);
    assert_eq!(out.counters.naks_sent, 1);
}

#[tokio::test(start_paused = true)]
async fn duplicate_callback_is_passed_up_twice() {
    let out = replay("duplicate_callback.txt").await;
    assert_eq!(out.sends, vec![Ok(())]);
    assert_eq!(out.received.len(), 3);
    assert_eq!(out.received[1], out.received[2]);
}

#[tokio::test(start_paused = true)]
async fn partial_frame_is_dropped_after_receive_timeout() {
    let out = replay("partial_frame_timeout.txt").await;
    assert_eq!(out.received.len(), 1);
    assert_eq!(out.counters.discarded_partials, 1);
    assert_eq!(out.counters.naks_sent, 0);
}

/// The player itself must catch a host that writes the wrong bytes, or at the wrong time.
#[tokio::test(start_paused = true)]
async fn player_detects_wrong_bytes_and_wrong_timing() {
    use zwlock::replay::ReplayError;
    let wrong = Fixture::parse("> 01 03 00 07 fb").unwrap();
    let (stream, player) = spawn_stick(wrong, ReplayOptions::default());
    let (handle, _events, _task) = link::spawn(stream, LinkConfig::default());
    let h = handle.clone();
    tokio::spawn(async move { h.send(DataFrame::request(0x15, Vec::new())).await });
    let err = player.await.unwrap().unwrap_err();
    assert!(
        matches!(err, ReplayError::Mismatch { line: 1, .. }),
        "{err}"
    );

    let early = Fixture::parse("> 01 03 00 07 fb\n@+500ms\n> 01 03 00 07 fb").unwrap();
    let (stream, player) = spawn_stick(early, ReplayOptions::default());
    let (handle, _events, _task) = link::spawn(stream, LinkConfig::default());
    tokio::spawn(async move { handle.send(DataFrame::request(0x07, Vec::new())).await });
    let err = player.await.unwrap().unwrap_err();
    assert!(matches!(err, ReplayError::Timing { line: 3, .. }), "{err}");
}
