//! The commands of an on-lock schedule: a year-day schedule (Schedule Entry Lock CC) for one
//! user, with the lock's clock set first (Time Parameters, UTC) and enforcement switched on.
//! Programming order: clock, schedule, enforcement, then the code, so the code never works
//! unrestricted; switching off: enforcement off, then the schedule erased.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};

use crate::cc::schedule_entry_lock::{YearDaySchedule, ACTION_ERASE, ACTION_SET};
use crate::cc::time_parameters::DateTime as LockTime;
use crate::cc::{Command, ScheduleEntryLockCommand, TimeParametersCommand};

/// Year-day schedule slot zwlock uses for each user.
const SCHEDULE_SLOT: u8 = 1;

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
pub fn program_commands(
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
pub fn unprogram_commands(user_id: u8) -> Vec<Command> {
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
