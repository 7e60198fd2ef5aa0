//! Codes out of sight: a copy of a node command with every PIN (user codes, admin codes, codes
//! nested in notifications and Supervision) replaced by `*` bytes of the same length, for logs,
//! frame dumps and `zwlock decode`.

use super::notification::NotificationCommand;
use super::user_code::{UserCodeCommand, UserCodeEntry};
use super::{CodeBytes, Command, SupervisionCommand};

/// Replace every code inside a node command with `*` bytes of the same length. Returns the
/// input unchanged when it carries no code.
pub fn redact_bytes(bytes: &[u8]) -> Vec<u8> {
    match Command::parse(bytes) {
        Ok(cmd) => match redact(&cmd) {
            Some(r) => r.encode(),
            None => bytes.to_vec(),
        },
        Err(_) => bytes.to_vec(),
    }
}

fn stars(c: &CodeBytes) -> CodeBytes {
    CodeBytes::new(vec![b'*'; c.len()])
}

/// A copy of `cmd` with its codes starred out, or `None` if it has none.
pub fn redact(cmd: &Command) -> Option<Command> {
    use UserCodeCommand as U;
    match cmd {
        Command::UserCode(u) => {
            let r = match u {
                U::Set {
                    user_id,
                    user_id_status,
                    user_code,
                } => U::Set {
                    user_id: *user_id,
                    user_id_status: *user_id_status,
                    user_code: stars(user_code),
                },
                U::Report {
                    user_id,
                    user_id_status,
                    user_code,
                } => U::Report {
                    user_id: *user_id,
                    user_id_status: *user_id_status,
                    user_code: stars(user_code),
                },
                U::ExtendedUserCodeSet { entries } => U::ExtendedUserCodeSet {
                    entries: entries.iter().map(star_entry).collect(),
                },
                U::ExtendedUserCodeReport {
                    entries,
                    next_user_id,
                } => U::ExtendedUserCodeReport {
                    entries: entries.iter().map(star_entry).collect(),
                    next_user_id: *next_user_id,
                },
                U::AdminCodeSet { admin_code } => U::AdminCodeSet {
                    admin_code: stars(admin_code),
                },
                U::AdminCodeReport { admin_code } => U::AdminCodeReport {
                    admin_code: stars(admin_code),
                },
                _ => return None,
            };
            Some(Command::UserCode(r))
        }
        Command::Notification(NotificationCommand::Report(r)) => {
            let d = r.details.as_ref()?;
            let params = redact_bytes(&d.params);
            if params == d.params {
                return None;
            }
            let mut r = r.clone();
            if let Some(d) = r.details.as_mut() {
                d.params = params;
            }
            Some(Command::Notification(NotificationCommand::Report(r)))
        }
        Command::Supervision(SupervisionCommand::Get {
            status_updates,
            session_id,
            encapsulated,
        }) => {
            let inner = redact_bytes(&encapsulated.0);
            (inner != encapsulated.0).then(|| {
                Command::Supervision(SupervisionCommand::Get {
                    status_updates: *status_updates,
                    session_id: *session_id,
                    encapsulated: super::RawCommand(inner),
                })
            })
        }
        _ => None,
    }
}

fn star_entry(e: &UserCodeEntry) -> UserCodeEntry {
    UserCodeEntry {
        user_id: e.user_id,
        user_id_status: e.user_id_status,
        user_code: stars(&e.user_code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_code_set_and_report_lose_their_pins() {
        // User Code Set, user 3, enabled, "4821"; Report, user 3, "4821".
        for bytes in [
            vec![0x63, 0x01, 3, 0x01, b'4', b'8', b'2', b'1'],
            vec![0x63, 0x03, 3, 0x01, b'4', b'8', b'2', b'1'],
        ] {
            let red = redact_bytes(&bytes);
            assert_eq!(red[..4], bytes[..4]);
            assert_eq!(red[4..], *b"****");
        }
    }

    #[test]
    fn commands_without_codes_are_untouched() {
        let get = [0x63, 0x02, 3];
        assert_eq!(redact_bytes(&get), get);
        let garbage = [0x63, 0x01];
        assert_eq!(redact_bytes(&garbage), garbage);
    }
}
