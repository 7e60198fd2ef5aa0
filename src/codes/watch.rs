//! Watching locks for codes changed outside zwlock, spending as little radio as possible, and
//! verifying them after every (re)start before they are trusted.
//!
//! Cheapest first:
//! * a notification or alarm about a slot (added, deleted, keypad use of an unknown slot)
//!   queues a read of that slot only; "all codes deleted" marks every slot empty at once;
//! * User Code v2 locks with the checksum: one Checksum Get per poll; only when it differs from
//!   the checksum of the known slot table (or the last one the lock reported) are the codes
//!   read, in bulk when the lock can;
//! * other locks: the managed slots are read round-robin within a per-lock budget of frames per
//!   hour, so each is verified within `managed slots / budget` hours;
//! * a full read of every slot runs once, when a lock is first seen (to learn its unmanaged
//!   codes), and on demand.
//!
//! Start-up verification: after a (re)start nothing zwlock remembers about a lock is trusted
//! until it is checked. A lock with a checksum is asked for it once: equal to the known table,
//! every code is verified for one frame; different (or a table zwlock cannot compute, such as a
//! masked lock's), the managed slots are read (or the whole lock, in bulk). A lock without a
//! checksum has its managed slots read at once, up to `startup_verify_reads` frames; the rest
//! follow round-robin.
//!
//! Everything here is a pure function of the [`WatchState`] the engine task owns and what the
//! store says; the task does the reads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::cc::code::user_code_checksum;
use crate::store::{SlotRow, SlotState};

/// Slots read in one go (between two of them the engine may write to the lock).
const READ_BATCH: usize = 4;

/// How much radio watching may spend.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// Round-robin slot reads per hour on locks without a usable checksum.
    pub poll_frames_per_hour: u32,
    /// Time between checksum polls on locks with one.
    pub checksum_interval: Duration,
    /// Read every slot once when a lock is first seen.
    pub full_read_on_first_sight: bool,
    /// Slot reads a lock without a checksum may spend verifying its codes after a start.
    pub startup_verify_reads: u32,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            poll_frames_per_hour: 12,
            checksum_interval: Duration::from_secs(15 * 60),
            full_read_on_first_sight: true,
            startup_verify_reads: 30,
        }
    }
}

/// Where start-up verification of a lock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// Not verified since this engine started.
    #[default]
    Pending,
    /// The checksum was asked for; its answer decides.
    AwaitingChecksum,
    Done,
}

/// Per-lock watching state (in memory; a restart begins with start-up verification).
#[derive(Debug, Default)]
pub struct WatchState {
    /// Slots to read because the lock said something about them (or verification asks).
    pub pending: BTreeSet<u16>,
    /// Slots to read at a time unless the lock reports them first (a notification that a code
    /// changed is often followed by the report of the new one).
    deferred: BTreeMap<u16, Instant>,
    /// A full read in progress: the next user id to ask for.
    pub full_read_next: Option<u16>,
    pub next_poll: Option<Instant>,
    round_robin: usize,
    /// The checksum the lock reported last, after zwlock's own changes settled.
    pub baseline: Option<u16>,
    /// SYNC_ACCESS_CODES action attempts that finish with the full read.
    pub sync_attempts: Vec<Uuid>,
    pub verify: Verify,
    /// The checksum a read of the managed slots has to explain; when it does not, the whole
    /// lock is read (an unmanaged slot changed).
    recheck: Option<u16>,
}

/// A read to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Slots(Vec<u16>),
    /// The page of a full read starting at this user id.
    Page(u16),
    Checksum,
}

/// What the watcher needs to know of a lock.
#[derive(Debug, Clone, Copy)]
pub struct WatchInput<'a> {
    /// Slots of managed codes believed on the lock.
    pub managed: &'a [u16],
    /// The lock answers Checksum Get.
    pub checksum: bool,
    /// Every slot has been read once (the first full read is done).
    pub full_read_done: bool,
}

impl WatchState {
    /// Ask for a read of `slots`.
    pub fn want(&mut self, slots: impl IntoIterator<Item = u16>) {
        self.pending.extend(slots);
    }

    /// The next few pending slots: reads go in small batches, so that a write asked for
    /// meanwhile waits for a batch at most, not for a whole verification.
    fn take_pending(&mut self) -> Vec<u16> {
        let batch: Vec<u16> = self.pending.iter().take(READ_BATCH).copied().collect();
        for s in &batch {
            self.pending.remove(s);
        }
        batch
    }

    /// Read `slots` at `at`, unless the lock reports them before.
    pub fn want_after(&mut self, slots: impl IntoIterator<Item = u16>, at: Instant) {
        for s in slots {
            if !self.pending.contains(&s) {
                self.deferred.entry(s).or_insert(at);
            }
        }
    }

    /// The lock reported these slots itself: no read needed.
    pub fn reported(&mut self, slots: impl IntoIterator<Item = u16>) {
        for s in slots {
            self.deferred.remove(&s);
            self.pending.remove(&s);
        }
    }

