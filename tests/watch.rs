//! Codes changed outside zwlock, unmanaged codes, one-time codes, the backup pool and shared
//! codes: the engine against the simulator with watching on.

mod common;

use std::time::Duration;

use common::world::{quiet_config, start_time, Ground, World};
use uuid::Uuid;
use zwlock::codes::watch::WatchConfig;
use zwlock::codes::{CreateRequest, EngineConfig, EngineError, WhenCannotShare};
use zwlock::sim::KeypadAction;

const NET: &str = r#"
[[network]]
name = "t"
radio_ms = 20

# v2 with checksum and bulk reports; tells about keypad changes.
[[network.lock]]
node_id = 5
name = "front"
slots = 20
initial_codes = [{ slot = 1, code = "1357" }, { slot = 4, code = "2468" }]

# v1, says nothing about changes.
[[network.lock]]
node_id = 6
name = "back"
user_code_version = 1
slots = 10
supervision = false
notification = "none"

# v2 with checksum, says nothing about changes.
[[network.lock]]
node_id = 7
name = "garage"
slots = 10
notification = "none"

# v2 that hides its codes in reports.
[[network.lock]]
node_id = 8
name = "side"
slots = 10
[network.lock.quirks]
masked_reports = true

# Enforces schedules itself (Schedule Entry Lock, Time Parameters).
[[network.lock]]
node_id = 9
name = "office"
slots = 10
schedule_entry_lock = true
"#;

const LOCKS: usize = 5;

fn watching() -> EngineConfig {
    EngineConfig {
        watch: WatchConfig {
            poll_frames_per_hour: 60,
            checksum_interval: Duration::from_secs(10 * 60),
            full_read_on_first_sight: true,
            startup_verify_reads: 30,
        },
        ..quiet_config()
    }
}

async fn world() -> World {
    World::start(Ground::new(NET), watching(), LOCKS).await
}

impl World {
    /// Create a code and wait until it is on the lock; returns its id and slot.
    async fn create_set(&self, req: CreateRequest) -> (Uuid, u16) {
        let (c, _) = self.engine.create(req).unwrap();
        let id = c.access_code_id;
        self.until("code set", Duration::from_secs(120), |w| {
            w.status(&id) == "set"
        })
        .await;
        (id, self.engine.get(&id).unwrap().slot.unwrap())
    }

    fn req(&self, node: u16, pin: &str) -> CreateRequest {
        CreateRequest {
            device_id: self.device(node),
            code: Some(pin.into()),
            name: Some(format!("code on {node}")),
            ..Default::default()
        }
    }

    async fn keypad(&self, node: u8, action: KeypadAction) -> bool {
        self.net.keypad(node, action).await.unwrap()
    }

    fn error_codes(&self, id: &Uuid) -> Vec<String> {
        let c = self.engine.get(id).unwrap();
        c.errors.into_iter().map(|e| e.error_code).collect()
    }

    fn warning_codes(&self, id: &Uuid) -> Vec<String> {
        let c = self.engine.get(id).unwrap();
        c.warnings.into_iter().map(|e| e.warning_code).collect()
    }

