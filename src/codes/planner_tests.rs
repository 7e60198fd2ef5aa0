//! The planner on its own: table-driven cases for each rule, and properties over random locks.

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::store::{LockFacts, SlotRow};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn device(slots: u16) -> DeviceRow {
    DeviceRow {
        device_id: Uuid::from_u128(1),
        node_id: 5,
        name: "front".into(),
        interview_cache: None,
        facts: LockFacts {
            user_code_version: 2,
            ..Default::default()
        },
        code_capacity: None,
        refused_code_lengths: Vec::new(),
        slot_count: slots,
        min_code_length: 4,
        max_code_length: 10,
        code_characters: "0123456789".into(),
        online: true,
        battery_level: None,
        locked: None,
        last_contact_at: None,
        reserved_slots: Vec::new(),
        backup_pool_size: 0,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn code(n: u128, pin: &str) -> CodeRow {
    CodeRow {
        access_code_id: Uuid::from_u128(n),
        created_at: t0() + Duration::seconds(n as i64),
        ..CodeRow::new(Uuid::from_u128(1), pin.into(), t0())
    }
}

/// A code confirmed on the lock in `slot`.
fn on_lock(n: u128, pin: &str, slot: u16) -> CodeRow {
    CodeRow {
        status: CodeStatus::Set,
        slot: Some(slot),
        programmed_code: Some(pin.into()),
        ..code(n, pin)
    }
}

fn empty(slot: u16) -> SlotRow {
    SlotRow {
        device_id: Uuid::from_u128(1),
        slot,
        state: SlotState::Empty,
        code: None,
        unmanaged_id: Uuid::from_u128(1000 + u128::from(slot)),
        reported_at: t0(),
        disabled: false,
    }
}

fn keypad(slot: u16, pin: &str) -> SlotRow {
    SlotRow {
        state: SlotState::Occupied,
        code: Some(pin.into()),
        ..empty(slot)
    }
}

#[derive(Debug, Clone)]
struct Case {
    device: DeviceRow,
    codes: Vec<CodeRow>,
    slots: Vec<SlotRow>,
    scheduled: BTreeSet<u16>,
    waiting: BTreeSet<Uuid>,
    now: DateTime<Utc>,
    synced: bool,
    hub: bool,
}

impl Case {
    fn new(slots: u16) -> Case {
        Case {
            device: device(slots),
            codes: Vec::new(),
            slots: (1..=slots).map(empty).collect(),
            scheduled: BTreeSet::new(),
            waiting: BTreeSet::new(),
            now: t0(),
            synced: true,
            hub: true,
        }
    }

    fn plan(&self) -> Plan {
        plan(&LockView {
            device: &self.device,
            codes: &self.codes,
            slots: &self.slots,
            scheduled: &self.scheduled,
            reserved: &[],
            waiting: &self.waiting,
            now: self.now,
            synced: self.synced,
            hub: self.hub,
        })
    }
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

#[test]
fn a_new_code_takes_the_lowest_free_known_slot() {
    let mut c = Case::new(5);
    c.slots[0] = keypad(1, "1357");
    c.device.reserved_slots = vec![2];
    c.codes.push(code(10, "4821"));
    let p = c.plan();
    assert!(
        p.changes.contains(&Change::Assign {
            code: id(10),
            slot: 3
        }),
        "{p:?}"
    );
    match p.action {
        Some(SlotAction::Set {
            code,
            slot,
            ref pin,
            replaces,
            ..
        }) => {
            assert_eq!(
                (code, slot, pin.as_str(), replaces),
                (id(10), 3, "4821", false)
            );
        }
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn a_slot_never_read_is_probed_first() {
    let mut c = Case::new(5);
    c.slots.clear();
    c.codes.push(code(10, "4821"));
    assert_eq!(
        c.plan().action,
        Some(SlotAction::Probe {
            code: id(10),
            slot: 1
        })
    );
}

#[test]
fn removals_outrank_sets() {
    let mut c = Case::new(5);
    c.codes.push(code(10, "4821")); // waiting to be set, older
    c.codes.push(CodeRow {
        desired: Desired::Deleted,
        status: CodeStatus::Removing,
        ..on_lock(11, "2222", 4)
    });
    let p = c.plan();
    assert_eq!(
        p.action,
        Some(SlotAction::Clear {
            code: id(11),
            slot: 4,
            then: After::Forget,
            unschedule: false
        })
    );
}

#[test]
fn a_removal_whose_try_failed_is_tried_again_when_its_backoff_ends() {
    let mut c = Case::new(5);
    let retry = t0() + Duration::seconds(40);
    c.codes.push(CodeRow {
        desired: Desired::Deleted,
        status: CodeStatus::Removing,
        attempts: 3,
        next_attempt_at: Some(retry),
        ..on_lock(11, "2222", 4)
    });
    let p = c.plan();
    assert_eq!(p.action, None);
    assert_eq!(p.wake_at, Some(retry));
    c.now = retry;
    assert!(matches!(c.plan().action, Some(SlotAction::Clear { code, .. }) if code == id(11)));
    // However long it has failed: a removal is never abandoned.
    c.codes[0].attempts = 10_000;
    c.now = retry + Duration::days(30);
    assert!(matches!(c.plan().action, Some(SlotAction::Clear { .. })));
}

#[test]
fn a_code_that_never_reached_the_lock_is_forgotten_without_radio() {
    let mut c = Case::new(5);
    c.codes.push(CodeRow {
        desired: Desired::Deleted,
        ..code(10, "4821")
    });
    let p = c.plan();
    assert_eq!(p.action, None);
    assert_eq!(
        p.changes,
        vec![Change::Forget {
            code: id(10),
            ended: false
        }]
    );
    // A write under way may have landed: cleared, not forgotten.
    c.codes[0].status = CodeStatus::Setting;
    c.codes[0].slot = Some(2);
    assert!(matches!(
        c.plan().action,
        Some(SlotAction::Clear { slot: 2, .. })
    ));
}

#[test]
fn windows_open_and_close_and_wake_the_lock() {
    let mut c = Case::new(5);
    let (s, e) = (t0() + Duration::hours(1), t0() + Duration::hours(2));
    c.codes.push(CodeRow {
        starts_at: Some(s),
        ends_at: Some(e),
        ..code(10, "4821")
    });
    let p = c.plan();
    assert_eq!(p.action, None, "not yet");
    assert_eq!(p.wake_at, Some(s));
    c.now = s;
    assert!(matches!(c.plan().action, Some(SlotAction::Set { .. })));
    c.codes[0] = CodeRow {
        starts_at: Some(s),
        ends_at: Some(e),
        ..on_lock(10, "4821", 1)
    };
    let p = c.plan();
    assert_eq!(p.action, None, "set and in its window");
    assert_eq!(p.wake_at, Some(e));
    c.now = e;
    assert_eq!(
        c.plan().action,
        Some(SlotAction::Clear {
            code: id(10),
            slot: 1,
            then: After::Forget,
            unschedule: false
        })
    );
    // Ended without reaching the lock: forgotten, and it says why.
    c.codes[0] = CodeRow {
        starts_at: Some(s),
        ends_at: Some(e),
        ..code(10, "4821")
    };
    assert_eq!(
        c.plan().changes,
        vec![Change::Forget {
            code: id(10),
            ended: true
        }]
    );
}

#[test]
fn an_unsynchronised_clock_never_acts_on_windows() {
    let mut c = Case::new(5);
    c.synced = false;
    let (s, e) = (t0() - Duration::hours(1), t0() + Duration::hours(1));
    c.codes.push(CodeRow {
        starts_at: Some(s),
        ends_at: Some(e),
        ..code(10, "4821")
    });
    c.codes.push(CodeRow {
        starts_at: Some(s),
        ends_at: Some(s),
        ..on_lock(11, "1111", 2)
    });
    c.codes.push(code(12, "5555"));
    let p = c.plan();
    // Only the ongoing code moves.
    assert!(
        matches!(p.action, Some(SlotAction::Set { code, .. }) if code == id(12)),
        "{p:?}"
    );
    assert!(p
        .changes
        .iter()
        .all(|ch| !matches!(ch, Change::Forget { .. })));
}

#[test]
fn every_code_waiting_for_a_slot_says_so() {
    let mut c = Case::new(3);
    c.codes.push(on_lock(1, "1111", 1));
    c.codes.push(on_lock(2, "2222", 2));
    for n in 10..14 {
        c.codes.push(code(n, &format!("{n}00")));
    }
    let p = c.plan();
    // Slot 3 goes to the oldest waiting code; the three others wait, each with the error.
    assert!(matches!(p.action, Some(SlotAction::Set { code, slot: 3, .. }) if code == id(10)));
    let waiting: Vec<Uuid> = p
        .changes
        .iter()
        .filter_map(|ch| match ch {
            Change::NoSpace { code, slots: 3 } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(waiting, vec![id(11), id(12), id(13)]);
}

#[test]
fn codes_already_marked_as_waiting_cost_nothing_until_a_slot_frees() {
    // A full lock with many waiting codes, all already marked: a pass changes nothing (the
    // engine plans again after every change, so repeating a mark would be a pass per create).
    let mut c = Case::new(2);
    c.codes.push(on_lock(1, "1111", 1));
    c.codes.push(on_lock(2, "2222", 2));
    for n in 10..200 {
        c.codes.push(code(n, &format!("{}", 3000 + n)));
        c.waiting.insert(id(n));
    }
    let p = c.plan();
    assert_eq!(p.action, None);
    assert_eq!(p.changes, vec![], "nothing to write");
    // A new code is marked once; one being set that found no slot goes back to waiting.
    c.codes.push(code(300, "9300"));
    c.codes.push(CodeRow {
        status: CodeStatus::Setting,
        ..code(301, "9301")
    });
    c.waiting.insert(id(301));
    let p = c.plan();
    let marked: Vec<Uuid> = p
        .changes
        .iter()
        .filter_map(|ch| match ch {
            Change::NoSpace { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(marked, vec![id(300), id(301)]);
    // Slot 2 frees: the oldest waiting code takes it and is no longer marked; the rest stay.
    c.codes.remove(1);
    let p = c.plan();
    assert!(matches!(p.action, Some(SlotAction::Set { code, slot: 2, .. }) if code == id(10)));
    let found: Vec<Uuid> = p
        .changes
        .iter()
        .filter_map(|ch| match ch {
            Change::SpaceFound { code } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(found, vec![id(10)]);
}

#[test]
fn a_marked_code_that_no_longer_waits_loses_the_mark_but_one_in_backoff_keeps_it() {
    let mut c = Case::new(1);
    c.codes.push(on_lock(1, "1111", 1));
    // Deleted while waiting; moved to a later window; waiting on a retry.
    c.codes.push(CodeRow {
        desired: Desired::Deleted,
        ..code(10, "4821")
    });
    c.codes.push(CodeRow {
        starts_at: Some(t0() + chrono::Duration::days(2)),
        ends_at: Some(t0() + chrono::Duration::days(3)),
        ..code(11, "4822")
    });
    c.codes.push(CodeRow {
        next_attempt_at: Some(t0() + chrono::Duration::minutes(5)),
        ..code(12, "4823")
    });
    // A mark left on a code that is on the lock (and one on a code that is gone).
    for n in [1, 10, 11, 12, 99] {
        c.waiting.insert(id(n));
    }
    let p = c.plan();
    let mut found: Vec<Uuid> = p
        .changes
        .iter()
        .filter_map(|ch| match ch {
            Change::SpaceFound { code } => Some(*code),
            _ => None,
        })
        .collect();
    found.sort();
    assert_eq!(found, vec![id(1), id(10), id(11)]);
}

#[test]
fn a_lock_that_holds_fewer_codes_than_slots_is_full_sooner() {
    let mut c = Case::new(10);
    c.device.code_capacity = Some(2);
    c.slots[0] = keypad(1, "1111");
    c.codes.push(on_lock(1, "2222", 2));
    c.codes.push(code(10, "3333"));
    let p = c.plan();
    assert_eq!(p.action, None);
    assert!(p.changes.contains(&Change::NoSpace {
        code: id(10),
        slots: 10
    }));
}

#[test]
fn without_the_stick_nothing_is_sent_but_bookkeeping_goes_on() {
    let mut c = Case::new(5);
    c.hub = false;
    c.codes.push(code(10, "4821"));
    c.codes.push(CodeRow {
        desired: Desired::Deleted,
        ..code(11, "1111")
    });
    let p = c.plan();
    assert_eq!(p.action, None);
    assert!(p.changes.contains(&Change::Forget {
        code: id(11),
        ended: false
    }));
}

#[test]
fn a_new_pin_replaces_the_old_in_its_slot() {
    let mut c = Case::new(5);
    c.codes.push(CodeRow {
        code: "5937".into(),
        status: CodeStatus::Unset,
        ..on_lock(10, "4821", 2)
    });
    match c.plan().action {
        Some(SlotAction::Set {
            slot: 2,
            replaces: true,
            ref pin,
            ..
        }) => assert_eq!(pin, "5937"),
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn a_converged_lock_is_left_alone() {
    let mut c = Case::new(5);
    c.codes.push(on_lock(10, "4821", 1));
    c.codes.push(CodeRow {
        desired: Desired::Released,
        ..code(11, "2222")
    });
    assert_eq!(c.plan(), Plan::default());
}

#[test]
fn a_natively_scheduled_code_goes_on_ahead_and_opens_by_itself() {
    let mut c = Case::new(5);
    c.device.facts.supports_schedule = true;
    let (s, e) = (t0() + Duration::hours(24), t0() + Duration::hours(30));
    c.codes.push(CodeRow {
        starts_at: Some(s),
        ends_at: Some(e),
        ..code(10, "4821")
    });
    match c.plan().action {
        Some(SlotAction::Set {
            native: Some(w), ..
        }) => assert_eq!(w, (s, e)),
        ref other => panic!("{other:?}"),
    }
    c.codes[0] = CodeRow {
        starts_at: Some(s),
        ends_at: Some(e),
        status: CodeStatus::Unset,
        is_scheduled_on_device: true,
        ..on_lock(10, "4821", 1)
    };
    assert_eq!(c.plan().action, None);
    c.now = s;
    assert_eq!(
        c.plan().changes,
        vec![Change::OpenedOnLock { code: id(10) }]
    );
    // A schedule left in a slot is switched off before an ordinary code goes there.
    let mut c = Case::new(5);
    c.scheduled.insert(1);
    c.codes.push(code(11, "7777"));
    assert!(matches!(
        c.plan().action,
        Some(SlotAction::Set {
            clear_schedule: true,
            ..
        })
    ));
}

// Properties over random locks.

fn arb_code(n: u128, slots: u16) -> impl Strategy<Value = CodeRow> {
    (
        0..4u8, // desired/status mix
        prop::option::of(1..=slots),
        any::<bool>(),                         // programmed
        prop::option::of((-3i64..3, 1i64..4)), // window (start offset h, length h)
        prop::option::of(-60i64..60),          // retry offset s
        0..3u8,                                // status
    )
        .prop_map(move |(d, slot, programmed, window, retry, st)| {
            let pin = format!("{:04}", 1000 + n);
            // A released code holds no slot (the store never keeps one for it).
            let slot = slot.filter(|_| d != 1);
            CodeRow {
                desired: match d {
                    0 => Desired::Deleted,
                    1 => Desired::Released,
                    _ => Desired::Active,
                },
                status: match st {
                    0 => CodeStatus::Unset,
                    1 => CodeStatus::Setting,
                    _ => CodeStatus::Set,
                },
                slot,
                programmed_code: (programmed && slot.is_some()).then(|| pin.clone()),
                starts_at: window.map(|(s, _)| t0() + Duration::hours(s)),
                ends_at: window.map(|(s, l)| t0() + Duration::hours(s + l)),
                next_attempt_at: retry.map(|r| t0() + Duration::seconds(r)),
                ..code(n, &pin)
            }
        })
}

fn arb_lock() -> impl Strategy<Value = Case> {
    (1..12u16, any::<bool>(), any::<bool>())
        .prop_flat_map(|(slots, hub, synced)| {
            (
                Just(slots),
                Just(hub),
                Just(synced),
                prop::collection::vec(prop::option::of(any::<bool>()), slots as usize),
                (0..8usize).prop_flat_map(move |k| {
                    (0..k as u128)
                        .map(|n| arb_code(n + 10, slots))
                        .collect::<Vec<_>>()
                }),
            )
        })
        .prop_map(|(slots, hub, synced, table, mut codes)| {
            // Slots are unique per lock among codes (the store enforces it).
            let mut seen = BTreeSet::new();
            for c in codes.iter_mut() {
                if let Some(s) = c.slot {
                    if !seen.insert(s) {
                        c.slot = None;
                        c.programmed_code = None;
                    }
                }
            }
            let mut case = Case::new(slots);
            case.hub = hub;
            case.synced = synced;
            case.slots = table
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    let slot = i as u16 + 1;
                    t.map(|occupied| {
                        if occupied {
                            keypad(slot, "9999")
                        } else {
                            empty(slot)
                        }
                    })
                })
                .collect();
            case.codes = codes;
            case
        })
}

proptest! {
    #[test]
    fn plans_keep_the_rules(case in arb_lock()) {
        let p = case.plan();
        prop_assert_eq!(&p, &case.plan(), "deterministic");
        if !case.hub {
            prop_assert!(p.action.is_none());
        }
        let held: BTreeSet<u16> = case.codes.iter().filter_map(|c| c.slot).collect();
        let unmanaged: BTreeSet<u16> = case
            .slots
            .iter()
            .filter(|s| s.state.holds_code() && !held.contains(&s.slot))
            .map(|s| s.slot)
            .collect();
        let by_id = |u: Uuid| case.codes.iter().find(|c| c.access_code_id == u).unwrap();
        // A removal the planner could do now always goes first.
        let removable = case.codes.iter().any(|c| {
            let ended = case.synced && c.ends_at.is_some_and(|e| case.now >= e);
            (c.desired == Desired::Deleted || ended)
                && c.slot.is_some()
                && maybe_on_lock(c)
                && c.next_attempt_at.is_none_or(|t| t <= case.now)
        });
        if case.hub && removable {
            prop_assert!(matches!(p.action, Some(SlotAction::Clear { .. })), "{:?}", p.action);
        }
        match &p.action {
            Some(SlotAction::Clear { code, slot, .. }) => {
                let c = by_id(*code);
                prop_assert_eq!(c.slot, Some(*slot), "only a code's own slot is cleared");
                prop_assert!(maybe_on_lock(c));
            }
            Some(SlotAction::Set { code, slot, pin, .. }) => {
                let c = by_id(*code);
                prop_assert_eq!(c.desired, Desired::Active);
                prop_assert_eq!(pin, &c.code);
                prop_assert!(c.next_attempt_at.is_none_or(|t| t <= case.now));
                prop_assert!(!(case.synced && c.ends_at.is_some_and(|e| case.now >= e)), "never an ended code");
                if c.slot != Some(*slot) {
                    prop_assert!(!held.contains(slot) && !unmanaged.contains(slot), "nothing else is written");
                }
            }
            Some(SlotAction::Probe { code, slot }) => {
                prop_assert!(by_id(*code).slot.is_none());
                prop_assert!(!held.contains(slot) && !unmanaged.contains(slot));
                prop_assert!(!case.slots.iter().any(|s| s.slot == *slot), "only unknown slots are probed");
            }
            None => {}
        }
        for ch in &p.changes {
            if let Change::Forget { code, .. } = ch {
                let c = by_id(*code);
                prop_assert!(!(c.slot.is_some() && maybe_on_lock(c)), "a code that may be on the lock is never forgotten");
            }
        }
    }
}
