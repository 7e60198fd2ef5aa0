//! The access-code engine against the simulator, on a paused clock with a controlled wall clock.

mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::world::{quiet_config, start_time, Ground, World};
use uuid::Uuid;
use zwlock::codes::{CreateRequest, EngineError, UpdateRequest};

const NET: &str = r#"
[[network]]
name = "t"
radio_ms = 20

[[network.lock]]
node_id = 5
name = "front"
user_code_version = 2
slots = 10
initial_codes = [{ slot = 1, code = "1357" }]

[[network.lock]]
node_id = 6
name = "back"
user_code_version = 1
slots = 3
supervision = false
notification = "alarm"

[[network.lock]]
node_id = 7
name = "fussy"
user_code_version = 2
slots = 10
initial_codes = [{ slot = 1, code = "1111" }]
[network.lock.quirks]
masked_reports = true
reject_duplicates = true
capacity = 2
"#;

async fn world() -> World {
    World::start(Ground::new(NET), quiet_config(), 3).await
}

#[tokio::test(start_paused = true)]
async fn create_sets_the_code_and_events_tell_the_story() {
    let mut w = world().await;
    let id = w.create(5, "4821");
    let c = w.engine.get(&id).unwrap();
    assert_eq!(c.code_type, "ongoing");
    assert!(c.is_managed);
    assert!(c.appearance.is_none());
    w.until("set", Duration::from_secs(30), |w| w.status(&id) == "set")
        .await;
    let c = w.engine.get(&id).unwrap();
    // Slot 1 holds an unmanaged code: the lowest free slot is 2.
    assert_eq!(c.slot, Some(2));
    assert_eq!(w.pin_on_lock(5, 2).await.as_deref(), Some("4821"));
    assert!(c.errors.is_empty() && c.warnings.is_empty());
    let ev = w.drain_events();
    assert!(ev.contains(&"access_code.created".to_string()), "{ev:?}");
    assert!(
        ev.contains(&"access_code.set_on_device".to_string()),
        "{ev:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn update_and_delete() {
    let mut w = world().await;
    let id = w.create(5, "4821");
    w.until("set", Duration::from_secs(30), |w| w.status(&id) == "set")
        .await;
    // A new name: nothing to send.
    let before = w.net.snapshot(5).await.unwrap().unwrap().commands_received;
    w.engine
        .update(UpdateRequest {
            access_code_id: id,
            name: Some(Some("Guest 12".into())),
            ..Default::default()
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        w.net.snapshot(5).await.unwrap().unwrap().commands_received,
        before
    );
    assert_eq!(w.engine.get(&id).unwrap().name.as_deref(), Some("Guest 12"));
    // A new PIN: programmed again in the same slot.
    w.engine
        .update(UpdateRequest {
            access_code_id: id,
            code: Some("5937".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(w.status(&id), "unset");
    w.until("re-set", Duration::from_secs(30), |w| {
        w.status(&id) == "set"
    })
    .await;
    assert_eq!(w.pin_on_lock(5, 2).await.as_deref(), Some("5937"));
    // Delete: removed from the lock, then gone.
    w.drain_events();
    w.engine.delete(&id).unwrap();
    assert_eq!(w.status(&id), "removing");
    w.until("gone", Duration::from_secs(30), |w| {
        w.engine.get(&id).is_err()
    })
    .await;
    assert!(matches!(
        w.engine.get(&id),
        Err(EngineError::NotFound { .. })
    ));
    assert_eq!(w.pin_on_lock(5, 2).await, None);
    let ev = w.drain_events();
    assert_eq!(
        ev,
        vec!["access_code.deleted", "access_code.removed_from_device"],
        "{ev:?}"
    );
    // Bad updates change nothing.
    let id2 = w.create(5, "2468");
    let e = w
        .engine
        .update(UpdateRequest {
            access_code_id: id2,
            code: Some("12".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, EngineError::Invalid(_)), "{e}");
    assert_eq!(w.engine.get(&id2).unwrap().code.as_deref(), Some("2468"));
}

#[tokio::test(start_paused = true)]
async fn time_bound_codes_follow_their_window() {
    let mut w = world().await;
    let h = chrono::Duration::hours(1);
    let (c, _) = w
        .engine
        .create(CreateRequest {
            device_id: w.device(5),
            code: Some("7391".into()),
            starts_at: Some(start_time() + h),
            ends_at: Some(start_time() + h * 3),
            ..Default::default()
        })
        .unwrap();
    let id = c.access_code_id;
    assert_eq!(c.code_type, "time_bound");
    assert_eq!(c.status, "unset");
    assert_eq!(
        c.pending_mutations[0]["mutation_code"],
        "deferring_creation"
    );
    tokio::time::sleep(Duration::from_secs(1800)).await;
    assert_eq!(w.status(&id), "unset");
    assert!(w
        .net
        .snapshot(5)
        .await
        .unwrap()
        .unwrap()
        .slots
        .iter()
        .all(|s| s.code != "7391"));
    // The window opens.
    tokio::time::sleep(Duration::from_secs(1800 + 60)).await;
    assert_eq!(w.status(&id), "set");
    let slot = w.engine.get(&id).unwrap().slot.unwrap();
    assert_eq!(w.pin_on_lock(5, slot).await.as_deref(), Some("7391"));
    // And closes: removed, then gone.
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    assert!(w.engine.get(&id).is_err());
    assert_eq!(w.pin_on_lock(5, slot).await, None);
    let ev = w.drain_events();
    assert!(
        ev.ends_with(&[
            "access_code.set_on_device".to_string(),
            "access_code.removed_from_device".to_string()
        ]),
        "{ev:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unsynchronised_clock_is_never_acted_on() {
    let w = world().await;
    // The hub booted without an RTC: 1970, not synchronised.
    w.clock
        .set(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 10).unwrap());
    w.clock.set_synchronized(false);
    // A code created earlier for a window that (in 1970 terms) is "in the future": nothing moves.
    let id = {
        w.clock.set(start_time());
        w.clock.set_synchronized(true);
        let (c, _) = w
            .engine
            .create(CreateRequest {
                device_id: w.device(5),
                code: Some("8264".into()),
                starts_at: Some(start_time() - chrono::Duration::minutes(1)),
                ends_at: Some(start_time() + chrono::Duration::hours(2)),
                ..Default::default()
            })
            .unwrap();
        w.clock
            .set(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 10).unwrap());
        w.clock.set_synchronized(false);
        c.access_code_id
    };
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        w.status(&id),
        "unset",
        "acted on a clock that is not synchronised"
    );
    // An ongoing code does not depend on the clock.
    let ongoing = w.create(5, "9153");
    w.until("ongoing set", Duration::from_secs(60), |w| {
        w.status(&ongoing) == "set"
    })
    .await;
    // NTP syncs: the wall clock jumps to now; the window is open.
    w.clock.set(start_time() + chrono::Duration::minutes(5));
    w.clock.set_synchronized(true);
    w.until("time-bound set after sync", Duration::from_secs(90), |w| {
        w.status(&id) == "set"
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_full_lock_keeps_the_code_unset_until_a_slot_frees() {
    let w = world().await;
    let a = w.create(6, "2580");
    let b = w.create(6, "3690");
    let c = w.create(6, "4703");
    w.until("three set", Duration::from_secs(60), |w| {
        [a, b, c].iter().all(|i| w.status(i) == "set")
    })
    .await;
    let d = w.create(6, "5816");
    w.until("no space", Duration::from_secs(30), |w| {
        w.engine
            .get(&d)
            .unwrap()
            .errors
            .iter()
            .any(|e| e.error_code == "no_space_for_access_code_on_device")
    })
    .await;
    assert_eq!(w.status(&d), "unset");
    let msg = &w.engine.get(&d).unwrap().errors[0].message;
    assert!(msg.contains("3 slots"), "{msg}");
    let freed = w.engine.get(&b).unwrap().slot;
    w.engine.delete(&b).unwrap();
    w.until("placed", Duration::from_secs(60), |w| w.status(&d) == "set")
        .await;
    assert!(w.engine.get(&d).unwrap().errors.is_empty());
    assert_eq!(w.engine.get(&d).unwrap().slot, freed);
}

#[tokio::test(start_paused = true)]
async fn duplicate_pins_are_refused_before_and_by_the_lock() {
    let w = world().await;
    // Before: the same PIN as a managed code on the lock.
    let first = w.create(5, "6142");
    let e = w
        .engine
        .create(CreateRequest {
            device_id: w.device(5),
            code: Some("6142".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::Conflict {
                kind: "duplicate_access_code",
                ..
            }
        ),
        "{e}"
    );
    // The same PIN on another lock is fine.
    w.create(6, "6142");
    // The lock itself refuses a PIN it already holds (masked, so zwlock could not know).
    let dup = w.create(7, "1111");
    w.until("duplicate", Duration::from_secs(60), |w| {
        w.engine
            .get(&dup)
            .unwrap()
            .errors
            .iter()
            .any(|e| e.error_code == "duplicate_code_on_device")
    })
    .await;
    assert_eq!(w.status(&dup), "unset");
    // Not retried blindly.
    let n = w.net.snapshot(7).await.unwrap().unwrap().commands_received;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        w.net.snapshot(7).await.unwrap().unwrap().commands_received,
        n
    );
    // A new PIN clears the refusal.
    w.engine
        .update(UpdateRequest {
            access_code_id: dup,
            code: Some("9246".into()),
            ..Default::default()
        })
        .unwrap();
    w.until("set after change", Duration::from_secs(60), |w| {
        w.status(&dup) == "set"
    })
    .await;
    assert!(w.engine.get(&dup).unwrap().errors.is_empty());
    assert_eq!(w.status(&first), "set");
}

#[tokio::test(start_paused = true)]
async fn a_silent_lock_gets_a_delay_warning_then_an_error_and_recovers() {
    let mut w = world().await;
    w.net.set_in_range(5, false).await.unwrap();
    let id = w.create(5, "3825");
    w.until("warning", Duration::from_secs(600), |w| {
        w.engine
            .get(&id)
            .unwrap()
            .warnings
            .iter()
            .any(|x| x.warning_code == "delay_in_setting_on_device")
    })
    .await;
    w.until("error", Duration::from_secs(1200), |w| {
        w.engine
            .get(&id)
            .unwrap()
            .errors
            .iter()
            .any(|x| x.error_code == "failed_to_set_on_device")
    })
    .await;
    let c = w.engine.get(&id).unwrap();
    assert_eq!(c.status, "setting");
    // The device-level condition is copied onto the code.
    assert!(
        c.errors
            .iter()
            .any(|x| x.error_code == "device_disconnected" && x.is_device_error == Some(true)),
        "{:?}",
        c.errors
    );
    // Another lock is not held up meanwhile.
    let other = w.create(6, "7193");
    w.until("other lock set", Duration::from_secs(60), |w| {
        w.status(&other) == "set"
    })
    .await;
    // Back in range: set, and the warning and error clear.
    w.net.set_in_range(5, true).await.unwrap();
    w.until("recovered", Duration::from_secs(900), |w| {
        w.status(&id) == "set"
    })
    .await;
    let c = w.engine.get(&id).unwrap();
    assert!(
        c.errors.is_empty() && c.warnings.is_empty(),
        "{:?} {:?}",
        c.errors,
        c.warnings
    );
    let ev = w.drain_events();
    for t in [
        "access_code.delay_in_setting_on_device",
        "access_code.failed_to_set_on_device",
        "access_code.set_on_device",
    ] {
        assert!(ev.iter().any(|e| e == t), "{t} missing from {ev:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_code_that_ended_while_the_daemon_was_down_is_removed_at_once() {
    let w = world().await;
    let (c, _) = w
        .engine
        .create(CreateRequest {
            device_id: w.device(5),
            code: Some("4682".into()),
            starts_at: Some(start_time() - chrono::Duration::minutes(1)),
            ends_at: Some(start_time() + chrono::Duration::hours(1)),
            ..Default::default()
        })
        .unwrap();
    let id = c.access_code_id;
    w.until("set", Duration::from_secs(60), |w| w.status(&id) == "set")
        .await;
    let slot = w.engine.get(&id).unwrap().slot.unwrap();
    // Stop the daemon; two hours later it starts again.
    let ground = w.stop().await;
    ground.clock.set(start_time() + chrono::Duration::hours(2));
    let w = World::start(ground, quiet_config(), 3).await;
    let engine = &w.engine;
    let t0 = tokio::time::Instant::now();
    while engine.get(&id).is_ok() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not removed after restart"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(w.pin_on_lock(5, slot).await, None);
}

#[tokio::test(start_paused = true)]
async fn invalid_creates_store_nothing() {
    let w = world().await;
    let dev = w.device(5);
    let bad = [
        CreateRequest {
            device_id: dev,
            code: Some("12a4".into()),
            ..Default::default()
        },
        CreateRequest {
            device_id: dev,
            code: Some("123".into()),
            ..Default::default()
        },
        CreateRequest {
            device_id: dev,
            code: Some("12345678901".into()),
            ..Default::default()
        },
        CreateRequest {
            device_id: dev,
            starts_at: Some(start_time()),
            ..Default::default()
        },
        CreateRequest {
            device_id: dev,
            starts_at: Some(start_time() + chrono::Duration::hours(2)),
            ends_at: Some(start_time() + chrono::Duration::hours(1)),
            ..Default::default()
        },
        CreateRequest {
            device_id: dev,
            starts_at: Some(start_time() - chrono::Duration::hours(2)),
            ends_at: Some(start_time() - chrono::Duration::hours(1)),
            ..Default::default()
        },
        CreateRequest {
            device_id: dev,
            name: Some("x".repeat(500)),
            ..Default::default()
        },
        CreateRequest {
            device_id: dev,
            is_offline_access_code: Some(true),
            ..Default::default()
        },
        CreateRequest {
            device_id: dev,
            preferred_code_length: Some(2),
            ..Default::default()
        },
    ];
    for req in bad {
        let e = w.engine.create(req).unwrap_err();
        assert!(matches!(e, EngineError::Invalid(_)), "{e}");
    }
    let e = w
        .engine
        .create(CreateRequest {
            device_id: Uuid::new_v4(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, EngineError::NotFound { what: "device", .. }));
    assert!(w.engine.list(&dev).unwrap().is_empty());
    // Without a code, one is generated: valid, not trivial.
    let (c, attempt) = w
        .engine
        .create(CreateRequest {
            device_id: dev,
            preferred_code_length: Some(6),
            ..Default::default()
        })
        .unwrap();
    let pin = c.code.unwrap();
    assert_eq!(pin.len(), 6);
    assert!(!zwlock::codes::validate::is_trivial(&pin));
    // The attempt tells the truth: pending until the lock has the code, then success with it.
    assert_eq!(attempt["status"], "pending");
    assert_eq!(attempt["action_type"], "CREATE_ACCESS_CODE");
    assert_eq!(c.status, "setting");
    assert_eq!(c.pending_mutations[0]["mutation_code"], "creating");
    let id: uuid::Uuid = attempt["action_attempt_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    w.until("attempt done", Duration::from_secs(60), |w| {
        w.engine.action_attempt(&id).unwrap()["status"] == "success"
    })
    .await;
    let a = w.engine.action_attempt(&id).unwrap();
    assert_eq!(a["result"]["access_code"]["status"], "set");
}

const SECURE_NET: &str = r#"
[[network]]
name = "t"
radio_ms = 20

[[network.lock]]
node_id = 5
name = "front"
slots = 10
initial_codes = [{ slot = 1, code = "1357" }]
security = "s2_access_control"
network_key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
"#;

#[tokio::test(start_paused = true)]
async fn codes_reach_a_lock_that_only_speaks_s2() {
    let mut ground = Ground::new(SECURE_NET);
    let (keys, _) = zwlock::security::keys::NetworkKeys::import(
        "S2_AccessControl = 0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    )
    .unwrap();
    ground.keys = Some(keys);
    let w = World::start(ground, quiet_config(), 1).await;
    let id = w.create(5, "4821");
    w.until("set", Duration::from_secs(120), |w| w.status(&id) == "set")
        .await;
    let slot = w.engine.get(&id).unwrap().slot.unwrap();
    assert_eq!(w.pin_on_lock(5, slot).await.as_deref(), Some("4821"));
    w.engine.delete(&id).unwrap();
    w.until("removed", Duration::from_secs(120), |w| {
        w.engine.get(&id).is_err()
    })
    .await;
    assert_eq!(w.pin_on_lock(5, slot).await, None);
}
