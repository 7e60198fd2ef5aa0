//! Transactions: a command to a node and what completes it (its transmission, the report that
//! answers a Get, or a Supervision Report).

use crate::cc::notification::NotificationCommand;
use crate::cc::schedule_entry_lock::ScheduleEntryLockCommand;
use crate::cc::{
    BatteryCommand, Command, DoorLockCommand, ManufacturerSpecificCommand, TimeParametersCommand,
    UserCodeCommand as U, VersionCommand,
};

/// Who is waiting: an API request beats background work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Polling, interviews, refreshes.
    Background = 0,
    /// The engine converging declared codes.
    Normal = 1,
    /// Answers the lock waits for (Supervision Reports) and user requests.
    High = 2,
}

/// What completes a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The stick's callback says the node acknowledged the frame.
    Transmit,
    /// A report from the node that answers this Get.
    Report(ReportMatcher),
    /// A Supervision Report with this session id (the command went inside a Supervision Get).
    Supervision { session_id: u8 },
    /// The node's information frame (RequestNodeInfo, not SendData).
    NodeInfo,
    /// An S2 Nonce Report: the command waits for a SPAN, then goes out again.
    Nonce,
}

/// Which report answers a Get: same class, the report command, and the same subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportMatcher {
    pub class: u8,
    pub command: u8,
    /// User id, requested class, notification type, … when the Get names one.
    pub subject: Option<u16>,
}

impl ReportMatcher {
    /// Whether `reply` answers the Get this matcher was made from.
    pub fn matches(&self, reply: &Command) -> bool {
        reply.class_id() == self.class
            && reply.command_id() == Some(self.command)
            && match self.subject {
                None => true,
                Some(s) => subject_of(reply) == Some(s),
            }
    }
}

/// The subject a Get asks about or a report tells about.
fn subject_of(c: &Command) -> Option<u16> {
    Some(match c {
        Command::UserCode(U::Get { user_id }) | Command::UserCode(U::Report { user_id, .. }) => {
            u16::from(*user_id)
        }
        Command::UserCode(U::ExtendedUserCodeGet { user_id, .. }) => *user_id,
        Command::UserCode(U::ExtendedUserCodeReport { entries, .. }) => entries.first()?.user_id,
        Command::Version(VersionCommand::CommandClassGet { requested_class })
        | Command::Version(VersionCommand::CommandClassReport {
            requested_class, ..
        }) => u16::from(*requested_class),
        Command::Notification(NotificationCommand::EventSupportedGet { notification_type })
        | Command::Notification(NotificationCommand::EventSupportedReport {
            notification_type,
            ..
        }) => u16::from(*notification_type),
        Command::ScheduleEntryLock(ScheduleEntryLockCommand::YearDayGet { user_id, slot_id })
        | Command::ScheduleEntryLock(ScheduleEntryLockCommand::YearDayReport {
            user_id,
            slot_id,
            ..
        })
        | Command::ScheduleEntryLock(ScheduleEntryLockCommand::WeekDayGet { user_id, slot_id })
        | Command::ScheduleEntryLock(ScheduleEntryLockCommand::WeekDayReport {
            user_id,
            slot_id,
            ..
        }) => u16::from_be_bytes([*user_id, *slot_id]),
        _ => return None,
    })
}