    /// Start a full read (the API's sync, or first sight).
    pub fn full_read(&mut self) {
        self.full_read_next = Some(1);
    }

    /// zwlock changed the lock itself: the next checksum is the new baseline.
    pub fn forget_checksum(&mut self) {
        self.baseline = None;
    }

    /// What to read next, if anything is due; otherwise when the next poll is due.
    pub fn next(
        &mut self,
        input: WatchInput<'_>,
        config: &WatchConfig,
        now: Instant,
    ) -> (Option<Read>, Option<Instant>) {
        if config.full_read_on_first_sight && !input.full_read_done && self.full_read_next.is_none()
        {
            self.full_read_next = Some(1);
        }
        let due: Vec<u16> = self
            .deferred
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(s, _)| *s)
            .collect();
        for slot in due {
            self.deferred.remove(&slot);
            self.pending.insert(slot);
        }
        if !self.pending.is_empty() {
            return (Some(Read::Slots(self.take_pending())), None);
        }
        if let Some(t) = self.deferred.values().min().copied() {
            return (None, Some(t));
        }
        // A full read verifies everything too (the task marks verification done with it).
        if let Some(n) = self.full_read_next {
            return (Some(Read::Page(n)), None);
        }
        if self.verify == Verify::Pending && input.managed.is_empty() {
            // Nothing zwlock put there to verify.
            self.verify = Verify::Done;
        }
        if self.verify == Verify::Pending {
            if input.checksum {
                self.verify = Verify::AwaitingChecksum;
                return (Some(Read::Checksum), None);
            }
            self.verify = Verify::Done;
            let budget = config.startup_verify_reads as usize;
            self.pending
                .extend(input.managed.iter().take(budget).copied());
            // The round robin goes on where verification stopped.
            self.round_robin = budget.min(input.managed.len());
            if !self.pending.is_empty() {
                return (Some(Read::Slots(self.take_pending())), None);
            }
        }
        let interval = if input.checksum {
            config.checksum_interval
        } else {
            Duration::from_secs_f64(3600.0 / f64::from(config.poll_frames_per_hour.max(1)))
        };
        let due = *self.next_poll.get_or_insert(now + interval);
        if due > now {
            return (None, Some(due));
        }
        self.next_poll = Some(now + interval);
        if input.checksum {
            (Some(Read::Checksum), None)
        } else if input.managed.is_empty() {
            (None, self.next_poll)
        } else {
            let slot = input.managed[self.round_robin % input.managed.len()];
            self.round_robin = self.round_robin.wrapping_add(1);
            (Some(Read::Slots(vec![slot])), None)
        }
    }

    /// The lock's checksum came back. `expected`: the checksum of the known slot table, when
    /// it can be computed. Returns whether the codes must be read.
    pub fn on_checksum(&mut self, checksum: u16, expected: Option<u16>) -> bool {
        let verifying = self.verify == Verify::AwaitingChecksum;
        self.verify = Verify::Done;
        // Unchanged since the lock's last answer means unchanged, whatever the table computes
        // (it takes every code as enabled; a disabled one would differ).
        let changed = match (expected, self.baseline) {
            (_, Some(b)) if b == checksum => false,
            (Some(e), _) => e != checksum,
            (None, Some(b)) => b != checksum,
            // Nothing to compare with: after a start that means "read to know".
            (None, None) => verifying,
        };
        self.baseline = Some(checksum);
        changed
    }

    /// The managed slots are being read to explain `checksum`.
    pub fn explain(&mut self, checksum: u16) {
        self.recheck = Some(checksum);
    }

    /// The reads asked for are done; `expected` is the checksum of the slot table now. When it
    /// does not explain the checksum the lock reported, read the whole lock.
    pub fn reads_done(&mut self, expected: Option<u16>) {
        if !self.pending.is_empty() {
            return;
        }
        if let Some(cs) = self.recheck.take() {
            if expected != Some(cs) {
                self.full_read();
            }
        }
    }

    /// A checksum the lock could not give: verify by reading instead.
    pub fn checksum_unavailable(&mut self) {
        if self.verify == Verify::AwaitingChecksum {
            self.verify = Verify::Pending;
        }
    }
}

