//! Seam's access-code model in the engine: codes linked by common_code_key share their PIN,
//! action attempts are pending until the lock has the change, and pending mutations say what
//! the lock has not caught up with, with the time each change was asked for.

mod common;

use std::time::Duration;

use common::world::{quiet_config, start_time, Ground, World};
use serde_json::Value;
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

[[network.lock]]
node_id = 6
name = "back"
user_code_version = 1
slots = 5
supervision = false
"#;

async fn world() -> World {
    World::start(Ground::new(NET), quiet_config(), 2).await
}

fn attempt_id(a: &Value) -> Uuid {
    a["action_attempt_id"].as_str().unwrap().parse().unwrap()
}

async fn attempt_done(w: &World, a: &Value) -> Value {
    let id = attempt_id(a);
    w.until("attempt done", Duration::from_secs(120), |w| {
        w.engine.action_attempt(&id).unwrap()["status"] != "pending"
    })
    .await;
    w.engine.action_attempt(&id).unwrap()
}

fn keyed(device: Uuid, key: &str, code: Option<&str>) -> CreateRequest {
    CreateRequest {
        device_id: device,
        common_code_key: Some(key.into()),
        code: code.map(str::to_string),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn codes_with_one_common_code_key_share_their_pin() {
    let w = world().await;
    let (a, _) = w
        .engine
        .create(keyed(w.device(5), "unit-12", None))
        .unwrap();
    let (b, _) = w
        .engine
        .create(keyed(w.device(6), "unit-12", None))
        .unwrap();
    assert_eq!(a.code, b.code, "the group's PIN is taken");
    assert_eq!(b.common_code_key.as_deref(), Some("unit-12"));
    // A different PIN for the group is refused, naming the field; the same PIN is fine.
    let e = w
        .engine
        .create(keyed(w.device(5), "unit-12", Some("9876")))
        .unwrap_err();
    match e {
        EngineError::Invalid(v) => assert_eq!(v[0].field, "code"),
        other => panic!("{other}"),
    }
    w.engine
        .create(keyed(w.device(6), "other-key", Some("9876")))
        .unwrap();
    // One code of the group cannot change its PIN alone.
    let e = w
        .engine
        .update(UpdateRequest {
            access_code_id: a.access_code_id,
            code: Some("2468".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(&e, EngineError::Invalid(v) if v[0].field == "code"),
        "{e}"
    );
    assert_eq!(w.engine.get(&a.access_code_id).unwrap().code, a.code);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_pending_until_the_lock_has_the_change() {
    let w = world().await;
    let (c, a) = w
        .engine
        .create(CreateRequest {
            device_id: w.device(6),
            code: Some("4821".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(a["status"], "pending");
    let done = attempt_done(&w, &a).await;
    assert_eq!(done["status"], "success");
    assert_eq!(done["result"]["access_code"]["status"], "set");
    let id = c.access_code_id;
    // A new PIN: updating_code with from/to, at the time of the update, until it lands.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (_, a) = w
        .engine
        .update(UpdateRequest {
            access_code_id: id,
            code: Some("5937".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(a["status"], "pending");
    let m = &w.engine.get(&id).unwrap().pending_mutations;
    assert_eq!(m[0]["mutation_code"], "updating_code", "{m:?}");
    assert_eq!(m[0]["from"]["code"], "4821");
    assert_eq!(m[0]["to"]["code"], "5937");
    assert_ne!(
        m[0]["created_at"].as_str(),
        Some(zwlock::codes::model::rfc3339(&c_created(&w, &id)).as_str()),
        "the change's time, not the code's"
    );
    assert_eq!(attempt_done(&w, &a).await["status"], "success");
    assert!(w.engine.get(&id).unwrap().pending_mutations.is_empty());
    // A name: nothing for the lock to do, done at once.
    let (_, a) = w
        .engine
        .update(UpdateRequest {
            access_code_id: id,
            name: Some(Some("cleaner".into())),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(a["status"], "success");
    // The window moves into the future: updating_time_frame (not deleting), then waiting.
    let (_, a) = w
        .engine
        .update(UpdateRequest {
            access_code_id: id,
            starts_at: Some(Some(start_time() + chrono::Duration::days(2))),
            ends_at: Some(Some(start_time() + chrono::Duration::days(3))),
            ..Default::default()
        })
        .unwrap();
    let codes: Vec<String> = w
        .engine
        .get(&id)
        .unwrap()
        .pending_mutations
        .iter()
        .map(|m| m["mutation_code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, ["updating_time_frame"]);
    assert_eq!(attempt_done(&w, &a).await["status"], "success");
    let c = w.engine.get(&id).unwrap();
    assert_eq!(c.status, "unset");
    assert_eq!(
        c.pending_mutations[0]["mutation_code"],
        "deferring_creation"
    );
    // Delete: pending until it is off the lock.
    let id2 = {
        let (c, a) = w
            .engine
            .create(CreateRequest {
                device_id: w.device(6),
                code: Some("7171".into()),
                ..Default::default()
            })
            .unwrap();
        attempt_done(&w, &a).await;
        c.access_code_id
    };
    let a = w.engine.delete(&id2).unwrap();
    assert_eq!(a["status"], "pending");
    let m = &w.engine.get(&id2).unwrap().pending_mutations;
    assert_eq!(m[0]["mutation_code"], "deleting");
    assert_eq!(attempt_done(&w, &a).await["status"], "success");
    assert!(w.engine.get(&id2).is_err());
}

fn c_created(w: &World, id: &Uuid) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(&w.engine.get(id).unwrap().created_at)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[tokio::test(start_paused = true)]
async fn an_attempt_the_engine_gives_up_on_ends_in_error_with_the_reason() {
    let w = world().await;
    w.net.set_in_range(6, false).await.unwrap();
    let (c, a) = w
        .engine
        .create(CreateRequest {
            device_id: w.device(6),
            code: Some("3825".into()),
            ..Default::default()
        })
        .unwrap();
    let done = attempt_done(&w, &a).await;
    assert_eq!(done["status"], "error");
    assert_eq!(done["error"]["type"], "failed_to_set_on_device");
    assert!(done["error"]["message"]
        .as_str()
        .unwrap()
        .contains("still retrying"));
    // The engine itself keeps going: back in range, the code lands.
    w.net.set_in_range(6, true).await.unwrap();
    w.until("set", Duration::from_secs(900), |w| {
        w.status(&c.access_code_id) == "set"
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn backup_codes_are_for_time_bound_codes_and_work_until_the_original_ends() {
    let w = world().await;
    let dev = w.device(5);
    let e = w
        .engine
        .create(CreateRequest {
            device_id: dev,
            use_backup_access_code_pool: Some(true),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(&e, EngineError::Invalid(v) if v[0].field == "use_backup_access_code_pool"),
        "{e}"
    );
    // A stay that starts tomorrow; the pool fills meanwhile.
    let starts = start_time() + chrono::Duration::days(1);
    let ends = starts + chrono::Duration::days(2);
    let (c, _) = w
        .engine
        .create(CreateRequest {
            device_id: dev,
            code: Some("4821".into()),
            starts_at: Some(starts),
            ends_at: Some(ends),
            use_backup_access_code_pool: Some(true),
            ..Default::default()
        })
        .unwrap();
    w.until("pool ready", Duration::from_secs(300), |w| {
        w.engine
            .get(&c.access_code_id)
            .unwrap()
            .is_backup_access_code_available
    })
    .await;
    let ongoing = w.create(5, "1357");
    let e = w.engine.pull_backup(&ongoing).unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::NotAllowed {
                kind: "access_code_not_time_bound",
                ..
            }
        ),
        "{e}"
    );
    // Pulled today, the backup works at once, though the stay starts tomorrow...
    let (_, backup) = w.engine.pull_backup(&c.access_code_id).unwrap();
    assert_eq!(backup.ends_at, c.ends_at);
    let slot = backup.slot.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(w.status(&backup.access_code_id), "set");
    assert_eq!(w.pin_on_lock(5, slot).await, backup.code);
    // ...and comes off the lock when the original ends.
    w.clock.set(ends + chrono::Duration::minutes(1));
    let t0 = tokio::time::Instant::now();
    while w.pin_on_lock(5, slot).await.is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the backup outlived the original"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn managed_and_unmanaged_codes_move_between_each_other_keeping_what_they_are() {
    use zwlock::sim::KeypadAction;
    let w = world().await;
    let dev = w.device(5);
    let id = w.create(5, "4821");
    w.until("set", Duration::from_secs(60), |w| w.status(&id) == "set")
        .await;
    let slot = w.engine.get(&id).unwrap().slot.unwrap();
    // Managed → unmanaged: the code stays on the lock under the same id; zwlock lets go.
    w.engine.unmanage(&id).unwrap();
    assert!(w.engine.get(&id).is_err());
    let u = w.engine.unmanaged_get(Some(&id), None).unwrap();
    assert_eq!(u.code.as_deref(), Some("4821"));
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(w.pin_on_lock(5, slot).await.as_deref(), Some("4821"));
    // Unmanaged → managed keeps its name.
    let name = u.name.clone();
    let c = w.engine.convert_to_managed(&id, false).unwrap();
    assert_eq!(c.name, name);
    // An unmanaged code being deleted never shows as a managed one.
    w.net
        .keypad(
            5,
            KeypadAction::Program {
                slot: 7,
                pin: "7070".into(),
            },
        )
        .await
        .unwrap();
    w.until("learnt", Duration::from_secs(60), |w| {
        w.engine
            .unmanaged(&dev)
            .unwrap()
            .iter()
            .any(|u| u.code.as_deref() == Some("7070"))
    })
    .await;
    let u = w
        .engine
        .unmanaged(&dev)
        .unwrap()
        .into_iter()
        .find(|u| u.code.as_deref() == Some("7070"))
        .unwrap();
    w.engine.delete_unmanaged(&u.access_code_id).unwrap();
    assert!(w.engine.get(&u.access_code_id).is_err());
    assert!(w
        .engine
        .list(&dev)
        .unwrap()
        .iter()
        .all(|c| c.access_code_id != u.access_code_id));
    // A clash that arises later: the same PIN programmed at the keypad in another slot.
    w.net
        .keypad(
            5,
            KeypadAction::Program {
                slot: 9,
                pin: "4821".into(),
            },
        )
        .await
        .unwrap();
    w.until("conflict named", Duration::from_secs(60), |w| {
        w.engine
            .get(&id)
            .unwrap()
            .errors
            .iter()
            .any(|e| e.error_code == "conflicting_unmanaged_access_code_id")
    })
    .await;
    let c = w.engine.get(&id).unwrap();
    let e = c
        .errors
        .iter()
        .find(|e| e.error_code == "conflicting_unmanaged_access_code_id")
        .unwrap();
    let other = w
        .engine
        .unmanaged(&dev)
        .unwrap()
        .into_iter()
        .find(|u| u.slot == 9)
        .unwrap();
    assert_eq!(
        e.details["unmanaged_access_code_id"],
        other.access_code_id.to_string()
    );
    // It goes when the clash does.
    w.net
        .keypad(5, KeypadAction::Delete { slot: 9 })
        .await
        .unwrap();
    w.until("conflict gone", Duration::from_secs(60), |w| {
        w.engine.get(&id).unwrap().errors.is_empty()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_sync_tells_how_far_it_is_and_what_it_found() {
    let mut w = world().await;
    let dev = w.device(6);
    w.drain_events();
    let mut events = w.engine.subscribe();
    let a = w.engine.sync_access_codes(&dev).unwrap();
    let done = attempt_done(&w, &a).await;
    assert_eq!(done["status"], "success");
    assert_eq!(done["result"]["slots_total"], 5);
    assert_eq!(done["result"]["slots_read"], 5);
    assert!(done["result"]["unmanaged_found"].is_number());
    let mut progress = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.event_type == "action_attempt.progress" {
            assert_eq!(e.payload["action_attempt_id"], a["action_attempt_id"]);
            progress.push((e.payload["done"].as_u64(), e.payload["total"].as_u64()));
        }
    }
    assert_eq!(progress.last(), Some(&(Some(5), Some(5))), "{progress:?}");
}

#[tokio::test(start_paused = true)]
async fn a_checksum_change_no_managed_slot_explains_is_learnt() {
    use zwlock::codes::watch::WatchConfig;
    use zwlock::codes::EngineConfig;
    use zwlock::sim::KeypadAction;
    const NET: &str = r#"
[[network]]
name = "t"
radio_ms = 20

[[network.lock]]
node_id = 5
name = "checksum, no bulk reports"
user_code_version = 2
checksum = true
bulk_reports = false
slots = 8
"#;
    let config = EngineConfig {
        watch: WatchConfig {
            checksum_interval: Duration::from_secs(600),
            full_read_on_first_sight: true,
            ..WatchConfig::default()
        },
        ..quiet_config()
    };
    let w = World::start(Ground::new(NET), config, 1).await;
    let id = w.create(5, "4821");
    w.until("set", Duration::from_secs(120), |w| w.status(&id) == "set")
        .await;
    let dev = w.device(5);
    tokio::time::sleep(Duration::from_secs(60)).await;
    // Another controller writes an unmanaged slot, silently.
    w.net
        .keypad(
            5,
            KeypadAction::ExternalWrite {
                slot: 6,
                pin: Some("9090".into()),
            },
        )
        .await
        .unwrap();
    w.until(
        "learnt at the next checksum poll",
        Duration::from_secs(1800),
        |w| {
            w.engine
                .unmanaged(&dev)
                .unwrap()
                .iter()
                .any(|u| u.slot == 6 && u.code.as_deref() == Some("9090"))
        },
    )
    .await;
    assert_eq!(w.status(&id), "set", "the managed code was not disturbed");
}

#[tokio::test(start_paused = true)]
async fn a_code_the_lock_reports_disabled_is_not_shown_as_set() {
    use zwlock::codes::watch::WatchConfig;
    use zwlock::codes::EngineConfig;
    const NET: &str = r#"
[[network]]
name = "t"
radio_ms = 20

[[network.lock]]
node_id = 5
name = "front"
user_code_version = 1
slots = 4
initial_codes = [{ slot = 1, code = "1111" }, { slot = 2, code = "2222", disabled = true }]
"#;
    let config = EngineConfig {
        watch: WatchConfig {
            full_read_on_first_sight: true,
            ..WatchConfig::default()
        },
        ..quiet_config()
    };
    let w = World::start(Ground::new(NET), config, 1).await;
    let dev = w.device(5);
    w.until("both learnt", Duration::from_secs(120), |w| {
        w.engine.unmanaged(&dev).unwrap().len() == 2
    })
    .await;
    let u = w.engine.unmanaged(&dev).unwrap();
    let by_slot = |s: u16| u.iter().find(|c| c.slot == s).unwrap().status;
    assert_eq!(by_slot(1), "set");
    assert_eq!(
        by_slot(2),
        "unset",
        "disabled on the lock: there, but it does not open"
    );
}

#[tokio::test(start_paused = true)]
async fn a_keypad_change_told_with_its_report_costs_no_read() {
    use zwlock::sim::KeypadAction;
    const NET: &str = r#"
[[network]]
name = "t"
radio_ms = 20

[[network.lock]]
node_id = 5
name = "front"
user_code_version = 2
slots = 10
[network.lock.quirks]
report_after_notification = true
"#;
    let w = World::start(Ground::new(NET), quiet_config(), 1).await;
    let dev = w.device(5);
    let id = w.create(5, "4821");
    w.until("set", Duration::from_secs(60), |w| w.status(&id) == "set")
        .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let before = w.commands_received(5).await;
    w.net
        .keypad(
            5,
            KeypadAction::Program {
                slot: 7,
                pin: "7070".into(),
            },
        )
        .await
        .unwrap();
    w.until("learnt", Duration::from_secs(60), |w| {
        w.engine
            .unmanaged(&dev)
            .unwrap()
            .iter()
            .any(|u| u.slot == 7 && u.code.as_deref() == Some("7070"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        w.commands_received(5).await,
        before,
        "the notification and the report said it all: no read"
    );
}
