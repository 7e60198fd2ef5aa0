//! Watching locks for codes changed outside zwlock, spending as little radio as possible.
//!
//! Cheapest first:
//! * a notification or alarm about a slot (added, deleted, keypad use of an unknown slot)
//!   queues a read of that slot only; "all codes deleted" marks every slot empty at once;
//! * User Code v2 locks with the checksum: one Checksum Get per poll; only when it differs from
//!   the checksum of the known slot table (or the last one the lock reported) are the codes read,
//!   in bulk when the lock can;
//! * other locks: the managed slots are read round-robin within a per-lock budget of frames per
//!   hour, so each is verified within `managed slots / budget` hours;
//! * a full read of every slot runs once, when a lock is first seen (to learn its unmanaged
//!   codes), and on demand.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use uuid::Uuid;

use super::engine::{Engine, EngineError};
use super::external::{self, SlotReading};
use super::slot_commands::get_command;
use crate::cc::user_code::UserCodeEntry;
use crate::cc::{code::user_code_checksum, Command, UserCodeCommand};
use crate::driver::{DriverError, NodeInfo, Priority};
use crate::serialapi::NodeId;
use crate::store::{DeviceRow, SlotState, Store, StoreError};

/// How much radio watching may spend.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Round-robin slot reads per hour on locks without a usable checksum.
    pub poll_frames_per_hour: u32,
    /// Time between checksum polls on locks with one.
    pub checksum_interval: Duration,
    /// Read every slot once when a lock is first seen.
    pub full_read_on_first_sight: bool,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            poll_frames_per_hour: 12,
            checksum_interval: Duration::from_secs(15 * 60),
            full_read_on_first_sight: true,
        }
    }
}

/// Per-lock watching state (in memory; a restart begins with a checksum poll).
#[derive(Debug, Default)]
pub(super) struct WatchState {
    /// Slots to read because the lock said something about them.
    pending: BTreeSet<u16>,
    /// A full read in progress: the next user id to ask for.
    full_read_next: Option<u16>,
    next_poll: Option<Instant>,
    round_robin: usize,
    /// The checksum the lock reported last, after zwlock's own changes settled.
    baseline: Option<u16>,
    /// SYNC_ACCESS_CODES action attempts that finish with the full read.
    sync_attempts: Vec<Uuid>,
}

/// A read to do now.
#[derive(Debug)]
pub(super) enum Read {
    Slots(Vec<u16>),
    FullReadFrom(u16),
    Checksum,
}

fn key(device: &Uuid) -> String {
    format!("full_read_done:{device}")
}

impl Engine {
    fn with_watch<T>(&self, device: &Uuid, f: impl FnOnce(&mut WatchState) -> T) -> T {
        let mut map = self.inner.watch.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(*device).or_default())
    }

    /// Ask for a read of `slots` (a notification named them).
    pub(super) fn want_read(&self, device: &Uuid, slots: impl IntoIterator<Item = u16>) {
        self.with_watch(device, |w| w.pending.extend(slots));
        self.wake(*device);
    }

    /// Ask for a full read of a lock (the API's sync, or first sight).
    pub fn request_full_read(&self, device: &Uuid) {
        self.with_watch(device, |w| w.full_read_next = Some(1));
        self.wake(*device);
    }

    /// Read every slot of a lock again (the API's sync): a pending SYNC_ACCESS_CODES action
    /// attempt that succeeds when the read is done.
    pub fn sync_access_codes(&self, device: &Uuid) -> Result<serde_json::Value, EngineError> {
        self.device_row(device)?;
        let now = self.now();
        let attempt = self
            .with_store(|s| Self::attempt(s.conn(), "SYNC_ACCESS_CODES", "pending", None, &now))?;
        self.with_watch(device, |w| w.sync_attempts.push(attempt.action_attempt_id));
        self.request_full_read(device);
        Ok(super::model::attempt_json(&attempt))
    }

    /// zwlock changed the lock itself: the next checksum is the new baseline.
    pub(super) fn forget_checksum(&self, device: &Uuid) {
        self.with_watch(device, |w| w.baseline = None);
    }
}

fn node_info(device: &DeviceRow) -> Option<NodeInfo> {
    device
        .info_json
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
}

