//! The planner: a pure function from what is known of one lock (its facts, the codes declared
//! on it, what its slots last read, the time) to what should happen next. No I/O and no
//! writes: the engine task commits the plan's bookkeeping, then carries out its one action.
//!
//! The order of work on a lock: removals first (a deleted or ended code that may still open
//! the door outranks everything), then sets, oldest code first. A code that cannot be placed
//! because every slot is taken is marked as waiting for space, every such code, not only the
//! first. Codes whose retry time has not come are skipped, and their retry time wakes the
//! lock again; so do window starts and ends.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::schedule;
use crate::store::{CodeRow, CodeStatus, Desired, DeviceRow, SlotRow, SlotState};

/// Everything the planner looks at for one lock.
#[derive(Debug, Clone, Copy)]
pub struct LockView<'a> {
    pub device: &'a DeviceRow,
    /// The lock's codes that are not forgotten, oldest first.
    pub codes: &'a [CodeRow],
    /// What each slot last read.
    pub slots: &'a [SlotRow],
    /// Slots that carry a schedule zwlock put there.
    pub scheduled: &'a BTreeSet<u16>,
    /// Slots never used for managed codes (configuration), beside the device's own.
    pub reserved: &'a [u16],
    /// Codes already marked as waiting for a slot (`no_space_for_access_code_on_device`): a
    /// pass changes only what changed, so a full lock with thousands of waiting codes costs
    /// no writes.
    pub waiting: &'a BTreeSet<Uuid>,
    pub now: DateTime<Utc>,
    /// The wall clock can be trusted (never act on windows otherwise).
    pub synced: bool,
    /// The stick is connected.
    pub hub: bool,
}

/// What becomes of a code once it is off the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Deleted by the user, or its window ended: forget it.
    Forget,
    /// Out of its window (not yet, or a one-time code used): it waits without a slot.
    Wait,
}

/// The one thing to do on the lock next.
#[derive(Clone, PartialEq, Eq)]
pub enum SlotAction {
    /// Empty `slot`, which may hold `code`.
    Clear {
        code: Uuid,
        slot: u16,
        then: After,
        /// The slot carries a schedule: switch it off too.
        unschedule: bool,
    },
    /// Put `code`'s PIN in `slot`.
    Set {
        code: Uuid,
        slot: u16,
        pin: String,
        /// Scheduled on the lock: its window goes first.
        native: Option<(DateTime<Utc>, DateTime<Utc>)>,
        /// The slot carries a schedule the code must not inherit.
        clear_schedule: bool,
        /// The slot holds the code's previous PIN: if the lock refuses the new one, the old
        /// one must not stay usable.
        replaces: bool,
    },
    /// Read `slot` before putting `code` there: zwlock has never seen it, and it may hold a
    /// code programmed at the keypad.
    Probe { code: Uuid, slot: u16 },
}

impl std::fmt::Debug for SlotAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotAction::Clear {
                code, slot, then, ..
            } => write!(f, "Clear({code}, slot {slot}, {then:?})"),
            SlotAction::Set {
                code, slot, native, ..
            } => write!(f, "Set({code}, slot {slot}, native {})", native.is_some()),
            SlotAction::Probe { code, slot } => write!(f, "Probe({code}, slot {slot})"),
        }
    }
}

impl SlotAction {
    pub fn code(&self) -> Uuid {
        match self {
            SlotAction::Clear { code, .. }
            | SlotAction::Set { code, .. }
            | SlotAction::Probe { code, .. } => *code,
        }
    }

    pub fn slot(&self) -> u16 {
        match self {
            SlotAction::Clear { slot, .. }
            | SlotAction::Set { slot, .. }
            | SlotAction::Probe { slot, .. } => *slot,
        }
    }
}

/// Bookkeeping a plan needs committed (before its action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Deleted or ended without ever reaching the lock: forget it (`ended`: tell that its
    /// window ended).
    Forget { code: Uuid, ended: bool },
    /// Out of its window and not on the lock: it waits, without a slot.
    Unslot { code: Uuid },
    /// This slot is the code's (known to be empty).
    Assign { code: Uuid, slot: u16 },
    /// Every slot is taken: the code waits for one (`slots`: how many the lock has).
    NoSpace { code: Uuid, slots: u16 },
    /// The code no longer waits for space.
    SpaceFound { code: Uuid },
    /// Scheduled on the lock and its window has opened: usable now, without radio.
    OpenedOnLock { code: Uuid },
    /// About to be set but nothing can be done now (the clock is not to be trusted): unset.
    Hold { code: Uuid },
}

