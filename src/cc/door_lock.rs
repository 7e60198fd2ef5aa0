//! Door Lock CC (0x62).

use bytes::BufMut;
use nom::combinator::{opt, rest};
use nom::number::complete::{be_u16, be_u8};
use serde::Serialize;

use super::error::{parse_cc, CcError};

pub const ID: u8 = 0x62;
const CLASS: &str = "DoorLock";

pub mod cmd {
    pub const OPERATION_SET: u8 = 0x01;
    pub const OPERATION_GET: u8 = 0x02;
    pub const OPERATION_REPORT: u8 = 0x03;
    pub const CONFIGURATION_SET: u8 = 0x04;
    pub const CONFIGURATION_GET: u8 = 0x05;
    pub const CONFIGURATION_REPORT: u8 = 0x06;
    pub const CAPABILITIES_GET: u8 = 0x07;
    pub const CAPABILITIES_REPORT: u8 = 0x08;
}

/// Door lock modes.
pub mod mode {
    pub const UNSECURED: u8 = 0x00;
    pub const UNSECURED_WITH_TIMEOUT: u8 = 0x01;
    pub const INSIDE_UNSECURED: u8 = 0x10;
    pub const INSIDE_UNSECURED_WITH_TIMEOUT: u8 = 0x11;
    pub const OUTSIDE_UNSECURED: u8 = 0x20;
    pub const OUTSIDE_UNSECURED_WITH_TIMEOUT: u8 = 0x21;
    pub const UNKNOWN: u8 = 0xFE;
    pub const SECURED: u8 = 0xFF;
}

/// Door Lock Operation Report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationReport {
    pub current_mode: u8,
    /// Bitmask of outside handles that can open the door (high nibble on the wire).
    pub outside_handles: u8,
    pub inside_handles: u8,
    /// bit0 door closed, bit1 bolt unlocked, bit2 latch closed.
    pub condition: u8,
    /// 0xFE/0xFE: not supported.
    pub timeout_minutes: u8,
    pub timeout_seconds: u8,
    /// v3+/v4: where the lock is going, and how long it takes.
    pub target_mode: Option<u8>,
    pub duration: Option<u8>,
}

impl OperationReport {
    pub fn is_locked(&self) -> Option<bool> {
        match self.current_mode {
            mode::SECURED => Some(true),
            mode::UNKNOWN => None,
            _ => Some(false),
        }
    }
}

/// Door Lock Configuration (Set and Report share the layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Configuration {
    /// 1 constant operation, 2 timed operation.
    pub operation_type: u8,
    pub outside_handles: u8,
    pub inside_handles: u8,
    pub lock_timeout_minutes: u8,
    pub lock_timeout_seconds: u8,
    /// v4: auto-relock time, hold-and-release time, flags (bit0 twist assist, bit1 block to block).
    pub v4: Option<ConfigurationV4>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConfigurationV4 {
    pub auto_relock_seconds: u16,
    pub hold_and_release_seconds: u16,
    pub flags: u8,
}

/// Every Door Lock command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DoorLockCommand {
    OperationSet { mode: u8 },
    OperationGet,
    OperationReport(OperationReport),
    ConfigurationSet(Configuration),
    ConfigurationGet,
    ConfigurationReport(Configuration),
    CapabilitiesGet,
    CapabilitiesReport { raw: Vec<u8> },
}