/// What to read next on `device`, if anything is due; otherwise when the next poll is due.
pub(super) fn next(
    engine: &Engine,
    device: &DeviceRow,
) -> Result<(Option<Read>, Option<Instant>), StoreError> {
    let config = engine.watch_config();
    let first_sight = config.full_read_on_first_sight
        && engine
            .with_store(|s| Store::state(s.conn(), &key(&device.device_id)))?
            .is_none();
    let managed: Vec<u16> = engine.with_store(|s| {
        Ok(Store::device_codes(s.conn(), &device.device_id)?
            .iter()
            .filter(|c| c.programmed_code.is_some())
            .filter_map(|c| c.slot)
            .collect())
    })?;
    let uc = node_info(device).and_then(|i| i.user_code);
    let checksum = uc.as_ref().is_some_and(|u| u.version >= 2 && u.checksum);
    let now = Instant::now();
    Ok(engine.with_watch(&device.device_id, |w| {
        if first_sight && w.full_read_next.is_none() {
            w.full_read_next = Some(1);
        }
        if !w.pending.is_empty() {
            let slots: Vec<u16> = std::mem::take(&mut w.pending).into_iter().collect();
            return (Some(Read::Slots(slots)), None);
        }
        if let Some(n) = w.full_read_next {
            return (Some(Read::FullReadFrom(n)), None);
        }
        let interval = if checksum {
            config.checksum_interval
        } else {
            Duration::from_secs_f64(3600.0 / f64::from(config.poll_frames_per_hour.max(1)))
        };
        let due = *w.next_poll.get_or_insert(now + interval);
        if due > now {
            return (None, Some(due));
        }
        w.next_poll = Some(now + interval);
        if checksum {
            (Some(Read::Checksum), None)
        } else if managed.is_empty() {
            (None, w.next_poll)
        } else {
            let slot = managed[w.round_robin % managed.len()];
            w.round_robin = w.round_robin.wrapping_add(1);
            (Some(Read::Slots(vec![slot])), None)
        }
    }))
}

