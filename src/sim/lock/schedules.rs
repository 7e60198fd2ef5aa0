//! Schedule Entry Lock: year-day schedules the lock enforces on its own clock.

use super::*;

impl Lock {
    pub(super) fn schedule(
        &mut self,
        s: &ScheduleEntryLockCommand,
        out: &mut Vec<Vec<u8>>,
    ) -> Outcome {
        use ScheduleEntryLockCommand as S;
        match s {
            S::SupportedGet => out.push(
                Command::ScheduleEntryLock(S::SupportedReport {
                    week_day_slots: 0,
                    year_day_slots: 1,
                    daily_repeating_slots: Some(0),
                })
                .encode(),
            ),
            S::EnableSet { user_id, enabled } => {
                self.schedule_enabled.insert(*user_id, *enabled);
            }
            S::EnableAllSet { enabled } => {
                for id in 1..=self.max_slots().min(255) as u8 {
                    self.schedule_enabled.insert(id, *enabled);
                }
            }
            S::YearDaySet {
                action,
                user_id,
                slot_id,
                schedule,
            } => {
                if *slot_id != 1 || u16::from(*user_id) > self.max_slots() {
                    return Outcome::Rejected;
                }
                if *action == ACTION_SET {
                    self.year_day.insert((*user_id, *slot_id), *schedule);
                } else {
                    self.year_day.remove(&(*user_id, *slot_id));
                }
            }
            S::YearDayGet { user_id, slot_id } => {
                let schedule =
                    self.year_day
                        .get(&(*user_id, *slot_id))
                        .copied()
                        .unwrap_or(YearDaySchedule {
                            start_year: 0xFF,
                            start_month: 0xFF,
                            start_day: 0xFF,
                            start_hour: 0xFF,
                            start_minute: 0xFF,
                            stop_year: 0xFF,
                            stop_month: 0xFF,
                            stop_day: 0xFF,
                            stop_hour: 0xFF,
                            stop_minute: 0xFF,
                        });
                out.push(
                    Command::ScheduleEntryLock(S::YearDayReport {
                        user_id: *user_id,
                        slot_id: *slot_id,
                        schedule,
                    })
                    .encode(),
                );
            }
            _ => return Outcome::Unsupported,
        }
        Outcome::Accepted
    }

    /// Whether the lock's own schedule lets `user_id` in now.
    pub(super) fn schedule_allows(&self, user_id: u16, now_secs: f64) -> bool {
        let Ok(uid) = u8::try_from(user_id) else {
            return true;
        };
        if !self.schedule_enabled.get(&uid).copied().unwrap_or(false) {
            return true;
        }
        let (Some(s), Some(now)) = (self.year_day.get(&(uid, 1)), self.lock_time(now_secs)) else {
            // Schedule enforcement on, but no schedule or no clock: the lock refuses.
            return false;
        };
        let at = |y: u8, mo: u8, d: u8, h: u8, mi: u8| {
            NaiveDate::from_ymd_opt(2000 + i32::from(y), u32::from(mo), u32::from(d))
                .and_then(|date| date.and_hms_opt(u32::from(h), u32::from(mi), 0))
        };
        match (
            at(
                s.start_year,
                s.start_month,
                s.start_day,
                s.start_hour,
                s.start_minute,
            ),
            at(
                s.stop_year,
                s.stop_month,
                s.stop_day,
                s.stop_hour,
                s.stop_minute,
            ),
        ) {
            (Some(a), Some(b)) => a <= now && now < b,
            _ => false,
        }
    }
}