/// The checksum of the slot table, when every occupied slot's code is known (and the table is
/// complete: the first full read is done).
pub fn expected_checksum(slots: &[SlotRow], full_read_done: bool) -> Option<u16> {
    if !full_read_done || slots.iter().any(|s| s.state == SlotState::Hidden) {
        return None;
    }
    use crate::cc::UserIdStatus;
    // Each code with the status the lock reported (a disabled code counts as disabled).
    let codes: Vec<(u16, UserIdStatus, Vec<u8>)> = slots
        .iter()
        .filter(|s| s.state == SlotState::Occupied)
        .filter_map(|s| {
            let status = if s.disabled {
                UserIdStatus::Disabled
            } else {
                UserIdStatus::Enabled
            };
            s.code
                .as_ref()
                .map(|c| (s.slot, status, c.as_bytes().to_vec()))
        })
        .collect();
    Some(user_code_checksum(
        codes
            .iter()
            .map(|(slot, st, code)| (*slot, *st, code.as_slice())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(managed: &'a [u16], checksum: bool) -> WatchInput<'a> {
        WatchInput {
            managed,
            checksum,
            full_read_done: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn startup_verification_reads_managed_slots_within_the_budget() {
        let config = WatchConfig {
            startup_verify_reads: 2,
            ..Default::default()
        };
        let mut w = WatchState::default();
        let now = Instant::now();
        let (r, _) = w.next(input(&[3, 5, 9], false), &config, now);
        assert_eq!(r, Some(Read::Slots(vec![3, 5])));
        // (A long verification goes in batches.)
        let mut many = WatchState::default();
        let managed: Vec<u16> = (1..=10).collect();
        let (r, _) = many.next(input(&managed, false), &WatchConfig::default(), now);
        assert_eq!(r, Some(Read::Slots(vec![1, 2, 3, 4])));
        let (r, _) = many.next(input(&managed, false), &WatchConfig::default(), now);
        assert_eq!(r, Some(Read::Slots(vec![5, 6, 7, 8])));
        // Then nothing until the round robin, which goes on with slot 9.
        let (r, due) = w.next(input(&[3, 5, 9], false), &config, now);
        assert_eq!(r, None);
        let (r, _) = w.next(input(&[3, 5, 9], false), &config, due.unwrap());
        assert_eq!(r, Some(Read::Slots(vec![9])));
    }

    #[tokio::test(start_paused = true)]
    async fn a_checksum_lock_is_verified_with_one_frame_when_it_matches() {
        let config = WatchConfig::default();
        let mut w = WatchState::default();
        let now = Instant::now();
        // A lock holding nothing of zwlock's has nothing to verify.
        assert_eq!(w.next(input(&[], true), &config, now).0, None);
        let mut w = WatchState::default();
        assert_eq!(
            w.next(input(&[3], true), &config, now).0,
            Some(Read::Checksum)
        );
        assert!(!w.on_checksum(0x1234, Some(0x1234)));
        assert_eq!(w.next(input(&[3], true), &config, now).0, None);
        // After a restart, with no table to compare: read.
        let mut w = WatchState::default();
        w.next(input(&[3], true), &config, now);
        assert!(w.on_checksum(0x1234, None));
        // A later poll with the same answer and no table: unchanged.
        assert!(!w.on_checksum(0x1234, None));
        assert!(w.on_checksum(0x9999, None));
    }

    #[test]
    fn a_disabled_code_counts_as_disabled_in_the_checksum() {
        use crate::cc::UserIdStatus;
        let row = |slot: u16, code: &str, disabled: bool| SlotRow {
            device_id: Uuid::nil(),
            slot,
            state: SlotState::Occupied,
            code: Some(code.into()),
            unmanaged_id: Uuid::nil(),
            reported_at: chrono::Utc::now(),
            disabled,
        };
        let slots = [row(1, "1234", false), row(7, "24680", true)];
        let lock = user_code_checksum([
            (1, UserIdStatus::Enabled, &b"1234"[..]),
            (7, UserIdStatus::Disabled, &b"24680"[..]),
        ]);
        assert_eq!(expected_checksum(&slots, true), Some(lock));
    }

    #[test]
    fn a_checksum_the_managed_slots_do_not_explain_reads_the_whole_lock() {
        let mut w = WatchState::default();
        w.explain(0xBEEF);
        w.reads_done(Some(0xBEEF));
        assert_eq!(w.full_read_next, None, "explained");
        w.explain(0xBEEF);
        w.reads_done(Some(0x1234));
        assert_eq!(w.full_read_next, Some(1), "an unmanaged slot changed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_notification_followed_by_the_report_costs_no_read() {
        let config = WatchConfig::default();
        let mut w = WatchState::default();
        let now = Instant::now();
        let grace = Duration::from_secs(2);
        w.want_after([7], now + grace);
        let (r, due) = w.next(input(&[], false), &config, now);
        assert_eq!((r, due), (None, Some(now + grace)), "waits for the report");
        w.reported([7]);
        let (r, _) = w.next(input(&[], false), &config, now + grace);
        assert_eq!(r, None, "the report said it all");
        // Without the report, the slot is read once the grace is over.
        w.want_after([8], now + grace);
        assert_eq!(
            w.next(input(&[], false), &config, now + grace).0,
            Some(Read::Slots(vec![8]))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_sight_full_read_comes_first() {
        let config = WatchConfig::default();
        let mut w = WatchState::default();
        let i = WatchInput {
            managed: &[],
            checksum: false,
            full_read_done: false,
        };
        assert_eq!(w.next(i, &config, Instant::now()).0, Some(Read::Page(1)));
    }
}
