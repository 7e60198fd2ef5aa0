//! Schedule Entry Lock CC (0x4E): schedules a lock enforces itself, per user id.

use bytes::BufMut;
use nom::combinator::opt;
use nom::number::complete::be_u8;
use serde::Serialize;

use super::error::{parse_cc, CcError};

pub const ID: u8 = 0x4E;
const CLASS: &str = "ScheduleEntryLock";

pub mod cmd {
    pub const ENABLE_SET: u8 = 0x01;
    pub const ENABLE_ALL_SET: u8 = 0x02;
    pub const WEEK_DAY_SET: u8 = 0x03;
    pub const WEEK_DAY_GET: u8 = 0x04;
    pub const WEEK_DAY_REPORT: u8 = 0x05;
    pub const YEAR_DAY_SET: u8 = 0x06;
    pub const YEAR_DAY_GET: u8 = 0x07;
    pub const YEAR_DAY_REPORT: u8 = 0x08;
    pub const SUPPORTED_GET: u8 = 0x09;
    pub const SUPPORTED_REPORT: u8 = 0x0A;
    pub const TIME_OFFSET_GET: u8 = 0x0B;
    pub const TIME_OFFSET_REPORT: u8 = 0x0C;
    pub const TIME_OFFSET_SET: u8 = 0x0D;
    pub const DAILY_REPEATING_GET: u8 = 0x0E;
    pub const DAILY_REPEATING_REPORT: u8 = 0x0F;
    pub const DAILY_REPEATING_SET: u8 = 0x10;
}

/// Set action: 0 erase, 1 modify/set.
pub const ACTION_ERASE: u8 = 0;
pub const ACTION_SET: u8 = 1;

/// A week-day schedule: every `weekday` (0 = Sunday) from start to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WeekDaySchedule {
    pub weekday: u8,
    pub start_hour: u8,
    pub start_minute: u8,
    pub stop_hour: u8,
    pub stop_minute: u8,
}

/// A year-day schedule: from one date and time to another (year 0–99 = 2000–2099).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct YearDaySchedule {
    pub start_year: u8,
    pub start_month: u8,
    pub start_day: u8,
    pub start_hour: u8,
    pub start_minute: u8,
    pub stop_year: u8,
    pub stop_month: u8,
    pub stop_day: u8,
    pub stop_hour: u8,
    pub stop_minute: u8,
}

impl YearDaySchedule {
    fn bytes(&self) -> [u8; 10] {
        [
            self.start_year,
            self.start_month,
            self.start_day,
            self.start_hour,
            self.start_minute,
            self.stop_year,
            self.stop_month,
            self.stop_day,
            self.stop_hour,
            self.stop_minute,
        ]
    }

    fn from_bytes(b: &[u8]) -> Self {
        YearDaySchedule {
            start_year: b[0],
            start_month: b[1],
            start_day: b[2],
            start_hour: b[3],
            start_minute: b[4],
            stop_year: b[5],
            stop_month: b[6],
            stop_day: b[7],
            stop_hour: b[8],
            stop_minute: b[9],
        }
    }

    /// All fields 0xFF: the slot holds no schedule.
    pub fn is_empty(&self) -> bool {
        self.bytes().iter().all(|b| *b == 0xFF)
    }
}

/// A daily repeating schedule (v3): on the days in `weekday_mask` (bit0 = Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DailyRepeatingSchedule {
    pub weekday_mask: u8,
    pub start_hour: u8,
    pub start_minute: u8,
    pub duration_hour: u8,
    pub duration_minute: u8,
}

/// The lock's time zone and daylight saving offsets (v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeOffset {
    /// Signed hours of the time zone offset.
    pub hour_tzo: i8,
    pub minute_tzo: u8,
    /// Signed minutes of the daylight saving offset.
    pub minute_offset_dst: i8,
}

