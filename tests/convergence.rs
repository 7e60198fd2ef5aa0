//! The engine's convergence rules (src/codes/mod.rs), each against the simulator on a paused
//! clock: removals retried until gone, refusals retried later, every waiting code told why,
//! outside changes reported after the put-back, released codes, start-up verification, and a
//! stick that is not connected.

mod common;

use std::time::Duration;

use common::world::{quiet_config, start_time, Ground, World};
use uuid::Uuid;
use zwlock::codes::{CreateRequest, EngineError, UpdateRequest};
use zwlock::sim::{Faults, KeypadAction};

const NET: &str = r#"
[[network]]
name = "t"
radio_ms = 20

[[network.lock]]
node_id = 5
name = "front"
user_code_version = 2
slots = 10

[[network.lock]]
node_id = 6
name = "back"
user_code_version = 1
slots = 3
supervision = false
notification = "alarm"

[[network.lock]]
node_id = 7
name = "forgetful"
user_code_version = 1
slots = 5
supervision = false
[network.lock.quirks]
set_reads_back_available = true

[[network.lock]]
node_id = 8
name = "fussy"
user_code_version = 2
slots = 10
initial_codes = [{ slot = 1, code = "7777" }]
[network.lock.quirks]
masked_reports = true
reject_duplicates = true

[[network.lock]]
node_id = 9
name = "small"
user_code_version = 2
slots = 10
[network.lock.quirks]
capacity = 2

[[network.lock]]
node_id = 10
name = "short"
user_code_version = 2
slots = 10
max_code_length = 4
"#;

async fn world() -> World {
    World::start(Ground::new(NET), quiet_config(), 6).await
}

fn issue_codes(w: &World, id: &Uuid) -> (Vec<String>, Vec<String>) {
    let c = w.engine.get(id).unwrap();
    (
        c.errors.iter().map(|e| e.error_code.clone()).collect(),
        c.warnings.iter().map(|e| e.warning_code.clone()).collect(),
    )
}