/// What the planner decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub action: Option<SlotAction>,
    /// Look at the lock again at this time (a window edge, a retry), if nothing else wakes it.
    pub wake_at: Option<DateTime<Utc>>,
}

/// Should a code be on the lock now? `None` when it cannot be known (unsynchronised clock).
pub fn in_window(code: &CodeRow, now: &DateTime<Utc>, synced: bool) -> Option<bool> {
    match (code.starts_at, code.ends_at) {
        (Some(s), Some(e)) => synced.then(|| s <= *now && *now < e),
        _ => Some(true),
    }
}

/// The code may be on the lock: confirmed there, or a write to it was under way.
pub fn maybe_on_lock(code: &CodeRow) -> bool {
    code.programmed_code.is_some() || code.status.is_transitional()
}

/// Slots free for a new code, lowest first, each with whether it is known to be empty, and at
/// most as many as the lock's capacity leaves.
pub fn free_slots(view: &LockView<'_>) -> Vec<(u16, bool)> {
    let d = view.device;
    let known: BTreeSet<u16> = view.slots.iter().map(|s| s.slot).collect();
    let held: BTreeSet<u16> = view.codes.iter().filter_map(|c| c.slot).collect();
    let occupied_unmanaged: BTreeSet<u16> = view
        .slots
        .iter()
        .filter(|s| s.state.holds_code() && !held.contains(&s.slot))
        .map(|s| s.slot)
        .collect();
    let taken: BTreeSet<u16> = held
        .iter()
        .copied()
        .chain(occupied_unmanaged.iter().copied())
        .chain(
            view.slots
                .iter()
                .filter(|s| s.state == SlotState::Unavailable)
                .map(|s| s.slot),
        )
        .chain(view.reserved.iter().copied())
        .chain(d.reserved_slots.iter().copied())
        .collect();
    let room = match d.code_capacity {
        Some(cap) => usize::from(cap).saturating_sub(held.len() + occupied_unmanaged.len()),
        None => usize::MAX,
    };
    (1..=d.slot_count)
        .filter(|s| !taken.contains(s))
        .take(room)
        .map(|s| (s, known.contains(&s)))
        .collect()
}

