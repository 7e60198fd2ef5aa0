//! Command classes as plain data: parse and encode, no I/O.
//!
//! [`Command::parse`] turns the bytes of a node command (`class | command | payload`) into a
//! typed value; [`Command::encode`] gives the bytes back. Classes and commands we do not model
//! parse to [`Command::Raw`], so nothing is dropped unseen.

use std::fmt;

use serde::Serialize;

pub mod battery;
pub mod code;
pub mod door_lock;
pub mod error;
pub mod manufacturer_specific;
pub mod notification;
pub mod redact;
pub mod schedule_entry_lock;
pub mod security0;
pub mod security2;
pub mod supervision;
pub mod time_parameters;
pub mod user_code;
pub mod version;
pub mod wake_up;

pub use battery::BatteryCommand;
pub use code::{CodeBytes, CodeView, UserIdStatus};
pub use door_lock::DoorLockCommand;
pub use error::CcError;
pub use manufacturer_specific::ManufacturerSpecificCommand;
pub use notification::{NotificationCommand, NotificationReport};
pub use schedule_entry_lock::ScheduleEntryLockCommand;
pub use security0::Security0Command;
pub use security2::Security2Command;
pub use supervision::{SupervisionCommand, SupervisionStatus};
pub use time_parameters::TimeParametersCommand;
pub use user_code::UserCodeCommand;
pub use version::VersionCommand;
pub use wake_up::WakeUpCommand;

/// Command bytes that may hold a secret (a PIN inside Supervision, a network key): `Debug`
/// shows only the class and command bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawCommand(pub Vec<u8>);

impl fmt::Debug for RawCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&crate::util::redact::CommandBytes(&self.0), f)
    }
}

/// A node command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    UserCode(UserCodeCommand),
    Notification(NotificationCommand),
    DoorLock(DoorLockCommand),
    Battery(BatteryCommand),
    Version(VersionCommand),
    ManufacturerSpecific(ManufacturerSpecificCommand),
    Supervision(SupervisionCommand),
    ScheduleEntryLock(ScheduleEntryLockCommand),
    WakeUp(WakeUpCommand),
    TimeParameters(TimeParametersCommand),
    Security(Security0Command),
    Security2(Security2Command),
    /// A class or command we do not model, kept whole.
    Raw {
        class: u8,
        command: Option<u8>,
        payload: RawCommand,
    },
}

impl Command {
    /// Parse `class | command | payload`.
    pub fn parse(bytes: &[u8]) -> Result<Command, CcError> {
        let (class, command, p) = match bytes {
            [] => return Err(CcError::Empty),
            [class] => {
                return Ok(Command::Raw {
                    class: *class,
                    command: None,
                    payload: RawCommand::default(),
                })
            }
            [class, command, p @ ..] => (*class, *command, p),
        };
        let parsed = match class {
            user_code::ID => UserCodeCommand::parse(command, p)?.map(Command::UserCode),
            notification::ID => NotificationCommand::parse(command, p)?.map(Command::Notification),
            door_lock::ID => DoorLockCommand::parse(command, p)?.map(Command::DoorLock),
            battery::ID => BatteryCommand::parse(command, p)?.map(Command::Battery),
            version::ID => VersionCommand::parse(command, p)?.map(Command::Version),
            manufacturer_specific::ID => {
                ManufacturerSpecificCommand::parse(command, p)?.map(Command::ManufacturerSpecific)
            }
            supervision::ID => SupervisionCommand::parse(command, p)?.map(Command::Supervision),
            schedule_entry_lock::ID => {
                ScheduleEntryLockCommand::parse(command, p)?.map(Command::ScheduleEntryLock)
            }
            wake_up::ID => WakeUpCommand::parse(command, p)?.map(Command::WakeUp),
            time_parameters::ID => {
                TimeParametersCommand::parse(command, p)?.map(Command::TimeParameters)
            }
            security0::ID => Security0Command::parse(command, p)?.map(Command::Security),
            security2::ID => Security2Command::parse(command, p)?.map(Command::Security2),
            _ => None,
        };
        Ok(parsed.unwrap_or_else(|| Command::Raw {
            class,
            command: Some(command),
            payload: RawCommand(p.to_vec()),
        }))
    }