async fn set_code(w: &World, node: u16, pin: &str) -> (Uuid, u16) {
    let id = w.create(node, pin);
    w.until("set", Duration::from_secs(60), |w| w.status(&id) == "set")
        .await;
    (id, w.engine.get(&id).unwrap().slot.unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_delete_whose_callbacks_are_lost_is_retried_until_the_code_is_gone() {
    let mut w = world().await;
    let (id, slot) = set_code(&w, 5, "4821").await;
    // Every SendData callback is lost: the removal cannot be confirmed.
    w.net
        .set_faults(Faults {
            drop_callback: 1.0,
            ..Default::default()
        })
        .await
        .unwrap();
    w.drain_events();
    w.engine.delete(&id).unwrap();
    w.until("delay warning", Duration::from_secs(900), |w| {
        issue_codes(w, &id)
            .1
            .contains(&"delay_in_removing_from_device".to_string())
    })
    .await;
    w.until("failure error", Duration::from_secs(1800), |w| {
        issue_codes(w, &id)
            .0
            .contains(&"failed_to_remove_from_device".to_string())
    })
    .await;
    assert_eq!(w.status(&id), "removing", "never abandoned");
    // The faults stop: the code goes, whatever happened before.
    w.net.set_faults(Faults::default()).await.unwrap();
    w.until("gone", Duration::from_secs(900), |w| {
        w.engine.get(&id).is_err()
    })
    .await;
    assert_eq!(w.pin_on_lock(5, slot).await, None);
    let ev = w.drain_events();
    for t in [
        "access_code.delay_in_removing_from_device",
        "access_code.failed_to_remove_from_device",
        "access_code.removed_from_device",
    ] {
        assert!(ev.iter().any(|e| e == t), "{t} missing from {ev:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_removal_interrupted_by_a_restart_is_finished_by_the_next_engine() {
    let w = world().await;
    let (id, slot) = set_code(&w, 6, "2580").await;
    w.net
        .set_faults(Faults {
            drop_callback: 1.0,
            ..Default::default()
        })
        .await
        .unwrap();
    w.engine.delete(&id).unwrap();
    tokio::time::sleep(Duration::from_secs(45)).await;
    assert_eq!(w.status(&id), "removing");
    // The daemon stops mid-removal (the old engine is gone: World::stop checks it).
    let ground = w.stop().await;
    ground.net.set_faults(Faults::default()).await.unwrap();
    let w = World::start(ground, quiet_config(), 6).await;
    w.until("gone after restart", Duration::from_secs(120), |w| {
        w.engine.get(&id).is_err()
    })
    .await;
    assert_eq!(w.pin_on_lock(6, slot).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_refused_code_is_tried_again_later_never_blocked() {
    let w = world().await;
    // This lock acknowledges codes and keeps none: a refusal seen only in the read-back.
    let id = w.create(7, "3691");
    w.until("refused", Duration::from_secs(60), |w| {
        issue_codes(w, &id)
            .0
            .contains(&"failed_to_set_on_device".to_string())
    })
    .await;
    assert_eq!(w.status(&id), "unset");
    let msg = &w.engine.get(&id).unwrap().errors[0].message;
    assert!(msg.contains("did not keep"), "{msg}");
    // Not hammered: nothing for a while...
    let n = w.commands_received(7).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(w.commands_received(7).await, n);
    // ...and tried again once the refusal backoff (an hour here) has passed.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(
        w.commands_received(7).await > n,
        "a refused code was never tried again"
    );
    // A new PIN is tried at once.
    let n = w.commands_received(7).await;
    w.engine
        .update(UpdateRequest {
            access_code_id: id,
            code: Some("8024".into()),
            ..Default::default()
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(w.commands_received(7).await > n);
}

#[tokio::test(start_paused = true)]
async fn every_code_waiting_for_a_slot_says_so() {
    let w = world().await;
    for pin in ["1001", "1002", "1003"] {
        set_code(&w, 6, pin).await;
    }
    let waiting: Vec<Uuid> = ["2001", "2002", "2003"]
        .iter()
        .map(|p| w.create(6, p))
        .collect();
    w.until("all waiting codes marked", Duration::from_secs(60), |w| {
        waiting.iter().all(|id| {
            issue_codes(w, id)
                .0
                .contains(&"no_space_for_access_code_on_device".to_string())
        })
    })
    .await;
    for id in &waiting {
        assert_eq!(w.status(id), "unset");
    }
}

#[tokio::test(start_paused = true)]
async fn an_outside_change_stays_reported_after_the_put_back() {
    let w = world().await;
    let (id, slot) = set_code(&w, 5, "4821").await;
    w.net
        .keypad(
            5,
            KeypadAction::Program {
                slot,
                pin: "1111".into(),
            },
        )
        .await
        .unwrap();
    w.until("put back", Duration::from_secs(120), |w| {
        w.status(&id) == "set" && !issue_codes(w, &id).0.is_empty()
    })
    .await;
    assert_eq!(w.pin_on_lock(5, slot).await.as_deref(), Some("4821"));
    // A client polling a minute later still sees what happened, with Seam's details.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let c = w.engine.get(&id).unwrap();
    let e = c
        .errors
        .iter()
        .find(|e| e.error_code == "code_modified_external_to_seam")
        .expect("the error stays after the put-back");
    assert_eq!(e.details["change_type"], "modified");
    assert_eq!(e.details["modified_fields"][0]["field"], "code");
    assert!(
        c.errors
            .iter()
            .any(|e| e.error_code == "conflicting_external_modification"),
        "Seam's current name too"
    );
    let json = serde_json::to_string(&c.errors).unwrap();
    assert!(
        !common::shows_pin(&json, "1111"),
        "no PIN in an error: {json}"
    );
    // It goes when its hold (a day) has passed...
    w.clock.set(start_time() + chrono::Duration::hours(25));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        issue_codes(&w, &id).0.is_empty(),
        "{:?}",
        issue_codes(&w, &id)
    );
    // ...or when the code is updated.
    w.net
        .keypad(5, KeypadAction::Delete { slot })
        .await
        .unwrap();
    w.until("put back again", Duration::from_secs(120), |w| {
        w.status(&id) == "set" && !issue_codes(w, &id).0.is_empty()
    })
    .await;
    let c = w.engine.get(&id).unwrap();
    assert_eq!(c.errors[0].details["change_type"], "removed");
    w.engine
        .update(UpdateRequest {
            access_code_id: id,
            name: Some(Some("renamed".into())),
            ..Default::default()
        })
        .unwrap();
    assert!(issue_codes(&w, &id).0.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_allowed_keypad_delete_releases_the_code() {
    let w = world().await;
    let (c, _) = w
        .engine
        .create(CreateRequest {
            device_id: w.device(5),
            code: Some("5150".into()),
            allow_external_modification: Some(true),
            ..Default::default()
        })
        .unwrap();
    let id = c.access_code_id;
    w.until("set", Duration::from_secs(60), |w| w.status(&id) == "set")
        .await;
    let slot = w.engine.get(&id).unwrap().slot.unwrap();
    w.net
        .keypad(5, KeypadAction::Delete { slot })
        .await
        .unwrap();
    w.until("released", Duration::from_secs(120), |w| {
        w.engine.get(&id).unwrap().slot.is_none()
    })
    .await;
    let c = w.engine.get(&id).unwrap();
    assert_eq!(c.status, "unset");
    let warn = c
        .warnings
        .iter()
        .find(|x| x.warning_code == "external_modification_in_effect")
        .expect("the change is in effect");
    assert_eq!(warn.details["change_type"], "removed");
    // Not put back, not blocked: its slot is free for another code.
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(w.pin_on_lock(5, slot).await, None);
    let (other, other_slot) = set_code(&w, 5, "6262").await;
    assert_eq!(other_slot, slot, "the released slot is reused");
    // Updated, it is declared again and goes back on the lock (in a free slot).
    w.engine
        .update(UpdateRequest {
            access_code_id: id,
            code: Some("7373".into()),
            ..Default::default()
        })
        .unwrap();
    w.until("declared again", Duration::from_secs(60), |w| {
        w.status(&id) == "set"
    })
    .await;
    assert_eq!(w.status(&other), "set");
}

#[tokio::test(start_paused = true)]
async fn codes_removed_while_the_daemon_was_down_are_put_back_at_start() {
    let w = world().await;
    let (front, front_slot) = set_code(&w, 5, "4821").await;
    let (back, back_slot) = set_code(&w, 6, "2580").await;
    let ground = w.stop().await;
    // While zwlock is down, someone deletes both at the keypads (the v1 lock says nothing).
    for (node, slot) in [(5, front_slot), (6, back_slot)] {
        ground
            .net
            .keypad(node, KeypadAction::ExternalWrite { slot, pin: None })
            .await
            .unwrap();
    }
    let before = [commands(&ground, 5).await, commands(&ground, 6).await];
    let w = World::start(ground, quiet_config(), 6).await;
    let t0 = tokio::time::Instant::now();
    loop {
        let a = w.pin_on_lock(5, front_slot).await;
        let b = w.pin_on_lock(6, back_slot).await;
        if a.as_deref() == Some("4821") && b.as_deref() == Some("2580") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "not put back within 2 minutes of the start: {a:?} {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for id in [front, back] {
        w.until("set", Duration::from_secs(30), |w| w.status(&id) == "set")
            .await;
        assert!(
            issue_codes(&w, &id)
                .0
                .contains(&"code_modified_external_to_seam".to_string()),
            "the put-back says why"
        );
    }
    // What verifying cost (the interview is served from the cache): a handful of frames.
    let after = [w.commands_received(5).await, w.commands_received(6).await];
    for (i, node) in [5, 6].iter().enumerate() {
        let spent = after[i] - before[i];
        assert!(
            spent <= 6,
            "node {node}: {spent} commands to verify and put back one code"
        );
    }
}

async fn commands(g: &Ground, node: u8) -> u64 {
    g.net
        .snapshot(node)
        .await
        .unwrap()
        .unwrap()
        .commands_received
}

#[tokio::test(start_paused = true)]
async fn a_refused_new_pin_does_not_leave_the_old_one_working() {
    let w = world().await;
    // Lock 8 hides its codes and refuses a PIN it already holds: zwlock cannot know slot 1's.
    let (id, slot) = set_code(&w, 8, "4444").await;
    w.engine
        .update(UpdateRequest {
            access_code_id: id,
            code: Some("7777".into()),
            ..Default::default()
        })
        .unwrap();
    w.until("refused as a duplicate", Duration::from_secs(60), |w| {
        issue_codes(w, &id)
            .0
            .contains(&"duplicate_code_on_device".to_string())
    })
    .await;
    assert_eq!(w.status(&id), "unset");
    // The old PIN was replaced by the user: it must not open the door any more.
    let t0 = tokio::time::Instant::now();
    while w.pin_on_lock(8, slot).await.is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the old PIN stayed on the lock"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!w
        .net
        .keypad(8, KeypadAction::Enter { pin: "4444".into() })
        .await
        .unwrap());
}

#[tokio::test(start_paused = true)]
async fn without_the_stick_intents_wait_and_network_work_is_refused() {
    let w = world().await;
    w.net.unplug().await.unwrap();
    w.until("stick gone", Duration::from_secs(30), |w| {
        !w.engine.hub_connected()
    })
    .await;
    let e = w.engine.exclude(None).unwrap_err();
    assert!(matches!(e, EngineError::NotConnected(_)), "{e}");
    // A code can still be declared; it waits for the stick and shows why.
    let id = w.create(5, "9090");
    let c = w.engine.get(&id).unwrap();
    assert!(
        c.errors.iter().any(|e| e.error_code == "hub_disconnected"),
        "{:?}",
        c.errors
    );
    w.net.plug().await.unwrap();
    w.until(
        "set once the stick is back",
        Duration::from_secs(120),
        |w| w.status(&id) == "set",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_refuses_for_lack_of_room_is_known_to_be_full() {
    let w = world().await;
    let (a, _) = set_code(&w, 9, "1001").await;
    set_code(&w, 9, "1002").await;
    let c = w.create(9, "1003");
    w.until("waiting for space", Duration::from_secs(60), |w| {
        issue_codes(w, &c)
            .0
            .contains(&"no_space_for_access_code_on_device".to_string())
    })
    .await;
    assert_eq!(w.status(&c), "unset");
    let d = w.engine.device_row(&w.device(9)).unwrap();
    assert_eq!(d.code_capacity, Some(2), "what the lock showed is kept");
    assert_eq!(
        w.engine.device_json(&d)["properties"]["max_active_codes_supported"],
        2
    );
    // Another code waits too, without being sent.
    let n = w.commands_received(9).await;
    let e = w.create(9, "1004");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(issue_codes(&w, &e)
        .0
        .contains(&"no_space_for_access_code_on_device".to_string()));
    assert_eq!(w.commands_received(9).await, n);
    // A code leaves: the oldest waiting one takes its place at once.
    w.engine.delete(&a).unwrap();
    w.until("placed", Duration::from_secs(60), |w| w.status(&c) == "set")
        .await;
    assert!(issue_codes(&w, &c).0.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_length_the_lock_refuses_is_not_offered_again() {
    let w = world().await;
    set_code(&w, 10, "1234").await;
    let long = w.create(10, "123456");
    w.until("refused", Duration::from_secs(60), |w| {
        issue_codes(w, &long)
            .0
            .contains(&"failed_to_set_on_device".to_string())
    })
    .await;
    let msg = &w.engine.get(&long).unwrap().errors[0].message;
    assert!(msg.contains("6-digit"), "{msg}");
    let d = w.engine.device_row(&w.device(10)).unwrap();
    assert_eq!(d.refused_code_lengths, vec![6]);
    // A new 6-digit code is refused before anything is sent, naming the field.
    let e = w
        .engine
        .create(CreateRequest {
            device_id: w.device(10),
            code: Some("654321".into()),
            ..Default::default()
        })
        .unwrap_err();
    match e {
        EngineError::Invalid(v) => assert_eq!(v[0].field, "code"),
        other => panic!("{other}"),
    }
    // Generated PINs avoid it.
    let (g, _) = w
        .engine
        .create(CreateRequest {
            device_id: w.device(10),
            preferred_code_length: Some(6),
            ..Default::default()
        })
        .unwrap();
    assert_ne!(g.code.as_deref().map(str::len), Some(6));
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_must_be_secure_and_cannot_be_gets_no_code() {
    const SECURE: &str = r#"
[[network]]
name = "t"
radio_ms = 20

[[network.lock]]
node_id = 5
name = "front"
slots = 10
security = "s2_access_control"
network_key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
"#;
    // This hub holds other keys than the ones the lock was included with.
    let mut ground = Ground::new(SECURE);
    let (keys, _) = zwlock::security::keys::NetworkKeys::import(
        "S2_AccessControl = 00112233445566778899aabbccddeeff",
    )
    .unwrap();
    ground.keys = Some(keys);
    let w = World::start(ground, quiet_config(), 1).await;
    let dev = w.device(5);
    w.until("the device says why", Duration::from_secs(120), |w| {
        let d = w.engine.device_row(&dev).unwrap();
        w.engine.device_json(&d)["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["error_code"] == "secure_inclusion_failed")
    })
    .await;
    let n = w.commands_received(5).await;
    let id = w.create(5, "4821");
    tokio::time::sleep(Duration::from_secs(600)).await;
    let c = w.engine.get(&id).unwrap();
    assert_ne!(c.status, "set");
    assert!(
        c.errors
            .iter()
            .any(|e| e.error_code == "secure_inclusion_failed"),
        "{:?}",
        c.errors
    );
    assert_eq!(
        w.commands_received(5).await,
        n,
        "nothing went to the lock, in clear or otherwise"
    );
}
