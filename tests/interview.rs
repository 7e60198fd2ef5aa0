//! The first interview and the first read of a lock, counted in SendData against the
//! simulator (deterministic, so the counts are asserted exactly; times are not), and what the
//! reads found. The benchmark mock's locks: Supervision, Door Lock, Notification v8, Battery,
//! codes in slots 1 and 7 (7 disabled). `benches/interview_radio.rs` prints the same figures.
//!
//! A v1 lock: Manufacturer Specific, Version of User Code and of Notification, Users Number,
//! Battery, Door Lock Operation (6), then one Get per slot. A v2 lock adds User Code
//! Capabilities, and its read starts with the checksum and stops once the codes read explain
//! it. A lock whose model an earlier lock taught: Manufacturer Specific, Battery, Door Lock.

#[path = "common/radio_counts.rs"]
mod radio_counts;
#[path = "common/world.rs"]
mod world;

use radio_counts::{expected, first_start, found, second_start, Locks, Models, SEEDED};

#[tokio::test(start_paused = true)]
async fn a_v1_lock_with_30_slots_is_up_and_read_in_36_send_data() {
    let locks = Locks::v1(1, 30);
    let (w, c) = first_start(&locks, Models::Cached).await;
    assert_eq!(c.send_data, 6 + 30, "{c:?}");
    assert_eq!(c.per_lock, vec![(2, 36)]);
    assert_eq!(found(&w, 2), expected(&SEEDED));
    // From the same database, nothing is asked before the lock is ready (the engine's
    // verification of the codes it holds comes after, and is not counted here).
    let (_w, c) = second_start(w, &locks, Models::Cached).await;
    assert_eq!(c.per_lock, vec![(2, 0)], "{c:?}");
}

#[tokio::test(start_paused = true)]
async fn a_v2_lock_with_250_slots_is_read_as_far_as_its_checksum_needs() {
    // One code per Get (as the zwave-js mock): 7 interview Gets, the checksum, slots 1 to 7.
    let locks = Locks::v2(250, true, false);
    let (w, c) = first_start(&locks, Models::Cached).await;
    assert_eq!(c.per_lock, vec![(2, 7 + 1 + 7)], "{c:?}");
    assert_eq!(found(&w, 2), expected(&SEEDED));
    let (_w, c) = second_start(w, &locks, Models::Cached).await;
    assert_eq!(c.per_lock, vec![(2, 0)], "{c:?}");

    // Several codes per Get: the first page holds slots 1 to 7.
    let locks = Locks::v2(250, true, true);
    let (w, c) = first_start(&locks, Models::Cached).await;
    assert_eq!(c.per_lock, vec![(2, 7 + 1 + 1)], "{c:?}");
    assert_eq!(found(&w, 2), expected(&SEEDED));
}

#[tokio::test(start_paused = true)]
async fn the_checksum_cuts_a_read_short_only_once_every_code_is_found() {
    // A code near the end: every slot up to it is read.
    let codes = [(1, "1234", false), (240, "97531", false)];
    let locks = Locks::v2(250, true, false).holding(&codes);
    let (w, c) = first_start(&locks, Models::Cached).await;
    assert_eq!(c.per_lock, vec![(2, 7 + 1 + 240)], "{c:?}");
    assert_eq!(found(&w, 2), expected(&codes));
    // An empty lock: its checksum (0) says so, no slot is read.
    let locks = Locks::v2(250, true, false).holding(&[]);
    let (w, c) = first_start(&locks, Models::Cached).await;
    assert_eq!(c.per_lock, vec![(2, 7 + 1)], "{c:?}");
    assert_eq!(found(&w, 2), vec![]);
    // Without a checksum, every slot.
    let locks = Locks::v2(250, false, false);
    let (w, c) = first_start(&locks, Models::Cached).await;
    assert_eq!(c.per_lock, vec![(2, 7 + 250)], "{c:?}");
    assert_eq!(found(&w, 2), expected(&SEEDED));
}

#[tokio::test(start_paused = true)]
async fn twenty_locks_of_one_model_learn_it_once() {
    let locks = Locks::v1(20, 30);
    let (w, c) = first_start(&locks, Models::Cached).await;
    // One lock learns the model (6 + 30); the others wait for it, then ask only what is
    // their own (3 + 30).
    let mut per: Vec<u64> = c.per_lock.iter().map(|(_, n)| *n).collect();
    per.sort();
    assert_eq!(per[..19], [33; 19], "{c:?}");
    assert_eq!(per[19], 36, "{c:?}");
    assert_eq!(c.send_data, 36 + 19 * 33);
    for n in locks.nodes() {
        assert_eq!(found(&w, n), expected(&SEEDED), "node {n}");
    }
    let (_w, c) = second_start(w, &locks, Models::Cached).await;
    assert_eq!(c.send_data, 0, "{c:?}");

    // Without the cache every lock learns its model: 20 × 36.
    let (_w, c) = first_start(&locks, Models::Uncached).await;
    assert_eq!(c.send_data, 20 * 36, "{c:?}");
}

#[tokio::test(start_paused = true)]
async fn a_model_learnt_before_is_not_asked_again_after_the_lock_is_forgotten() {
    // The database keeps the model when a lock's own record is gone (a lock of the same
    // model included later): the interview asks only the lock's own state.
    let locks = Locks::v2(250, true, false);
    let (w, _) = first_start(&locks, Models::Cached).await;
    let driver = w.engine.driver().unwrap();
    let before = w.commands_received(2).await;
    driver
        .reinterview(zwlock::serialapi::NodeId(2))
        .await
        .unwrap();
    let t0 = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let info = driver
            .node(zwlock::serialapi::NodeId(2))
            .await
            .unwrap()
            .unwrap();
        if info.interviewed {
            assert_eq!(info.user_code.as_ref().map(|u| u.slots), Some(250));
            assert!(info.user_code.as_ref().is_some_and(|u| u.checksum));
            break;
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(600));
    }
    assert_eq!(
        w.commands_received(2).await - before,
        3,
        "Manufacturer Specific, Battery, Door Lock"
    );
}