impl TimeOffset {
    fn to_bytes(self) -> [u8; 3] {
        let sign = |neg: bool| if neg { 0x80 } else { 0 };
        [
            sign(self.hour_tzo < 0) | (self.hour_tzo.unsigned_abs() & 0x7F),
            self.minute_tzo,
            sign(self.minute_offset_dst < 0) | (self.minute_offset_dst.unsigned_abs() & 0x7F),
        ]
    }

    fn from_bytes(b: &[u8]) -> Self {
        let signed = |v: u8| {
            let mag = (v & 0x7F) as i8;
            if v & 0x80 != 0 {
                -mag
            } else {
                mag
            }
        };
        TimeOffset {
            hour_tzo: signed(b[0]),
            minute_tzo: b[1],
            minute_offset_dst: signed(b[2]),
        }
    }
}

/// Every Schedule Entry Lock command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ScheduleEntryLockCommand {
    EnableSet {
        user_id: u8,
        enabled: bool,
    },
    EnableAllSet {
        enabled: bool,
    },
    WeekDaySet {
        action: u8,
        user_id: u8,
        slot_id: u8,
        schedule: WeekDaySchedule,
    },
    WeekDayGet {
        user_id: u8,
        slot_id: u8,
    },
    WeekDayReport {
        user_id: u8,
        slot_id: u8,
        schedule: WeekDaySchedule,
    },
    YearDaySet {
        action: u8,
        user_id: u8,
        slot_id: u8,
        schedule: YearDaySchedule,
    },
    YearDayGet {
        user_id: u8,
        slot_id: u8,
    },
    YearDayReport {
        user_id: u8,
        slot_id: u8,
        schedule: YearDaySchedule,
    },
    SupportedGet,
    SupportedReport {
        week_day_slots: u8,
        year_day_slots: u8,
        daily_repeating_slots: Option<u8>,
    },
    TimeOffsetGet,
    TimeOffsetReport(TimeOffset),
    TimeOffsetSet(TimeOffset),
    DailyRepeatingGet {
        user_id: u8,
        slot_id: u8,
    },
    DailyRepeatingReport {
        user_id: u8,
        slot_id: u8,
        schedule: DailyRepeatingSchedule,
    },
    DailyRepeatingSet {
        action: u8,
        user_id: u8,
        slot_id: u8,
        schedule: DailyRepeatingSchedule,
    },
}