    /// Wait until the lock holds `pin` in `slot` (or the slot is empty for `None`).
    async fn until_on_lock(&self, node: u8, slot: u16, pin: Option<&str>, max: Duration) {
        let t0 = tokio::time::Instant::now();
        while t0.elapsed() < max {
            if self.pin_on_lock(node, slot).await.as_deref() == pin {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("slot {slot} of node {node} never held the expected code");
    }

    /// Wait until the lock holds exactly `n` codes.
    async fn until_occupied(&self, node: u8, n: usize, max: Duration) {
        let t0 = tokio::time::Instant::now();
        let mut held = 0;
        while t0.elapsed() < max {
            held = self.net.snapshot(node).await.unwrap().unwrap().slots.len();
            if held == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("node {node} holds {held} codes, not {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_full_read_shows_keypad_codes_as_unmanaged() {
    let w = world().await;
    let dev = w.device(5);
    w.until("unmanaged codes learnt", Duration::from_secs(120), |w| {
        w.engine.unmanaged(&dev).unwrap().len() == 2
    })
    .await;
    let mut pins: Vec<(u16, Option<String>)> = w
        .engine
        .unmanaged(&dev)
        .unwrap()
        .into_iter()
        .map(|u| (u.slot, u.code))
        .collect();
    pins.sort();
    assert_eq!(
        pins,
        vec![(1, Some("1357".into())), (4, Some("2468".into()))]
    );
    // 20 slots read in bulk: a handful of frames, not one per slot.
    let spent = w.commands_received(5).await;
    assert!(spent < 20, "full read of 20 slots took {spent} commands");
    // A managed code cannot take an unmanaged code's PIN ...
    let err = w.engine.create(w.req(5, "2468")).unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Conflict {
                kind: "conflicting_unmanaged_access_code_id",
                ..
            }
        ),
        "{err:?}"
    );
    // ... and one deleted from the lock is gone from the lock and the list.
    let slot4 = w
        .engine
        .unmanaged(&dev)
        .unwrap()
        .into_iter()
        .find(|u| u.slot == 4)
        .unwrap();
    w.engine.delete_unmanaged(&slot4.access_code_id).unwrap();
    w.until_on_lock(5, 4, None, Duration::from_secs(60)).await;
    w.until("unmanaged list updated", Duration::from_secs(30), |w| {
        w.engine.unmanaged(&dev).unwrap().len() == 1
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_keypad_change_with_a_notification_is_read_and_put_back() {
    let mut w = world().await;
    let (id, slot) = w.create_set(w.req(5, "4821")).await;
    w.drain_events();
    let before = w.commands_received(5).await;
    w.keypad(
        5,
        KeypadAction::Program {
            slot,
            pin: "9090".into(),
        },
    )
    .await;
    assert_eq!(w.pin_on_lock(5, slot).await.as_deref(), Some("9090"));
    w.until_on_lock(5, slot, Some("4821"), Duration::from_secs(60))
        .await;
    w.until("set again", Duration::from_secs(30), |w| {
        w.status(&id) == "set"
    })
    .await;
    let events = w.drain_events();
    assert!(
        events.contains(&"access_code.modified_external_to_seam".to_string()),
        "{events:?}"
    );
    // One read of that slot, then the set (and its verification): not a sweep.
    let spent = w.commands_received(5).await - before;
    assert!(spent <= 4, "{spent} commands to notice and undo one change");

    // Deleted at the keypad: put back too.
    w.keypad(5, KeypadAction::Delete { slot }).await;
    w.until_on_lock(5, slot, Some("4821"), Duration::from_secs(60))
        .await;
    let events = w.drain_events();
    assert!(
        events.contains(&"access_code.deleted_external_to_seam".to_string()),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_change_on_a_checksum_lock_is_found_by_the_checksum() {
    let mut w = world().await;
    let (a, slot_a) = w.create_set(w.req(7, "4821")).await;
    let (_b, slot_b) = w.create_set(w.req(7, "5937")).await;
    // Let the checksum baseline settle: a poll finds nothing to read.
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    w.drain_events();
    w.keypad(
        7,
        KeypadAction::ExternalWrite {
            slot: slot_a,
            pin: Some("7777".into()),
        },
    )
    .await;
    // Within one checksum interval (10 min) and a bit.
    w.until_on_lock(7, slot_a, Some("4821"), Duration::from_secs(15 * 60))
        .await;
    assert_eq!(w.pin_on_lock(7, slot_b).await.as_deref(), Some("5937"));
    let events = w.drain_events();
    assert!(
        events.contains(&"access_code.modified_external_to_seam".to_string()),
        "{events:?}"
    );
    w.until("set again", Duration::from_secs(30), |w| {
        w.status(&a) == "set"
    })
    .await;
    // Quiet again: an hour of polling is one checksum per interval.
    let before = w.commands_received(7).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let spent = w.commands_received(7).await - before;
    assert!(
        (5..=7).contains(&spent),
        "{spent} commands in an hour of checksum polls every 10 min"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_change_on_a_v1_lock_is_found_round_robin() {
    let mut w = world().await;
    let (_a, slot_a) = w.create_set(w.req(6, "4821")).await;
    let (_b, slot_b) = w.create_set(w.req(6, "5937")).await;
    w.drain_events();
    w.keypad(
        6,
        KeypadAction::ExternalWrite {
            slot: slot_b,
            pin: None,
        },
    )
    .await;
    // 60 reads an hour over two managed slots: each is verified within two minutes.
    w.until_on_lock(6, slot_b, Some("5937"), Duration::from_secs(5 * 60))
        .await;
    assert_eq!(w.pin_on_lock(6, slot_a).await.as_deref(), Some("4821"));
    let events = w.drain_events();
    assert!(
        events.contains(&"access_code.deleted_external_to_seam".to_string()),
        "{events:?}"
    );
    // The budget holds: about one read a minute, only of the managed slots.
    let before = w.commands_received(6).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let spent = w.commands_received(6).await - before;
    assert!(
        (55..=62).contains(&spent),
        "{spent} reads in an hour at 60 per hour"
    );
}

#[tokio::test(start_paused = true)]
async fn a_factory_reset_brings_every_managed_code_back() {
    let mut w = world().await;
    let dev = w.device(5);
    w.until("unmanaged codes learnt", Duration::from_secs(120), |w| {
        w.engine.unmanaged(&dev).unwrap().len() == 2
    })
    .await;
    let mut codes = Vec::new();
    for pin in ["4821", "5937", "6048"] {
        codes.push((pin, w.create_set(w.req(5, pin)).await.1));
    }
    w.drain_events();
    w.keypad(5, KeypadAction::FactoryReset).await;
    for (pin, slot) in &codes {
        w.until_on_lock(5, *slot, Some(pin), Duration::from_secs(120))
            .await;
    }
    // The keypad codes went with the reset, and zwlock knows.
    assert!(w.engine.unmanaged(&dev).unwrap().is_empty());
    assert_eq!(w.pin_on_lock(5, 1).await, None);
    let events = w.drain_events();
    let put_back = events
        .iter()
        .filter(|e| *e == "access_code.deleted_external_to_seam")
        .count();
    assert_eq!(put_back, 3, "{events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "access_code.unmanaged.removed")
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn an_allowed_outside_change_is_a_warning_and_stands() {
    let w = world().await;
    let mut req = w.req(5, "4821");
    req.allow_external_modification = Some(true);
    let (id, slot) = w.create_set(req).await;
    assert!(w.engine.get(&id).unwrap().is_external_modification_allowed);
    w.keypad(
        5,
        KeypadAction::Program {
            slot,
            pin: "9090".into(),
        },
    )
    .await;
    w.until("warning", Duration::from_secs(60), |w| {
        w.warning_codes(&id)
            .contains(&"code_modified_external_to_seam".to_string())
    })
    .await;
    let c = w.engine.get(&id).unwrap();
    assert_eq!(c.code.as_deref(), Some("9090"), "the code follows the lock");
    assert_eq!(c.status, "set");
    assert!(w.error_codes(&id).is_empty());
    // zwlock does not fight: an hour later the lock still holds the keypad's PIN.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(w.pin_on_lock(5, slot).await.as_deref(), Some("9090"));
}

#[tokio::test(start_paused = true)]
async fn a_masked_read_back_is_not_a_modification() {
    let mut w = world().await;
    let (id, slot) = w.create_set(w.req(8, "4821")).await;
    w.drain_events();
    // Full reads, checksum polls and a keypad notification about the slot: every read of
    // it comes back masked.
    w.engine.request_full_read(&w.device(8));
    w.keypad(
        8,
        KeypadAction::Program {
            slot: slot + 1,
            pin: "3141".into(),
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    let events = w.drain_events();
    assert!(
        !events.iter().any(|e| e.contains("external_to_seam")),
        "{events:?}"
    );
    assert!(w.error_codes(&id).is_empty());
    assert!(w.warning_codes(&id).is_empty());
    assert_eq!(w.status(&id), "set");
    assert_eq!(w.pin_on_lock(8, slot).await.as_deref(), Some("4821"));
}

#[tokio::test(start_paused = true)]
async fn a_one_time_code_comes_off_the_lock_after_its_first_use() {
    let mut w = world().await;
    let mut req = w.req(5, "4821");
    req.is_one_time_use = Some(true);
    let (id, slot) = w.create_set(req).await;
    w.drain_events();
    assert!(
        w.keypad(5, KeypadAction::Enter { pin: "4821".into() })
            .await,
        "the code opens the lock once"
    );
    w.until_on_lock(5, slot, None, Duration::from_secs(60))
        .await;
    let c = w.engine.get(&id).unwrap();
    assert!(c.used_at.is_some(), "the record shows it was used");
    assert!(c.is_one_time_use);
    let events = w.drain_events();
    for e in ["lock.unlocked", "access_code.used"] {
        assert!(events.contains(&e.to_string()), "{e} missing: {events:?}");
    }
    assert!(
        !w.keypad(5, KeypadAction::Enter { pin: "4821".into() })
            .await,
        "not twice"
    );
    // Not put back by the watchers either.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(w.pin_on_lock(5, slot).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_backup_code_is_pulled_and_the_pool_refilled() {
    let mut w = world().await;
    let mut req = w.req(5, "4821");
    // The pool is for time-bound codes (as in Seam).
    req.starts_at = Some(start_time() - chrono::Duration::minutes(1));
    req.ends_at = Some(start_time() + chrono::Duration::days(2));
    req.use_backup_access_code_pool = Some(true);
    let (id, _) = w.create_set(req).await;
    // Spares are not listed (as in Seam): count what the lock holds instead. Two keypad
    // codes, the code, two spares.
    w.until("pool programmed", Duration::from_secs(120), |w| {
        w.engine.get(&id).unwrap().is_backup_access_code_available
    })
    .await;
    w.until_occupied(5, 5, Duration::from_secs(120)).await;
    assert!(w.engine.get(&id).unwrap().is_backup_access_code_available);
    w.drain_events();
    let (original, backup) = w.engine.pull_backup(&id).unwrap();
    assert!(backup.is_backup);
    assert_eq!(backup.status, "set", "a backup already works on the lock");
    assert_eq!(
        original.pulled_backup_access_code_id,
        Some(backup.access_code_id)
    );
    assert_eq!(backup.name, original.name);
    let pin = backup.code.clone().unwrap();
    assert_eq!(
        w.pin_on_lock(5, backup.slot.unwrap()).await.as_deref(),
        Some(pin.as_str())
    );
    // Pulling again gives the same backup.
    let (_, again) = w.engine.pull_backup(&id).unwrap();
    assert_eq!(again.access_code_id, backup.access_code_id);
    assert!(w
        .drain_events()
        .contains(&"access_code.backup_access_code_pulled".to_string()));
    // The pool is topped up with a new spare, beside the pulled one.
    w.until_occupied(5, 6, Duration::from_secs(120)).await;
    assert!(w.engine.get(&id).unwrap().is_backup_access_code_available);
    // Deleting the original takes its backup off the lock too.
    w.engine.delete(&id).unwrap();
    w.until_on_lock(5, backup.slot.unwrap(), None, Duration::from_secs(120))
        .await;
    w.until_occupied(5, 4, Duration::from_secs(120)).await;
}

#[tokio::test(start_paused = true)]
async fn a_shared_code_on_three_locks_is_updated_by_its_key() {
    let w = world().await;
    let devices = [w.device(5), w.device(6), w.device(7)];
    let codes = w
        .engine
        .create_multiple(
            &devices,
            CreateRequest {
                name: Some("cleaner".into()),
                ..Default::default()
            },
            WhenCannotShare::Throw,
        )
        .unwrap();
    assert_eq!(codes.len(), 3);
    let key = codes[0].common_code_key.clone().unwrap();
    let pin = codes[0].code.clone().unwrap();
    for c in &codes {
        assert_eq!(c.common_code_key.as_deref(), Some(key.as_str()));
        assert_eq!(c.code.as_deref(), Some(pin.as_str()));
    }
    let ids: Vec<Uuid> = codes.iter().map(|c| c.access_code_id).collect();
    w.until("set on all three", Duration::from_secs(180), |w| {
        ids.iter().all(|id| w.status(id) == "set")
    })
    .await;
    for (node, c) in [5u8, 6, 7].iter().zip(&codes) {
        let slot = w.engine.get(&c.access_code_id).unwrap().slot.unwrap();
        assert_eq!(
            w.pin_on_lock(*node, slot).await.as_deref(),
            Some(pin.as_str())
        );
    }
    // One update by key: all three end in an hour.
    let ends = start_time() + chrono::Duration::hours(1);
    let updated = w
        .engine
        .update_multiple(
            &key,
            Some(Some("cleaner (last week)".into())),
            Some(Some(start_time() - chrono::Duration::minutes(1))),
            Some(Some(ends)),
        )
        .unwrap();
    assert_eq!(updated.len(), 3);
    for id in &ids {
        let c = w.engine.get(id).unwrap();
        assert_eq!(c.name.as_deref(), Some("cleaner (last week)"));
        assert_eq!(c.code_type, "time_bound");
    }
    let slots: Vec<u16> = ids
        .iter()
        .map(|id| w.engine.get(id).unwrap().slot.unwrap())
        .collect();
    w.clock.set(start_time() + chrono::Duration::hours(2));
    for (node, slot) in [5u8, 6, 7].iter().zip(slots) {
        w.until_on_lock(*node, slot, None, Duration::from_secs(180))
            .await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_native_schedule_lets_the_lock_keep_the_window_while_the_hub_is_down() {
    let mut w = world().await;
    let minutes = |m: i64| start_time() + chrono::Duration::minutes(m);
    let mut req = w.req(9, "4821");
    req.starts_at = Some(minutes(10));
    req.ends_at = Some(minutes(70));
    req.prefer_native_scheduling = Some(true);
    let (c, _) = w.engine.create(req).unwrap();
    let id = c.access_code_id;
    w.until("scheduled on the lock", Duration::from_secs(120), |w| {
        w.engine.get(&id).unwrap().is_scheduled_on_device
    })
    .await;
    let c = w.engine.get(&id).unwrap();
    let slot = c.slot.unwrap();
    assert_eq!(
        c.status, "unset",
        "on the lock, but its window has not begun"
    );
    assert_eq!(w.pin_on_lock(9, slot).await.as_deref(), Some("4821"));
    let snap = w.net.snapshot(9).await.unwrap().unwrap();
    let (user, sched) = snap.year_day_schedules[0];
    assert_eq!(u16::from(user), slot);
    assert_eq!(
        (
            sched.start_year,
            sched.start_month,
            sched.start_day,
            sched.start_hour,
            sched.start_minute
        ),
        (26, 11, 26, 12, 10)
    );
    assert_eq!((sched.stop_hour, sched.stop_minute), (13, 10));
    assert!(w
        .drain_events()
        .contains(&"access_code.scheduled_on_device".to_string()));
    let enter = || KeypadAction::Enter { pin: "4821".into() };
    assert!(
        !w.keypad(9, enter()).await,
        "the lock refuses before the window"
    );

    // The hub goes down; the window opens; the lock lets the code in on its own.
    let ground = w.stop().await;
    tokio::time::sleep(Duration::from_secs(11 * 60)).await;
    ground.clock.set(minutes(11));
    assert!(ground.net.keypad(9, enter()).await.unwrap());

    // Back up within the window: the code shows set.
    let w = World::start(ground, watching(), LOCKS).await;
    w.until("set", Duration::from_secs(60), |w| w.status(&id) == "set")
        .await;

    // Down again past the end: the lock refuses on its own; back up, zwlock clears the
    // slot and its schedule.
    let ground = w.stop().await;
    tokio::time::sleep(Duration::from_secs(60 * 60)).await;
    ground.clock.set(minutes(71));
    assert!(!ground.net.keypad(9, enter()).await.unwrap());
    let w = World::start(ground, watching(), LOCKS).await;
    w.until_on_lock(9, slot, None, Duration::from_secs(120))
        .await;
    w.until("forgotten", Duration::from_secs(60), |w| {
        w.engine.get(&id).is_err()
    })
    .await;
    let snap = w.net.snapshot(9).await.unwrap().unwrap();
    assert!(snap.year_day_schedules.is_empty(), "the schedule is erased");
}

#[tokio::test(start_paused = true)]
async fn a_sync_reads_every_slot_again_and_its_attempt_succeeds() {
    let w = world().await;
    let dev = w.device(6);
    tokio::time::sleep(Duration::from_secs(120)).await;
    // Written silently, in a slot zwlock has no reason to read.
    w.keypad(
        6,
        KeypadAction::ExternalWrite {
            slot: 9,
            pin: Some("8642".into()),
        },
    )
    .await;
    assert!(w.engine.unmanaged(&dev).unwrap().is_empty());
    let attempt = w.engine.sync_access_codes(&dev).unwrap();
    assert_eq!(attempt["status"], "pending");
    let id: Uuid = attempt["action_attempt_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    w.until("synced", Duration::from_secs(120), |w| {
        w.engine.action_attempt(&id).unwrap()["status"] == "success"
    })
    .await;
    let un = w.engine.unmanaged(&dev).unwrap();
    assert_eq!(un.len(), 1);
    assert_eq!((un[0].slot, un[0].code.as_deref()), (9, Some("8642")));
}