fn readings_of(report: &Command) -> Vec<SlotReading> {
    match report {
        Command::UserCode(UserCodeCommand::Report {
            user_id,
            user_id_status,
            user_code,
        }) => {
            vec![SlotReading::from_report(
                u16::from(*user_id),
                *user_id_status,
                user_code,
            )]
        }
        Command::UserCode(UserCodeCommand::ExtendedUserCodeReport { entries, .. }) => entries
            .iter()
            .map(|e: &UserCodeEntry| {
                SlotReading::from_report(e.user_id, e.user_id_status, &e.user_code)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Do a read. Returns a lock-wide backoff when the lock did not answer.
pub(super) async fn run(
    engine: &Engine,
    device: &DeviceRow,
    read: Read,
) -> Result<Option<Duration>, StoreError> {
    let driver = engine.inner.driver.clone();
    let node = NodeId(device.node_id);
    let id = device.device_id;
    let backoff = |e: &DriverError| match e {
        DriverError::NodeUnreachable { retry_after, .. } => Some(*retry_after),
        _ => Some(Duration::from_secs(10)),
    };
    match read {
        Read::Slots(slots) => {
            for (i, slot) in slots.iter().enumerate() {
                match driver
                    .get(node, get_command(*slot), Priority::Background)
                    .await
                {
                    Ok(report) => {
                        let readings: Vec<SlotReading> = readings_of(&report)
                            .into_iter()
                            .filter(|r| r.slot == *slot)
                            .collect();
                        if external::observe(engine, &id, &readings, &Utc::now())? {
                            engine.forget_checksum(&id);
                        }
                    }
                    Err(e) => {
                        // Keep the unread ones for later.
                        engine.with_watch(&id, |w| w.pending.extend(slots[i..].iter().copied()));
                        return Ok(backoff(&e));
                    }
                }
            }
            Ok(None)
        }
        Read::FullReadFrom(start) => {
            let uc = node_info(device).and_then(|i| i.user_code);
            let bulk = uc
                .as_ref()
                .is_some_and(|u| u.version >= 2 && u.bulk_reports);
            let count = device.slot_count.max(1);
            let cmd = if bulk {
                Command::UserCode(UserCodeCommand::ExtendedUserCodeGet {
                    user_id: start,
                    report_more: true,
                })
            } else {
                get_command(start)
            };
            match driver.get(node, cmd, Priority::Background).await {
                Ok(report) => {
                    let readings = readings_of(&report);
                    let next = match &report {
                        Command::UserCode(UserCodeCommand::ExtendedUserCodeReport {
                            next_user_id,
                            ..
                        }) if bulk => *next_user_id,
                        _ => start.saturating_add(1),
                    };
                    external::observe(engine, &id, &readings, &Utc::now())?;
                    let done = next == 0 || next > count || next <= start;
                    engine.with_watch(&id, |w| w.full_read_next = (!done).then_some(next));
                    if done {
                        let attempts =
                            engine.with_watch(&id, |w| std::mem::take(&mut w.sync_attempts));
                        let now = engine.now();
                        engine.with_store(|s| {
                            Store::set_state(s.conn(), &key(&id), &now.to_rfc3339())?;
                            for a in &attempts {
                                if let Some(mut row) = Store::attempt(s.conn(), a)? {
                                    row.status = "success".into();
                                    row.result = Some(serde_json::json!({}));
                                    row.updated_at = now;
                                    Store::put_attempt(s.conn(), &row)?;
                                }
                            }
                            Ok(())
                        })?;
                        tracing::info!(
                            node = device.node_id,
                            slots = count,
                            "full read of the lock done"
                        );
                    }
                    Ok(None)
                }
                Err(e) => Ok(backoff(&e)),
            }
        }
        Read::Checksum => match driver
            .get(
                node,
                Command::UserCode(UserCodeCommand::UserCodeChecksumGet),
                Priority::Background,
            )
            .await
        {
            Ok(Command::UserCode(UserCodeCommand::UserCodeChecksumReport { checksum })) => {
                let expected = expected_checksum(engine, &id)?;
                let baseline = engine.with_watch(&id, |w| w.baseline);
                // Unchanged since the lock's last answer means unchanged, whatever the table
                // computes (it takes every code as enabled; a disabled one would differ).
                let changed = match (expected, baseline) {
                    (_, Some(b)) if b == checksum => false,
                    (Some(e), _) => e != checksum,
                    (None, Some(b)) => b != checksum,
                    (None, None) => false,
                };
                engine.with_watch(&id, |w| w.baseline = Some(checksum));
                if changed {
                    tracing::info!(node = device.node_id, "checksum changed: reading the codes");
                    let uc = node_info(device).and_then(|i| i.user_code);
                    if uc.is_some_and(|u| u.bulk_reports) {
                        engine.with_watch(&id, |w| w.full_read_next = Some(1));
                    } else {
                        let managed: Vec<u16> = engine.with_store(|s| {
                            Ok(Store::device_codes(s.conn(), &id)?
                                .iter()
                                .filter_map(|c| c.slot)
                                .collect())
                        })?;
                        engine.with_watch(&id, |w| w.pending.extend(managed));
                    }
                }
                Ok(None)
            }
            Ok(_) => Ok(None),
            Err(e) => Ok(backoff(&e)),
        },
    }
}

/// The checksum of the slot table, when every occupied slot's code is known.
fn expected_checksum(engine: &Engine, device: &Uuid) -> Result<Option<u16>, StoreError> {
    engine.with_store(|s| {
        let slots = Store::slots(s.conn(), device)?;
        if slots.iter().any(|s| s.state == SlotState::Hidden) {
            return Ok(None);
        }
        if Store::state(s.conn(), &key(device))?.is_none() {
            return Ok(None); // the table is not complete before the first full read
        }
        let codes: Vec<(u16, Vec<u8>)> = slots
            .iter()
            .filter(|s| s.state == SlotState::Occupied)
            .filter_map(|s| s.code.as_ref().map(|c| (s.slot, c.as_bytes().to_vec())))
            .collect();
        Ok(Some(user_code_checksum(codes.iter().map(
            |(slot, code)| (*slot, crate::cc::UserIdStatus::Enabled, code.as_slice()),
        ))))
    })
}

/// Map type for the engine's watch states.
pub(super) type WatchMap = HashMap<Uuid, WatchState>;
