//! On-lock schedules: a time-bound code on a lock with Schedule Entry Lock CC is programmed
//! ahead of its window with a year-day schedule, so the lock itself enforces the window even
//! when the hub is down.
//!
//! Programming order: the lock clock (Time Parameters, UTC), the year-day schedule, schedule
//! enforcement on for the user, then the code itself, so the code never works unrestricted.
//! A slot that carried a schedule is marked in the store; before anything else goes into it,
//! or when it is cleared, enforcement is switched off and the schedule erased, so a stale
//! schedule never restricts the next code.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use rusqlite::Connection;
use uuid::Uuid;

use crate::cc::schedule_entry_lock::{YearDaySchedule, ACTION_ERASE, ACTION_SET};
use crate::cc::time_parameters::DateTime as LockTime;
use crate::cc::{Command, ScheduleEntryLockCommand, TimeParametersCommand};
use crate::driver::NodeInfo;
use crate::store::{CodeRow, DeviceRow, Store, StoreError};

/// How long before its start a natively scheduled code is programmed.
pub const LEAD: Duration = Duration::hours(72);

/// Year-day schedule slot zwlock uses for each user.
const SCHEDULE_SLOT: u8 = 1;

/// Whether the lock enforces schedules itself and keeps a clock zwlock can set.
pub(super) fn supported(device: &DeviceRow) -> bool {
    let Some(info) = device
        .info_json
        .as_deref()
        .and_then(|j| serde_json::from_str::<NodeInfo>(j).ok())
    else {
        return false;
    };
    let has = |cc: u8| {
        info.versions.get(&cc).is_some_and(|v| *v > 0)
            || info
                .command_classes
                .as_ref()
                .is_some_and(|c| c.contains(&cc))
    };
    has(crate::cc::schedule_entry_lock::ID) && has(crate::cc::time_parameters::ID)
}

/// Whether `code` is to be scheduled on a lock that `can` (see [`supported`]).
pub(super) fn wants_native(code: &CodeRow, can: bool, synced: bool) -> bool {
    can && synced
        && code.prefer_native_scheduling
        && code.starts_at.is_some()
        && code.ends_at.is_some()
        && code.slot.is_none_or(|s| s <= u16::from(u8::MAX))
}

/// When a natively scheduled code goes on the lock.
pub(super) fn program_from(code: &CodeRow) -> Option<DateTime<Utc>> {
    code.starts_at.map(|s| s - LEAD)
}

fn lock_time(t: &DateTime<Utc>) -> LockTime {
    LockTime {
        year: u16::try_from(t.year()).unwrap_or(0),
        month: t.month() as u8,
        day: t.day() as u8,
        hour: t.hour() as u8,
        minute: t.minute() as u8,
        second: t.second() as u8,
    }
}

/// The year-day schedule for a window; minutes are the lock's resolution, so the start is
/// rounded down and the stop up (the lock never refuses inside the window).
pub fn year_day(starts: &DateTime<Utc>, ends: &DateTime<Utc>) -> YearDaySchedule {
    let stop = if ends.second() > 0 || ends.nanosecond() > 0 {
        *ends + Duration::minutes(1)
    } else {
        *ends
    };
    let yy = |t: &DateTime<Utc>| u8::try_from(t.year() - 2000).unwrap_or(99);
    YearDaySchedule {
        start_year: yy(starts),
        start_month: starts.month() as u8,
        start_day: starts.day() as u8,
        start_hour: starts.hour() as u8,
        start_minute: starts.minute() as u8,
        stop_year: yy(&stop),
        stop_month: stop.month() as u8,
        stop_day: stop.day() as u8,
        stop_hour: stop.hour() as u8,
        stop_minute: stop.minute() as u8,
    }
}