impl DoorLockCommand {
    pub fn name(&self) -> &'static str {
        match self {
            DoorLockCommand::OperationSet { .. } => "OperationSet",
            DoorLockCommand::OperationGet => "OperationGet",
            DoorLockCommand::OperationReport(_) => "OperationReport",
            DoorLockCommand::ConfigurationSet(_) => "ConfigurationSet",
            DoorLockCommand::ConfigurationGet => "ConfigurationGet",
            DoorLockCommand::ConfigurationReport(_) => "ConfigurationReport",
            DoorLockCommand::CapabilitiesGet => "CapabilitiesGet",
            DoorLockCommand::CapabilitiesReport { .. } => "CapabilitiesReport",
        }
    }

    pub fn command_id(&self) -> u8 {
        match self {
            DoorLockCommand::OperationSet { .. } => cmd::OPERATION_SET,
            DoorLockCommand::OperationGet => cmd::OPERATION_GET,
            DoorLockCommand::OperationReport(_) => cmd::OPERATION_REPORT,
            DoorLockCommand::ConfigurationSet(_) => cmd::CONFIGURATION_SET,
            DoorLockCommand::ConfigurationGet => cmd::CONFIGURATION_GET,
            DoorLockCommand::ConfigurationReport(_) => cmd::CONFIGURATION_REPORT,
            DoorLockCommand::CapabilitiesGet => cmd::CAPABILITIES_GET,
            DoorLockCommand::CapabilitiesReport { .. } => cmd::CAPABILITIES_REPORT,
        }
    }

    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        use DoorLockCommand as D;
        let v = match command {
            cmd::OPERATION_SET => D::OperationSet {
                mode: parse_cc(CLASS, "OperationSet", p, be_u8)?,
            },
            cmd::OPERATION_GET => D::OperationGet,
            cmd::OPERATION_REPORT => parse_cc(CLASS, "OperationReport", p, |i| {
                let (i, current_mode) = be_u8(i)?;
                let (i, handles) = be_u8(i)?;
                let (i, condition) = be_u8(i)?;
                let (i, timeout_minutes) = be_u8(i)?;
                let (i, timeout_seconds) = be_u8(i)?;
                let (i, target_mode) = opt(be_u8)(i)?;
                let (i, duration) = opt(be_u8)(i)?;
                Ok((
                    i,
                    D::OperationReport(OperationReport {
                        current_mode,
                        outside_handles: handles >> 4,
                        inside_handles: handles & 0x0F,
                        condition,
                        timeout_minutes,
                        timeout_seconds,
                        target_mode,
                        duration: target_mode.and(duration),
                    }),
                ))
            })?,
            cmd::CONFIGURATION_SET => {
                D::ConfigurationSet(parse_configuration("ConfigurationSet", p)?)
            }
            cmd::CONFIGURATION_GET => D::ConfigurationGet,
            cmd::CONFIGURATION_REPORT => {
                D::ConfigurationReport(parse_configuration("ConfigurationReport", p)?)
            }
            cmd::CAPABILITIES_GET => D::CapabilitiesGet,
            cmd::CAPABILITIES_REPORT => D::CapabilitiesReport { raw: p.to_vec() },
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        use DoorLockCommand as D;
        match self {
            D::OperationSet { mode } => out.put_u8(*mode),
            D::OperationGet | D::ConfigurationGet | D::CapabilitiesGet => {}
            D::OperationReport(r) => {
                out.put_u8(r.current_mode);
                out.put_u8((r.outside_handles << 4) | (r.inside_handles & 0x0F));
                out.put_u8(r.condition);
                out.put_u8(r.timeout_minutes);
                out.put_u8(r.timeout_seconds);
                if let Some(t) = r.target_mode {
                    out.put_u8(t);
                    if let Some(d) = r.duration {
                        out.put_u8(d);
                    }
                }
            }
            D::ConfigurationSet(c) | D::ConfigurationReport(c) => {
                out.put_u8(c.operation_type);
                out.put_u8((c.outside_handles << 4) | (c.inside_handles & 0x0F));
                out.put_u8(c.lock_timeout_minutes);
                out.put_u8(c.lock_timeout_seconds);
                if let Some(v4) = c.v4 {
                    out.put_u16(v4.auto_relock_seconds);
                    out.put_u16(v4.hold_and_release_seconds);
                    out.put_u8(v4.flags);
                }
            }
            D::CapabilitiesReport { raw } => out.put_slice(raw),
        }
    }
}

fn parse_configuration(command: &'static str, p: &[u8]) -> Result<Configuration, CcError> {
    parse_cc(CLASS, command, p, |i| {
        let (i, operation_type) = be_u8(i)?;
        let (i, handles) = be_u8(i)?;
        let (i, lock_timeout_minutes) = be_u8(i)?;
        let (i, lock_timeout_seconds) = be_u8(i)?;
        let v4 = if i.len() >= 5 {
            let (_, (a, h, f)) = nom::sequence::tuple((be_u16, be_u16, be_u8))(i)?;
            Some(ConfigurationV4 {
                auto_relock_seconds: a,
                hold_and_release_seconds: h,
                flags: f,
            })
        } else {
            None
        };
        let (i, _) = rest(i)?;
        Ok((
            i,
            Configuration {
                operation_type,
                outside_handles: handles >> 4,
                inside_handles: handles & 0x0F,
                lock_timeout_minutes,
                lock_timeout_seconds,
                v4,
            },
        ))
    })
}