/// Decide what to do next on a lock.
pub fn plan(view: &LockView<'_>) -> Plan {
    let now = view.now;
    let synced = view.synced;
    let can_schedule = view.device.facts.supports_schedule;
    let mut plan = Plan::default();
    let mut wake = |t: DateTime<Utc>| {
        plan.wake_at = Some(plan.wake_at.map_or(t, |w: DateTime<Utc>| w.min(t)));
    };
    let mut removals: Vec<SlotAction> = Vec::new();
    // Codes to put on the lock: (code, native).
    let mut sets: Vec<(&CodeRow, bool)> = Vec::new();
    // Codes that wait for a slot after this pass (or may: see below).
    let mut still_waiting: BTreeSet<Uuid> = BTreeSet::new();
    let mut changes = Vec::new();
    for code in view.codes {
        if code.desired == Desired::Released {
            continue; // removed outside zwlock, allowed: it waits for an update
        }
        let deleted = code.desired == Desired::Deleted;
        let ended = synced && code.ends_at.is_some_and(|e| now >= e);
        // A one-time code that was used comes off the lock (its record stays).
        let used = code.is_one_time_use && code.used_at.is_some();
        // A code the lock schedules itself goes on ahead of its window.
        let native = schedule::wants_native(code, can_schedule, synced);
        let ahead = native && schedule::program_from(code).is_some_and(|t| t <= now);
        if synced {
            for t in [
                schedule::program_from(code).filter(|_| native),
                code.starts_at,
                code.ends_at,
            ]
            .into_iter()
            .flatten()
            {
                if now < t {
                    wake(t);
                }
            }
        }
        let window = in_window(code, &now, synced);
        if !deleted && !ended && window.is_none() {
            // Never act on a time-bound window with an unset clock; a code about to be set
            // that never went out waits, shown as such.
            if code.status == CodeStatus::Setting
                && code.programmed_code.is_none()
                && code.slot.is_none()
            {
                changes.push(Change::Hold {
                    code: code.access_code_id,
                });
            }
            // Whether it waits for space is not known until the clock is: as it was.
            still_waiting.insert(code.access_code_id);
            continue;
        }
        let in_win = window == Some(true);
        let wanted = !deleted && !ended && !used && (in_win || ahead);
        let retry_at = code.next_attempt_at.filter(|t| *t > now);
        if !wanted {
            match code.slot {
                Some(slot) if maybe_on_lock(code) => {
                    if let Some(t) = retry_at {
                        wake(t);
                        continue;
                    }
                    removals.push(SlotAction::Clear {
                        code: code.access_code_id,
                        slot,
                        then: if deleted || ended {
                            After::Forget
                        } else {
                            After::Wait
                        },
                        unschedule: view.scheduled.contains(&slot),
                    });
                }
                _ if deleted || ended => changes.push(Change::Forget {
                    code: code.access_code_id,
                    ended: ended && !deleted,
                }),
                _ if code.slot.is_some() || code.status != CodeStatus::Unset => {
                    changes.push(Change::Unslot {
                        code: code.access_code_id,
                    })
                }
                _ => {}
            }
            continue;
        }
        if code.programmed_code.as_deref() == Some(code.code.as_str())
            && code.is_scheduled_on_device == native
        {
            if native && in_win && code.status != CodeStatus::Set {
                // The lock's own schedule opened the window: no radio needed.
                changes.push(Change::OpenedOnLock {
                    code: code.access_code_id,
                });
                continue;
            }
            // A schedule left in the slot (native scheduling turned off) must go.
            let stale = !native && code.slot.is_some_and(|s| view.scheduled.contains(&s));
            if native || (code.status == CodeStatus::Set && !stale) {
                continue;
            }
        }
        if let Some(t) = retry_at {
            wake(t);
            // Still wanted, tried again later: whether it waits for space stays as it was.
            still_waiting.insert(code.access_code_id);
            continue;
        }
        sets.push((code, native));
    }
    // Every code that needs a slot gets one of the free ones, in order; the rest wait.
    let free = free_slots(view);
    let mut free_iter = free.iter();
    let mut first_set: Option<SlotAction> = None;
    for (code, native) in &sets {
        let slot = match code.slot {
            Some(s) => Some((s, true)),
            None => match free_iter.next() {
                Some(&(s, known)) => Some((s, known)),
                None => {
                    still_waiting.insert(code.access_code_id);
                    let marked = view.waiting.contains(&code.access_code_id);
                    let unplaced =
                        code.status == CodeStatus::Setting && code.programmed_code.is_none();
                    if !marked || unplaced {
                        changes.push(Change::NoSpace {
                            code: code.access_code_id,
                            slots: view.device.slot_count,
                        });
                    }
                    None
                }
            },
        };
        let Some((slot, known)) = slot else { continue };
        if first_set.is_some() {
            continue;
        }
        first_set = Some(if !known {
            SlotAction::Probe {
                code: code.access_code_id,
                slot,
            }
        } else {
            if code.slot.is_none() {
                changes.push(Change::Assign {
                    code: code.access_code_id,
                    slot,
                });
            }
            // Schedule Entry Lock user ids are one byte.
            let native = *native && slot <= u16::from(u8::MAX);
            SlotAction::Set {
                code: code.access_code_id,
                slot,
                pin: code.code.clone(),
                native: native.then(|| code.starts_at.zip(code.ends_at)).flatten(),
                clear_schedule: !native && view.scheduled.contains(&slot),
                replaces: code
                    .programmed_code
                    .as_ref()
                    .is_some_and(|p| *p != code.code),
            }
        });
    }
    // A code marked as waiting that no longer waits (it has a slot, left its window, went).
    if !view.waiting.is_empty() {
        let present: BTreeSet<Uuid> = view.codes.iter().map(|c| c.access_code_id).collect();
        for id in view.waiting {
            if present.contains(id) && !still_waiting.contains(id) {
                changes.push(Change::SpaceFound { code: *id });
            }
        }
    }
    plan.changes = changes;
    // A lock that must be reached securely and cannot be gets nothing, in clear or otherwise.
    let reachable = view.device.facts.security_failure.is_none();
    if view.hub && reachable && view.device.slot_count > 0 {
        plan.action = removals.into_iter().next().or(first_set);
    }
    plan
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