/// What goes to the lock before the code when scheduling it on the lock.
pub(super) fn program_commands(
    user_id: u8,
    starts: &DateTime<Utc>,
    ends: &DateTime<Utc>,
    now: &DateTime<Utc>,
) -> Vec<Command> {
    vec![
        Command::TimeParameters(TimeParametersCommand::Set(lock_time(now))),
        Command::ScheduleEntryLock(ScheduleEntryLockCommand::YearDaySet {
            action: ACTION_SET,
            user_id,
            slot_id: SCHEDULE_SLOT,
            schedule: year_day(starts, ends),
        }),
        Command::ScheduleEntryLock(ScheduleEntryLockCommand::EnableSet {
            user_id,
            enabled: true,
        }),
    ]
}

/// What switches a user's schedule off and erases it.
pub(super) fn unprogram_commands(user_id: u8) -> Vec<Command> {
    vec![
        Command::ScheduleEntryLock(ScheduleEntryLockCommand::EnableSet {
            user_id,
            enabled: false,
        }),
        Command::ScheduleEntryLock(ScheduleEntryLockCommand::YearDaySet {
            action: ACTION_ERASE,
            user_id,
            slot_id: SCHEDULE_SLOT,
            schedule: YearDaySchedule {
                start_year: 0,
                start_month: 0,
                start_day: 0,
                start_hour: 0,
                start_minute: 0,
                stop_year: 0,
                stop_month: 0,
                stop_day: 0,
                stop_hour: 0,
                stop_minute: 0,
            },
        }),
    ]
}

fn key(device: &Uuid, slot: u16) -> String {
    format!("schedule:{device}:{slot}")
}

/// Whether a slot carries a schedule zwlock put there.
pub(super) fn slot_scheduled(
    conn: &Connection,
    device: &Uuid,
    slot: u16,
) -> Result<bool, StoreError> {
    Ok(Store::state(conn, &key(device, slot))?.is_some())
}

/// Record that a slot carries a schedule (before the commands go out) or no longer does.
pub(super) fn mark_slot(
    conn: &Connection,
    device: &Uuid,
    slot: u16,
    scheduled: bool,
) -> Result<(), StoreError> {
    if scheduled {
        Store::set_state(conn, &key(device, slot), "year_day")
    } else {
        Store::delete_state(conn, &key(device, slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_window_is_rounded_outwards_to_whole_minutes() {
        let s = Utc.with_ymd_and_hms(2026, 12, 24, 15, 30, 45).unwrap();
        let e = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 30).unwrap();
        let y = year_day(&s, &e);
        assert_eq!(
            (
                y.start_year,
                y.start_month,
                y.start_day,
                y.start_hour,
                y.start_minute
            ),
            (26, 12, 24, 15, 30)
        );
        assert_eq!(
            (
                y.stop_year,
                y.stop_month,
                y.stop_day,
                y.stop_hour,
                y.stop_minute
            ),
            (27, 1, 1, 0, 0)
        );
    }

    #[test]
    fn programming_sets_clock_then_schedule_then_enforcement() {
        let s = Utc.with_ymd_and_hms(2026, 12, 24, 15, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 23, 9, 8, 7).unwrap();
        let cmds = program_commands(7, &s, &(s + Duration::hours(2)), &now);
        let bytes: Vec<Vec<u8>> = cmds.iter().map(Command::encode).collect();
        assert_eq!(bytes[0], [0x8B, 0x01, 0x07, 0xEA, 12, 23, 9, 8, 7]);
        assert_eq!(
            bytes[1],
            [0x4E, 0x06, 1, 7, 1, 26, 12, 24, 15, 0, 26, 12, 24, 17, 0]
        );
        assert_eq!(bytes[2], [0x4E, 0x01, 7, 1]);
        let off: Vec<Vec<u8>> = unprogram_commands(7).iter().map(Command::encode).collect();
        assert_eq!(off[0], [0x4E, 0x01, 7, 0]);
        assert_eq!(off[1][..5], [0x4E, 0x06, 0, 7, 1]);
    }
}
