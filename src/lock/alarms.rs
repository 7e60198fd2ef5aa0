//! What a lock's notification means for its codes: Access Control events (Notification v3+)
//! and the legacy Alarm v1 type/level pairs, which differ per manufacturer.

use crate::cc::notification::{access_control, types, NotificationReport};

/// A lock event that concerns codes or the keypad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockEvent {
    /// Someone unlocked (or locked) at the keypad, with the code in this slot when known.
    KeypadUnlock(Option<u16>),
    KeypadLock(Option<u16>),
    /// A code was added or changed in a slot.
    CodeAdded(u16),
    CodeDeleted(u16),
    AllCodesDeleted,
    /// The lock refused a code already on it.
    Duplicate(u16),
}

/// Manufacturer ids with their own alarm tables.
const SCHLAGE: u16 = 0x003B;

/// Read a notification. `manufacturer` picks the legacy alarm table.
pub fn interpret(r: &NotificationReport, manufacturer: Option<u16>) -> Option<LockEvent> {
    if let Some(d) = &r.details {
        if d.notification_type != types::ACCESS_CONTROL {
            return None;
        }
        let user = r.user_id();
        return match d.event {
            access_control::KEYPAD_UNLOCK | access_control::UNLOCK_WITH_USER_CODE => {
                Some(LockEvent::KeypadUnlock(user))
            }
            access_control::KEYPAD_LOCK | access_control::LOCK_WITH_USER_CODE => {
                Some(LockEvent::KeypadLock(user))
            }
            access_control::NEW_USER_CODE_ADDED => user.map(LockEvent::CodeAdded),
            access_control::SINGLE_USER_CODE_DELETED => user.map(LockEvent::CodeDeleted),
            access_control::ALL_USER_CODES_DELETED => Some(LockEvent::AllCodesDeleted),
            access_control::NEW_USER_CODE_NOT_ADDED_DUPLICATE => user.map(LockEvent::Duplicate),
            _ => None,
        };
    }
    // Alarm v1: type and level. Level 0 names the master code on Yale locks: not a user slot.
    let level = u16::from(r.alarm_level);
    let slot = (level > 0).then_some(level);
    match (manufacturer, r.alarm_type) {
        (Some(SCHLAGE), 0x10) => Some(LockEvent::KeypadUnlock(slot)),
        (_, 0x13) => Some(LockEvent::KeypadUnlock(slot)),
        (_, 0x12) => Some(LockEvent::KeypadLock(slot)),
        (_, 0x70) => slot.map(LockEvent::CodeAdded),
        (_, 0x21) => slot.map(LockEvent::CodeDeleted),
        (_, 0x20) => Some(LockEvent::AllCodesDeleted),
        (_, 0x71) => slot.map(LockEvent::Duplicate),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::notification::NotificationReport;

    #[test]
    fn access_control_events() {
        let r = NotificationReport::access_control(
            access_control::KEYPAD_UNLOCK,
            vec![0x63, 0x03, 0x05, 0x01],
        );
        assert_eq!(interpret(&r, None), Some(LockEvent::KeypadUnlock(Some(5))));
        let r = NotificationReport::access_control(access_control::ALL_USER_CODES_DELETED, vec![]);
        assert_eq!(interpret(&r, None), Some(LockEvent::AllCodesDeleted));
        let r = NotificationReport::access_control(access_control::NEW_USER_CODE_ADDED, vec![7]);
        assert_eq!(interpret(&r, None), Some(LockEvent::CodeAdded(7)));
    }

    #[test]
    fn legacy_alarms_per_manufacturer() {
        assert_eq!(
            interpret(&NotificationReport::alarm(0x13, 1), Some(0x0090)),
            Some(LockEvent::KeypadUnlock(Some(1)))
        );
        assert_eq!(
            interpret(&NotificationReport::alarm(0x21, 5), Some(0x0129)),
            Some(LockEvent::CodeDeleted(5))
        );
        assert_eq!(
            interpret(&NotificationReport::alarm(0x70, 0), Some(0x0129)),
            None,
            "master code, not a slot"
        );
        assert_eq!(
            interpret(&NotificationReport::alarm(0x20, 0), None),
            Some(LockEvent::AllCodesDeleted)
        );
        assert_eq!(
            interpret(&NotificationReport::alarm(0x10, 3), Some(SCHLAGE)),
            Some(LockEvent::KeypadUnlock(Some(3)))
        );
        assert_eq!(
            interpret(&NotificationReport::alarm(0x10, 3), Some(0x0129)),
            None
        );
        assert_eq!(interpret(&NotificationReport::alarm(0xA7, 20), None), None);
    }
}