/// The report that answers `get`, or `None` when `get` is not a Get we know.
pub fn expected_report(get: &Command) -> Option<ReportMatcher> {
    use crate::cc::{
        battery, door_lock, manufacturer_specific, notification, schedule_entry_lock,
        time_parameters, user_code, version,
    };
    let (class, command) = match get {
        Command::UserCode(u) => (
            user_code::ID,
            match u {
                U::Get { .. } => user_code::cmd::REPORT,
                U::UsersNumberGet => user_code::cmd::USERS_NUMBER_REPORT,
                U::CapabilitiesGet => user_code::cmd::CAPABILITIES_REPORT,
                U::KeypadModeGet => user_code::cmd::KEYPAD_MODE_REPORT,
                U::ExtendedUserCodeGet { .. } => user_code::cmd::EXTENDED_REPORT,
                U::AdminCodeGet => user_code::cmd::ADMIN_CODE_REPORT,
                U::UserCodeChecksumGet => user_code::cmd::CHECKSUM_REPORT,
                _ => return None,
            },
        ),
        Command::Version(v) => (
            version::ID,
            match v {
                VersionCommand::Get => version::cmd::REPORT,
                VersionCommand::CommandClassGet { .. } => version::cmd::COMMAND_CLASS_REPORT,
                VersionCommand::CapabilitiesGet => version::cmd::CAPABILITIES_REPORT,
                VersionCommand::ZWaveSoftwareGet => version::cmd::ZWAVE_SOFTWARE_REPORT,
                _ => return None,
            },
        ),
        Command::ManufacturerSpecific(ManufacturerSpecificCommand::Get) => (
            manufacturer_specific::ID,
            manufacturer_specific::cmd::REPORT,
        ),
        Command::ManufacturerSpecific(ManufacturerSpecificCommand::DeviceSpecificGet {
            ..
        }) => (
            manufacturer_specific::ID,
            manufacturer_specific::cmd::DEVICE_SPECIFIC_REPORT,
        ),
        Command::Battery(BatteryCommand::Get) => (battery::ID, battery::cmd::REPORT),
        Command::Battery(BatteryCommand::HealthGet) => (battery::ID, battery::cmd::HEALTH_REPORT),
        Command::DoorLock(DoorLockCommand::OperationGet) => {
            (door_lock::ID, door_lock::cmd::OPERATION_REPORT)
        }
        Command::DoorLock(DoorLockCommand::ConfigurationGet) => {
            (door_lock::ID, door_lock::cmd::CONFIGURATION_REPORT)
        }
        Command::DoorLock(DoorLockCommand::CapabilitiesGet) => {
            (door_lock::ID, door_lock::cmd::CAPABILITIES_REPORT)
        }
        Command::Notification(NotificationCommand::SupportedGet) => {
            (notification::ID, notification::cmd::SUPPORTED_REPORT)
        }
        Command::Notification(NotificationCommand::EventSupportedGet { .. }) => {
            (notification::ID, notification::cmd::EVENT_SUPPORTED_REPORT)
        }
        Command::Notification(NotificationCommand::Get { .. }) => {
            (notification::ID, notification::cmd::REPORT)
        }
        Command::ScheduleEntryLock(s) => (
            schedule_entry_lock::ID,
            match s {
                ScheduleEntryLockCommand::SupportedGet => {
                    schedule_entry_lock::cmd::SUPPORTED_REPORT
                }
                ScheduleEntryLockCommand::YearDayGet { .. } => {
                    schedule_entry_lock::cmd::YEAR_DAY_REPORT
                }
                ScheduleEntryLockCommand::WeekDayGet { .. } => {
                    schedule_entry_lock::cmd::WEEK_DAY_REPORT
                }
                ScheduleEntryLockCommand::TimeOffsetGet => {
                    schedule_entry_lock::cmd::TIME_OFFSET_REPORT
                }
                _ => return None,
            },
        ),
        Command::TimeParameters(TimeParametersCommand::Get) => {
            (time_parameters::ID, time_parameters::cmd::REPORT)
        }
        Command::Security(crate::cc::Security0Command::CommandsSupportedGet) => (
            crate::cc::security0::ID,
            crate::cc::security0::cmd::COMMANDS_SUPPORTED_REPORT,
        ),
        Command::Security2(crate::cc::Security2Command::CommandsSupportedGet) => (
            crate::cc::security2::ID,
            crate::cc::security2::cmd::COMMANDS_SUPPORTED_REPORT,
        ),
        _ => return None,
    };
    Some(ReportMatcher {
        class,
        command,
        subject: subject_of(get),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::{CodeBytes, UserIdStatus};

    #[test]
    fn user_code_get_pairs_with_the_report_of_the_same_user() {
        let m = expected_report(&Command::UserCode(U::Get { user_id: 5 })).unwrap();
        let report = |user_id| {
            Command::UserCode(U::Report {
                user_id,
                user_id_status: UserIdStatus::Enabled,
                user_code: CodeBytes::from_pin("1234"),
            })
        };
        assert!(m.matches(&report(5)));
        assert!(!m.matches(&report(6)));
        assert!(!m.matches(&Command::UserCode(U::UserCodeChecksumReport {
            checksum: 0
        })));
    }

    #[test]
    fn version_get_pairs_by_requested_class() {
        let m = expected_report(&Command::Version(VersionCommand::CommandClassGet {
            requested_class: 0x63,
        }))
        .unwrap();
        assert!(
            m.matches(&Command::Version(VersionCommand::CommandClassReport {
                requested_class: 0x63,
                version: 2
            }))
        );
        assert!(
            !m.matches(&Command::Version(VersionCommand::CommandClassReport {
                requested_class: 0x62,
                version: 2
            }))
        );
    }

    #[test]
    fn sets_expect_no_report() {
        assert_eq!(expected_report(&Command::UserCode(U::clear(3))), None);
    }
}