    /// The bytes of this command: `class | command | payload`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.push(self.class_id());
        match self {
            Command::Raw {
                command, payload, ..
            } => {
                if let Some(c) = command {
                    out.push(*c);
                }
                out.extend_from_slice(&payload.0);
                return out;
            }
            _ => out.push(self.command_id().unwrap_or(0)),
        }
        match self {
            Command::UserCode(c) => c.encode_payload(&mut out),
            Command::Notification(c) => c.encode_payload(&mut out),
            Command::DoorLock(c) => c.encode_payload(&mut out),
            Command::Battery(c) => c.encode_payload(&mut out),
            Command::Version(c) => c.encode_payload(&mut out),
            Command::ManufacturerSpecific(c) => c.encode_payload(&mut out),
            Command::Supervision(c) => c.encode_payload(&mut out),
            Command::ScheduleEntryLock(c) => c.encode_payload(&mut out),
            Command::WakeUp(c) => c.encode_payload(&mut out),
            Command::TimeParameters(c) => c.encode_payload(&mut out),
            Command::Security(c) => c.encode_payload(&mut out),
            Command::Security2(c) => c.encode_payload(&mut out),
            Command::Raw { .. } => unreachable!("handled above"),
        }
        out
    }

    pub fn class_id(&self) -> u8 {
        match self {
            Command::UserCode(_) => user_code::ID,
            Command::Notification(_) => notification::ID,
            Command::DoorLock(_) => door_lock::ID,
            Command::Battery(_) => battery::ID,
            Command::Version(_) => version::ID,
            Command::ManufacturerSpecific(_) => manufacturer_specific::ID,
            Command::Supervision(_) => supervision::ID,
            Command::ScheduleEntryLock(_) => schedule_entry_lock::ID,
            Command::WakeUp(_) => wake_up::ID,
            Command::TimeParameters(_) => time_parameters::ID,
            Command::Security(_) => security0::ID,
            Command::Security2(_) => security2::ID,
            Command::Raw { class, .. } => *class,
        }
    }

    pub fn command_id(&self) -> Option<u8> {
        Some(match self {
            Command::UserCode(c) => c.command_id(),
            Command::Notification(c) => c.command_id(),
            Command::DoorLock(c) => c.command_id(),
            Command::Battery(c) => c.command_id(),
            Command::Version(c) => c.command_id(),
            Command::ManufacturerSpecific(c) => c.command_id(),
            Command::Supervision(c) => c.command_id(),
            Command::ScheduleEntryLock(c) => c.command_id(),
            Command::WakeUp(c) => c.command_id(),
            Command::TimeParameters(c) => c.command_id(),
            Command::Security(c) => c.command_id(),
            Command::Security2(c) => c.command_id(),
            Command::Raw { command, .. } => return *command,
        })
    }

    /// The class name `zwlock decode` prints ("Unknown" for raw commands).
    pub fn class_name(&self) -> &'static str {
        match self {
            Command::UserCode(_) => "UserCode",
            Command::Notification(_) => "Notification",
            Command::DoorLock(_) => "DoorLock",
            Command::Battery(_) => "Battery",
            Command::Version(_) => "Version",
            Command::ManufacturerSpecific(_) => "ManufacturerSpecific",
            Command::Supervision(_) => "Supervision",
            Command::ScheduleEntryLock(_) => "ScheduleEntryLock",
            Command::WakeUp(_) => "WakeUp",
            Command::TimeParameters(_) => "TimeParameters",
            Command::Security(_) => "Security",
            Command::Security2(_) => "Security2",
            Command::Raw { .. } => "Unknown",
        }
    }

    /// The command name ("Unknown" for raw commands).
    pub fn command_name(&self) -> &'static str {
        match self {
            Command::UserCode(c) => c.name(),
            Command::Notification(c) => c.name(),
            Command::DoorLock(c) => c.name(),
            Command::Battery(c) => c.name(),
            Command::Version(c) => c.name(),
            Command::ManufacturerSpecific(c) => c.name(),
            Command::Supervision(c) => c.name(),
            Command::ScheduleEntryLock(c) => c.name(),
            Command::WakeUp(c) => c.name(),
            Command::TimeParameters(c) => c.name(),
            Command::Security(c) => c.name(),
            Command::Security2(c) => c.name(),
            Command::Raw { .. } => "Unknown",
        }
    }

    /// The command's fields as a JSON object (codes shown as `****`).
    pub fn fields(&self) -> serde_json::Value {
        let v = match self {
            Command::UserCode(c) => serde_json::to_value(c),
            Command::Notification(c) => serde_json::to_value(c),
            Command::DoorLock(c) => serde_json::to_value(c),
            Command::Battery(c) => serde_json::to_value(c),
            Command::Version(c) => serde_json::to_value(c),
            Command::ManufacturerSpecific(c) => serde_json::to_value(c),
            Command::Supervision(c) => serde_json::to_value(c),
            Command::ScheduleEntryLock(c) => serde_json::to_value(c),
            Command::WakeUp(c) => serde_json::to_value(c),
            Command::TimeParameters(c) => serde_json::to_value(c),
            Command::Security(c) => serde_json::to_value(c),
            Command::Security2(c) => serde_json::to_value(c),
            Command::Raw { .. } => Ok(serde_json::Value::Null),
        };
        match v {
            Ok(serde_json::Value::Object(m)) => serde_json::Value::Object(m),
            _ => serde_json::Value::Object(Default::default()),
        }
    }
}

impl Serialize for RawCommand {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{self:?}"))
    }
}
