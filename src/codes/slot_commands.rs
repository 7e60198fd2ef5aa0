//! The User Code commands that write, clear and read one slot, and what a read-back says.

use crate::cc::user_code::UserCodeEntry;
use crate::cc::{CodeBytes, Command, UserCodeCommand, UserIdStatus};

/// Put `pin` in `slot` (Extended Set above slot 255).
pub(super) fn set_command(slot: u16, pin: &str) -> Command {
    match u8::try_from(slot) {
        Ok(id) => Command::UserCode(UserCodeCommand::Set {
            user_id: id,
            user_id_status: UserIdStatus::Enabled,
            user_code: CodeBytes::from_pin(pin),
        }),
        Err(_) => Command::UserCode(UserCodeCommand::ExtendedUserCodeSet {
            entries: vec![UserCodeEntry {
                user_id: slot,
                user_id_status: UserIdStatus::Enabled,
                user_code: CodeBytes::from_pin(pin),
            }],
        }),
    }
}

/// Empty `slot`.
pub(super) fn clear_command(slot: u16) -> Command {
    match u8::try_from(slot) {
        Ok(id) => Command::UserCode(UserCodeCommand::clear(id)),
        Err(_) => Command::UserCode(UserCodeCommand::ExtendedUserCodeSet {
            entries: vec![UserCodeEntry {
                user_id: slot,
                user_id_status: UserIdStatus::Available,
                user_code: CodeBytes::default(),
            }],
        }),
    }
}

/// Read `slot`.
pub(super) fn get_command(slot: u16) -> Command {
    match u8::try_from(slot) {
        Ok(id) => Command::UserCode(UserCodeCommand::Get { user_id: id }),
        Err(_) => Command::UserCode(UserCodeCommand::ExtendedUserCodeGet {
            user_id: slot,
            report_more: false,
        }),
    }
}

/// What a read-back of `slot` says: (status, readable PIN, hidden).
pub(super) fn read_back(
    report: &Command,
    slot: u16,
) -> Option<(UserIdStatus, Option<String>, bool)> {
    match report {
        Command::UserCode(UserCodeCommand::Report {
            user_id,
            user_id_status,
            user_code,
        }) if u16::from(*user_id) == slot => Some((
            *user_id_status,
            user_code.pin().map(str::to_string),
            user_code.is_hidden(),
        )),
        Command::UserCode(UserCodeCommand::ExtendedUserCodeReport { entries, .. }) => {
            entries.iter().find(|e| e.user_id == slot).map(|e| {
                (
                    e.user_id_status,
                    e.user_code.pin().map(str::to_string),
                    e.user_code.is_hidden(),
                )
            })
        }
        _ => None,
    }
}
