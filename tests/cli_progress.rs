//! The CLI side of progress reports: `zwlock unmanaged sync --wait` reads the daemon's
//! `action_attempt.progress` events (the contract in src/cli/progress.rs) from
//! /events/stream while it waits. Off a terminal it prints a line now and then and the last
//! one; events of other attempts are ignored.
//!
//! The daemon's engine does not send these events yet, so the other end here is a stand-in
//! server that speaks the contract: this tests the CLI against it, not the engine.

mod common;

use std::convert::Infallible;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use common::BIN;

fn progress(attempt: &str, done: u64) -> Event {
    Event::default().event("action_attempt.progress").data(
        json!({
            "event_type": "action_attempt.progress",
            "action_attempt_id": attempt,
            "action_type": "SYNC_ACCESS_CODES",
            "done": done, "total": 30, "unit": "slots",
        })
        .to_string(),
    )
}

/// Serve the four routes `unmanaged sync --wait` uses on `socket`, until the test ends.
fn stand_in(socket: std::path::PathBuf) {
    let done = Arc::new(AtomicBool::new(false));
    let (d1, d2) = (done.clone(), done.clone());
    let app = Router::new()
        .route(
            "/locks/sync_access_codes",
            post(|| async {
                Json(json!({ "action_attempt": {
                    "action_attempt_id": "att-1", "action_type": "SYNC_ACCESS_CODES", "status": "pending"
                }}))
            }),
        )
        .route(
            "/events/stream",
            get(move || {
                let done = d1.clone();
                async move {
                    let events = vec![
                        progress("another-attempt", 29),
                        progress("att-1", 10),
                        progress("att-1", 20),
                        progress("att-1", 30),
                    ];
                    let s = futures::stream::unfold((events, 0usize), move |(ev, i)| {
                        let done = done.clone();
                        async move {
                            if i == ev.len() {
                                // Everything was sent: the attempt finishes a little later
                                // (on another connection, so the order is the daemon's).
                                tokio::time::sleep(Duration::from_millis(500)).await;
                                done.store(true, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                return None;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Some((Ok::<_, Infallible>(ev[i].clone()), (ev, i + 1)))
                        }
                    });
                    Sse::new(s)
                }
            }),
        )
        .route(
            "/action_attempts/get",
            get(move || {
                let done = d2.load(Ordering::SeqCst);
                async move {
                    Json(json!({ "action_attempt": {
                        "action_attempt_id": "att-1", "action_type": "SYNC_ACCESS_CODES",
                        "status": if done { "success" } else { "pending" },
                        "result": if done { json!({ "slots_read": 30 }) } else { json!(null) },
                    }}))
                }
            }),
        )
        .route(
            "/access_codes/unmanaged/list",
            get(|| async { Json(json!({ "access_codes": [] })) }),
        );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::bind(&socket).unwrap();
            tx.send(()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

#[test]
fn sync_wait_reads_progress_events_of_its_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    stand_in(socket.clone());
    let out = Command::new(BIN)
        .args(["unmanaged", "sync", "--device", "d1", "--wait", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("every slot read: 0 unmanaged codes"),
        "{stdout}"
    );
    // The first line, and the last; the one in between falls within the line interval.
    assert!(stderr.contains("reading slots: 10/30 slots"), "{stderr}");
    assert!(stderr.contains("reading slots: 30/30 slots"), "{stderr}");
    assert!(!stderr.contains("20/30"), "{stderr}");
    assert!(
        !stderr.contains("29/30"),
        "another attempt's progress: {stderr}"
    );
}
