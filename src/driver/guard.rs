//! The rule that keeps PINs off the air in clear: no User Code, Door Lock or Schedule Entry
//! Lock command goes to a node that must be reached securely, and no report of one is taken
//! from it, unless it travels encapsulated with a key. A node must be reached securely when
//! it advertises Security 0 or 2, or when zwlock's inclusion of it asked for security
//! ([`NodeInfo::security_required`]).
//!
//! Pure decisions over [`NodeInfo`]; the actor applies them just before a command is sealed
//! and just after a frame from a node is opened.

use super::node::NodeInfo;
use crate::cc::notification::NotificationCommand;
use crate::cc::{door_lock, schedule_entry_lock, user_code, Command};
use crate::security::SecurityClass;

/// The command classes that carry PINs or work the door.
pub const GUARDED: [u8; 3] = [user_code::ID, door_lock::ID, schedule_entry_lock::ID];

/// Whether commands of class `cc` are kept off the air in clear.
pub fn guarded(cc: u8) -> bool {
    GUARDED.contains(&cc)
}

/// Whether a command of class `cc` may go to the node when sealed at `class` (`None`: plain).
pub fn may_send(info: Option<&NodeInfo>, cc: u8, class: Option<SecurityClass>) -> bool {
    !guarded(cc) || class.is_some() || !info.is_some_and(NodeInfo::security_required)
}

/// Whether `cmd` is of a guarded class or carries one: an Access Control notification
/// whose event parameters are a User Code Report (with its PIN).
pub fn carries_guarded(cmd: &Command) -> bool {
    match cmd {
        Command::Notification(NotificationCommand::Report(r)) => r
            .details
            .as_ref()
            .and_then(|d| d.params.first())
            .is_some_and(|cc| guarded(*cc)),
        other => guarded(other.class_id()),
    }
}

/// Whether `cmd`, which came from the node under `via` (`None`: plain, or under an
/// inclusion's temporary key), may be taken: one that [carries a guarded
/// class](carries_guarded) from a node that must be reached securely, only under the class
/// the node was granted.
pub fn may_accept(info: Option<&NodeInfo>, cmd: &Command, via: Option<SecurityClass>) -> bool {
    match info {
        Some(i) if i.security_required() && carries_guarded(cmd) => {
            via.is_some() && via == i.security_class
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::notification::{access_control, NotificationReport};
    use crate::cc::{battery, security0, security2, BatteryCommand, DoorLockCommand};
    use crate::cc::{CodeBytes, UserCodeCommand, UserIdStatus};
    use crate::driver::node::{NodeInfo, SecurityFailure};
    use crate::serialapi::controller::NodeProtocolInfo;
    use crate::serialapi::NodeId;

    fn node(classes: &[u8]) -> NodeInfo {
        let protocol = NodeProtocolInfo {
            capability: 0x53,
            security: 0x5C,
            reserved: 0x01,
            basic: 0x04,
            generic: 0x40,
            specific: 0x03,
        };
        let mut i = NodeInfo::new(NodeId(5), &protocol);
        i.command_classes = Some(classes.to_vec());
        i
    }

    const AC: Option<SecurityClass> = Some(SecurityClass::S2AccessControl);

    fn report_of(cc: u8) -> Command {
        match cc {
            user_code::ID => Command::UserCode(UserCodeCommand::Report {
                user_id: 3,
                user_id_status: UserIdStatus::Enabled,
                user_code: CodeBytes::from_pin("1234"),
            }),
            door_lock::ID => Command::DoorLock(DoorLockCommand::OperationGet),
            _ => Command::ScheduleEntryLock(
                crate::cc::schedule_entry_lock::ScheduleEntryLockCommand::SupportedGet,
            ),
        }
    }

    fn battery() -> Command {
        Command::Battery(BatteryCommand::Report {
            level: 50,
            flags: None,
        })
    }

    #[test]
    fn a_plain_lock_is_spoken_to_in_clear() {
        let plain = node(&[user_code::ID, door_lock::ID, battery::ID]);
        for cc in GUARDED {
            assert!(may_send(Some(&plain), cc, None));
            assert!(may_accept(Some(&plain), &report_of(cc), None));
        }
        // Nothing known of the node yet: not refused (its NIF comes first in an interview).
        assert!(may_send(None, user_code::ID, None));
    }

    #[test]
    fn a_secure_lock_without_a_granted_key_gets_no_pin_class_in_clear() {
        for nif in [
            vec![security2::ID, user_code::ID],
            vec![security0::ID, door_lock::ID],
            // A real S2 lock: User Code only in its secure list.
            vec![security2::ID],
        ] {
            let i = node(&nif);
            for cc in GUARDED {
                assert!(!may_send(Some(&i), cc, None), "{nif:?} {cc:#x}");
                assert!(
                    !may_accept(Some(&i), &report_of(cc), None),
                    "{nif:?} {cc:#x}"
                );
                // Under a class it was not granted (none is), a report is not taken either.
                assert!(!may_accept(Some(&i), &report_of(cc), AC), "{nif:?} {cc:#x}");
                // A probe goes encapsulated: the node decides whether it can open it.
                assert!(may_send(Some(&i), cc, AC));
            }
            // Other classes are not this rule's business.
            assert!(may_send(Some(&i), battery::ID, None));
            assert!(may_accept(Some(&i), &battery(), None));
            // A keypad notification is taken, unless it carries a User Code Report.
            let by_id =
                NotificationReport::access_control(access_control::NEW_USER_CODE_ADDED, vec![3]);
            let with_pin = NotificationReport::access_control(
                access_control::NEW_USER_CODE_ADDED,
                report_of(user_code::ID).encode(),
            );
            let n = |r| Command::Notification(NotificationCommand::Report(r));
            assert!(may_accept(Some(&i), &n(by_id), None));
            assert!(!may_accept(Some(&i), &n(with_pin.clone()), None));
            let mut granted = i.clone();
            granted.security_class = AC;
            assert!(may_accept(Some(&granted), &n(with_pin), AC));
        }
    }

    #[test]
    fn a_granted_node_is_heard_only_under_its_class() {
        let mut i = node(&[security2::ID, security0::ID, user_code::ID]);
        i.security_class = AC;
        let r = report_of(user_code::ID);
        assert!(may_accept(Some(&i), &r, AC));
        assert!(!may_accept(Some(&i), &r, None));
        assert!(!may_accept(Some(&i), &r, Some(SecurityClass::S0Legacy)));
        assert!(may_send(Some(&i), user_code::ID, AC));
        assert!(!may_send(Some(&i), user_code::ID, None));
    }

    #[test]
    fn a_failed_key_exchange_makes_any_node_secure_only() {
        let mut i = node(&[user_code::ID]);
        assert!(may_send(Some(&i), user_code::ID, None));
        i.security_failure = Some(SecurityFailure::KeyExchangeFailed);
        assert!(!may_send(Some(&i), user_code::ID, None));
        assert!(!may_accept(
            Some(&i),
            &report_of(schedule_entry_lock::ID),
            None
        ));
    }
}