impl ScheduleEntryLockCommand {
    pub fn name(&self) -> &'static str {
        use ScheduleEntryLockCommand::*;
        match self {
            EnableSet { .. } => "EnableSet",
            EnableAllSet { .. } => "EnableAllSet",
            WeekDaySet { .. } => "WeekDaySet",
            WeekDayGet { .. } => "WeekDayGet",
            WeekDayReport { .. } => "WeekDayReport",
            YearDaySet { .. } => "YearDaySet",
            YearDayGet { .. } => "YearDayGet",
            YearDayReport { .. } => "YearDayReport",
            SupportedGet => "SupportedGet",
            SupportedReport { .. } => "SupportedReport",
            TimeOffsetGet => "TimeOffsetGet",
            TimeOffsetReport(_) => "TimeOffsetReport",
            TimeOffsetSet(_) => "TimeOffsetSet",
            DailyRepeatingGet { .. } => "DailyRepeatingGet",
            DailyRepeatingReport { .. } => "DailyRepeatingReport",
            DailyRepeatingSet { .. } => "DailyRepeatingSet",
        }
    }

    pub fn command_id(&self) -> u8 {
        use ScheduleEntryLockCommand::*;
        match self {
            EnableSet { .. } => cmd::ENABLE_SET,
            EnableAllSet { .. } => cmd::ENABLE_ALL_SET,
            WeekDaySet { .. } => cmd::WEEK_DAY_SET,
            WeekDayGet { .. } => cmd::WEEK_DAY_GET,
            WeekDayReport { .. } => cmd::WEEK_DAY_REPORT,
            YearDaySet { .. } => cmd::YEAR_DAY_SET,
            YearDayGet { .. } => cmd::YEAR_DAY_GET,
            YearDayReport { .. } => cmd::YEAR_DAY_REPORT,
            SupportedGet => cmd::SUPPORTED_GET,
            SupportedReport { .. } => cmd::SUPPORTED_REPORT,
            TimeOffsetGet => cmd::TIME_OFFSET_GET,
            TimeOffsetReport(_) => cmd::TIME_OFFSET_REPORT,
            TimeOffsetSet(_) => cmd::TIME_OFFSET_SET,
            DailyRepeatingGet { .. } => cmd::DAILY_REPEATING_GET,
            DailyRepeatingReport { .. } => cmd::DAILY_REPEATING_REPORT,
            DailyRepeatingSet { .. } => cmd::DAILY_REPEATING_SET,
        }
    }

    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        use ScheduleEntryLockCommand as S;
        // Fixed-size commands: take the bytes, then build from the slice.
        let fixed = |name: &'static str, n: usize| -> Result<&[u8], CcError> {
            if p.len() < n {
                Err(CcError::Truncated {
                    class: CLASS,
                    command: name,
                })
            } else {
                Ok(&p[..n])
            }
        };
        let week = |b: &[u8]| WeekDaySchedule {
            weekday: b[0],
            start_hour: b[1],
            start_minute: b[2],
            stop_hour: b[3],
            stop_minute: b[4],
        };
        let daily = |b: &[u8]| DailyRepeatingSchedule {
            weekday_mask: b[0],
            start_hour: b[1],
            start_minute: b[2],
            duration_hour: b[3],
            duration_minute: b[4],
        };
        let v = match command {
            cmd::ENABLE_SET => {
                let b = fixed("EnableSet", 2)?;
                S::EnableSet {
                    user_id: b[0],
                    enabled: b[1] != 0,
                }
            }
            cmd::ENABLE_ALL_SET => S::EnableAllSet {
                enabled: fixed("EnableAllSet", 1)?[0] != 0,
            },
            cmd::WEEK_DAY_SET => {
                let b = fixed("WeekDaySet", 8)?;
                S::WeekDaySet {
                    action: b[0],
                    user_id: b[1],
                    slot_id: b[2],
                    schedule: week(&b[3..]),
                }
            }
            cmd::WEEK_DAY_GET => {
                let b = fixed("WeekDayGet", 2)?;
                S::WeekDayGet {
                    user_id: b[0],
                    slot_id: b[1],
                }
            }
            cmd::WEEK_DAY_REPORT => {
                let b = fixed("WeekDayReport", 7)?;
                S::WeekDayReport {
                    user_id: b[0],
                    slot_id: b[1],
                    schedule: week(&b[2..]),
                }
            }
            cmd::YEAR_DAY_SET => {
                let b = fixed("YearDaySet", 13)?;
                S::YearDaySet {
                    action: b[0],
                    user_id: b[1],
                    slot_id: b[2],
                    schedule: YearDaySchedule::from_bytes(&b[3..]),
                }
            }
            cmd::YEAR_DAY_GET => {
                let b = fixed("YearDayGet", 2)?;
                S::YearDayGet {
                    user_id: b[0],
                    slot_id: b[1],
                }
            }
            cmd::YEAR_DAY_REPORT => {
                let b = fixed("YearDayReport", 12)?;
                S::YearDayReport {
                    user_id: b[0],
                    slot_id: b[1],
                    schedule: YearDaySchedule::from_bytes(&b[2..]),
                }
            }
            cmd::SUPPORTED_GET => S::SupportedGet,
            cmd::SUPPORTED_REPORT => parse_cc(CLASS, "SupportedReport", p, |i| {
                let (i, week_day_slots) = be_u8(i)?;
                let (i, year_day_slots) = be_u8(i)?;
                let (i, daily_repeating_slots) = opt(be_u8)(i)?;
                Ok((
                    i,
                    S::SupportedReport {
                        week_day_slots,
                        year_day_slots,
                        daily_repeating_slots,
                    },
                ))
            })?,
            cmd::TIME_OFFSET_GET => S::TimeOffsetGet,
            cmd::TIME_OFFSET_REPORT => {
                S::TimeOffsetReport(TimeOffset::from_bytes(fixed("TimeOffsetReport", 3)?))
            }
            cmd::TIME_OFFSET_SET => {
                S::TimeOffsetSet(TimeOffset::from_bytes(fixed("TimeOffsetSet", 3)?))
            }
            cmd::DAILY_REPEATING_GET => {
                let b = fixed("DailyRepeatingGet", 2)?;
                S::DailyRepeatingGet {
                    user_id: b[0],
                    slot_id: b[1],
                }
            }
            cmd::DAILY_REPEATING_REPORT => {
                let b = fixed("DailyRepeatingReport", 7)?;
                S::DailyRepeatingReport {
                    user_id: b[0],
                    slot_id: b[1],
                    schedule: daily(&b[2..]),
                }
            }
            cmd::DAILY_REPEATING_SET => {
                let b = fixed("DailyRepeatingSet", 8)?;
                S::DailyRepeatingSet {
                    action: b[0],
                    user_id: b[1],
                    slot_id: b[2],
                    schedule: daily(&b[3..]),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        use ScheduleEntryLockCommand as S;
        let week = |s: &WeekDaySchedule| {
            [
                s.weekday,
                s.start_hour,
                s.start_minute,
                s.stop_hour,
                s.stop_minute,
            ]
        };
        let daily = |s: &DailyRepeatingSchedule| {
            [
                s.weekday_mask,
                s.start_hour,
                s.start_minute,
                s.duration_hour,
                s.duration_minute,
            ]
        };
        match self {
            S::EnableSet { user_id, enabled } => out.put_slice(&[*user_id, u8::from(*enabled)]),
            S::EnableAllSet { enabled } => out.put_u8(u8::from(*enabled)),
            S::WeekDaySet {
                action,
                user_id,
                slot_id,
                schedule,
            } => {
                out.put_slice(&[*action, *user_id, *slot_id]);
                out.put_slice(&week(schedule));
            }
            S::WeekDayGet { user_id, slot_id }
            | S::YearDayGet { user_id, slot_id }
            | S::DailyRepeatingGet { user_id, slot_id } => out.put_slice(&[*user_id, *slot_id]),
            S::WeekDayReport {
                user_id,
                slot_id,
                schedule,
            } => {
                out.put_slice(&[*user_id, *slot_id]);
                out.put_slice(&week(schedule));
            }
            S::YearDaySet {
                action,
                user_id,
                slot_id,
                schedule,
            } => {
                out.put_slice(&[*action, *user_id, *slot_id]);
                out.put_slice(&schedule.bytes());
            }
            S::YearDayReport {
                user_id,
                slot_id,
                schedule,
            } => {
                out.put_slice(&[*user_id, *slot_id]);
                out.put_slice(&schedule.bytes());
            }
            S::SupportedGet | S::TimeOffsetGet => {}
            S::SupportedReport {
                week_day_slots,
                year_day_slots,
                daily_repeating_slots,
            } => {
                out.put_slice(&[*week_day_slots, *year_day_slots]);
                if let Some(d) = daily_repeating_slots {
                    out.put_u8(*d);
                }
            }
            S::TimeOffsetReport(t) | S::TimeOffsetSet(t) => out.put_slice(&t.to_bytes()),
            S::DailyRepeatingReport {
                user_id,
                slot_id,
                schedule,
            } => {
                out.put_slice(&[*user_id, *slot_id]);
                out.put_slice(&daily(schedule));
            }
            S::DailyRepeatingSet {
                action,
                user_id,
                slot_id,
                schedule,
            } => {
                out.put_slice(&[*action, *user_id, *slot_id]);
                out.put_slice(&daily(schedule));
            }
        }
    }
}
