//! What people do at the lock: codes typed, programmed and deleted at the keypad, resets,
//! and writes by other controllers.

use super::*;

impl Lock {
    /// Someone types `pin` at the keypad. Returns the notifications and whether it unlocked.
    pub fn keypad_enter(&mut self, pin: &str, now_secs: f64) -> (bool, Vec<Vec<u8>>) {
        let found = self
            .slots
            .iter()
            .find(|(_, s)| s.status == UserIdStatus::Enabled && s.code == pin.as_bytes())
            .map(|(id, _)| *id);
        match found {
            Some(id) if self.schedule_allows(id, now_secs) => {
                self.door_mode = door_lock::mode::UNSECURED;
                (
                    true,
                    self.event(access_control::KEYPAD_UNLOCK, alarm::KEYPAD_UNLOCK, id)
                        .into_iter()
                        .collect(),
                )
            }
            _ => (false, Vec::new()),
        }
    }

    /// Someone programs `pin` into `slot` at the keypad (with the master code).
    pub fn keypad_program(&mut self, slot: u16, pin: &str) -> Vec<Vec<u8>> {
        if slot == 0 || slot > self.max_slots() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let saved = self.model.quirks.set_reads_back_available;
        self.model.quirks.set_reads_back_available = false;
        let outcome = self.set_slot(slot, UserIdStatus::Enabled, pin.as_bytes(), &mut out);
        self.model.quirks.set_reads_back_available = saved;
        if outcome == Outcome::Accepted {
            out.extend(self.event(access_control::NEW_USER_CODE_ADDED, alarm::CODE_ADDED, slot));
            out.extend(self.report_after_notification(slot));
        }
        out
    }

    /// The User Code Report some locks send after a keypad change's notification.
    fn report_after_notification(&self, slot: u16) -> Option<Vec<u8>> {
        if !self.model.quirks.report_after_notification {
            return None;
        }
        let (status, code) = self.report(slot);
        Some(
            Command::UserCode(UserCodeCommand::Report {
                user_id: slot.min(255) as u8,
                user_id_status: status,
                user_code: CodeBytes::new(code),
            })
            .encode(),
        )
    }

    /// Someone deletes the code in `slot` at the keypad.
    pub fn keypad_delete(&mut self, slot: u16) -> Vec<Vec<u8>> {
        if self.slots.remove(&slot).is_none() {
            return Vec::new();
        }
        self.event(
            access_control::SINGLE_USER_CODE_DELETED,
            alarm::CODE_DELETED,
            slot,
        )
        .into_iter()
        .chain(self.report_after_notification(slot))
        .collect()
    }

    /// Factory reset: every code gone.
    pub fn factory_reset(&mut self) -> Vec<Vec<u8>> {
        self.slots.clear();
        self.year_day.clear();
        self.schedule_enabled.clear();
        self.admin_code.clear();
        self.event(
            access_control::ALL_USER_CODES_DELETED,
            alarm::ALL_CODES_DELETED,
            0,
        )
        .into_iter()
        .collect()
    }

    /// Set a slot directly (another controller, a vendor app): no notification.
    pub fn write_slot(&mut self, slot: u16, code: Option<&str>) {
        match code {
            Some(c) => {
                self.slots.insert(
                    slot,
                    Slot {
                        status: UserIdStatus::Enabled,
                        code: c.as_bytes().to_vec(),
                    },
                );
            }
            None => {
                self.slots.remove(&slot);
            }
        }
    }

    /// The year-day schedule of a user, if one is stored.
    pub fn year_day_schedule(&self, user_id: u8) -> Option<YearDaySchedule> {
        self.year_day.get(&(user_id, 1)).copied()
    }
}
