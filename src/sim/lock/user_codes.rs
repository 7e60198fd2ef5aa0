//! User Code: the slot table, reports (single and bulk), sets and the checksum.

use super::*;

impl Lock {
    pub(super) fn report(&self, user_id: u16) -> (UserIdStatus, Vec<u8>) {
        // Version 1 has no empty code field: a slot without a code reports four 0x00 bytes.
        let none = if self.model.user_code_version == 1 {
            vec![0; 4]
        } else {
            Vec::new()
        };
        if user_id == 0 || user_id > self.max_slots() {
            return (UserIdStatus::NotAvailable, none);
        }
        match self.slots.get(&user_id) {
            Some(s) => {
                let code = if self.model.quirks.masked_reports {
                    vec![b'*'; 10]
                } else if self.model.quirks.zero_padded_reports {
                    let mut c = s.code.clone();
                    c.resize(10, 0);
                    c
                } else {
                    s.code.clone()
                };
                (s.status, code)
            }
            None if self.model.quirks.empty_status_fe => (UserIdStatus::NotAvailable, none),
            None => (UserIdStatus::Available, none),
        }
    }

    pub(super) fn code_valid(&self, code: &[u8]) -> bool {
        let len = code.len();
        len >= usize::from(self.model.min_code_length)
            && len <= usize::from(self.model.max_code_length)
            && code.iter().all(u8::is_ascii_digit)
    }

    /// Store a code in a slot, as the lock's rules allow; notifications go to `out`.
    pub(super) fn set_slot(
        &mut self,
        user_id: u16,
        status: UserIdStatus,
        code: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Outcome {
        if user_id == 0 {
            if status == UserIdStatus::Available {
                self.slots.clear();
                return Outcome::Accepted;
            }
            return Outcome::Rejected;
        }
        if user_id > self.max_slots() {
            return Outcome::Rejected;
        }
        if status == UserIdStatus::Available {
            self.slots.remove(&user_id);
            return Outcome::Accepted;
        }
        if !matches!(status, UserIdStatus::Enabled | UserIdStatus::Disabled)
            || !self.code_valid(code)
        {
            return Outcome::Rejected;
        }
        let q = &self.model.quirks;
        if q.reject_duplicates
            && self
                .slots
                .iter()
                .any(|(id, s)| *id != user_id && s.status.is_occupied() && s.code == code)
        {
            if let Some(n) = self.event(
                access_control::NEW_USER_CODE_NOT_ADDED_DUPLICATE,
                alarm::DUPLICATE_CODE,
                user_id,
            ) {
                out.push(n);
            }
            return Outcome::Rejected;
        }
        if let Some(cap) = q.capacity {
            if !self.slots.contains_key(&user_id) && self.slots.len() >= usize::from(cap) {
                return Outcome::Rejected;
            }
        }
        if q.set_reads_back_available {
            return Outcome::Accepted;
        }
        self.slots.insert(
            user_id,
            Slot {
                status,
                code: code.to_vec(),
            },
        );
        Outcome::Accepted
    }

    pub(super) fn user_code(&mut self, u: &UserCodeCommand, out: &mut Vec<Vec<u8>>) -> Outcome {
        use UserCodeCommand as U;
        let v2 = self.model.user_code_version >= 2;
        let send = |out: &mut Vec<Vec<u8>>, c: U| out.push(Command::UserCode(c).encode());
        match u {
            U::Set {
                user_id,
                user_id_status,
                user_code,
            } => {
                return self.set_slot(
                    u16::from(*user_id),
                    *user_id_status,
                    user_code.as_bytes(),
                    out,
                )
            }
            U::Get { user_id } => {
                let (status, code) = self.report(u16::from(*user_id));
                send(
                    out,
                    U::Report {
                        user_id: *user_id,
                        user_id_status: status,
                        user_code: CodeBytes::new(code),
                    },
                );
            }
            U::UsersNumberGet => {
                let n = self.max_slots();
                send(
                    out,
                    U::UsersNumberReport {
                        supported_users: n.min(255) as u8,
                        extended_supported_users: v2.then_some(n),
                    },
                );
            }
            U::CapabilitiesGet if v2 => {
                let mut keys = vec![0u8; 8];
                keys[6] = 0xFF;
                keys[7] = 0x03;
                send(
                    out,
                    U::CapabilitiesReport(Capabilities {
                        admin_code_supported: true,
                        admin_code_deactivation_supported: false,
                        supported_statuses_mask: vec![0x07],
                        checksum_supported: self.model.checksum,
                        multiple_report_supported: self.model.bulk_reports,
                        multiple_set_supported: false,
                        supported_keypad_modes_mask: vec![0x01],
                        supported_keys_mask: keys,
                    }),
                );
            }
            U::KeypadModeSet { keypad_mode } if v2 => {
                if *keypad_mode != 0 {
                    return Outcome::Rejected;
                }
                self.keypad_mode = *keypad_mode;
            }
            U::KeypadModeGet if v2 => send(
                out,
                U::KeypadModeReport {
                    keypad_mode: self.keypad_mode,
                },
            ),
            U::AdminCodeSet { admin_code } if v2 => {
                if !self.code_valid(admin_code.as_bytes()) {
                    return Outcome::Rejected;
                }
                self.admin_code = admin_code.as_bytes().to_vec();
            }
            U::AdminCodeGet if v2 => send(
                out,
                U::AdminCodeReport {
                    admin_code: CodeBytes::new(self.admin_code.clone()),
                },
            ),
            U::UserCodeChecksumGet if v2 && self.model.checksum => {
                let checksum = user_code_checksum(
                    self.slots
                        .iter()
                        .map(|(id, s)| (*id, s.status, s.code.as_slice())),
                );
                send(out, U::UserCodeChecksumReport { checksum });
            }
            U::ExtendedUserCodeSet { entries } if v2 => {
                let mut outcome = Outcome::Accepted;
                for e in entries {
                    if self.set_slot(e.user_id, e.user_id_status, e.user_code.as_bytes(), out)
                        != Outcome::Accepted
                    {
                        outcome = Outcome::Rejected;
                    }
                }
                return outcome;
            }
            U::ExtendedUserCodeGet {
                user_id,
                report_more,
            } if v2 => {
                let (entries, next_user_id) = self.extended_report(*user_id, *report_more);
                send(
                    out,
                    U::ExtendedUserCodeReport {
                        entries,
                        next_user_id,
                    },
                );
            }
            _ => return Outcome::Unsupported,
        }
        Outcome::Accepted
    }

    /// Entries from `start` on: several per report when the lock supports bulk reports and
    /// the host asked for more, within a frame's room; plus the next user id to ask for.
    pub(super) fn extended_report(&self, start: u16, more: bool) -> (Vec<UserCodeEntry>, u16) {
        const ROOM: usize = 40;
        let max = self.max_slots();
        let mut entries = Vec::new();
        let mut used = 3; // count + next user id
        let mut id = start;
        loop {
            let (status, code) = self.report(id);
            let size = 4 + code.len();
            if !entries.is_empty() && used + size > ROOM {
                break;
            }
            used += size;
            entries.push(UserCodeEntry {
                user_id: id,
                user_id_status: status,
                user_code: CodeBytes::new(code),
            });
            if id >= max || !(more && self.model.bulk_reports) {
                id = id.saturating_add(1);
                break;
            }
            id += 1;
        }
        let next = if id > max || id == 0 { 0 } else { id };
        (entries, next)
    }
}
