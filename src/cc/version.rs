//! Version CC (0x86).

use bytes::BufMut;
use nom::combinator::rest;
use nom::number::complete::be_u8;
use serde::Serialize;

use super::error::{parse_cc, CcError};

pub const ID: u8 = 0x86;
const CLASS: &str = "Version";

pub mod cmd {
    pub const GET: u8 = 0x11;
    pub const REPORT: u8 = 0x12;
    pub const COMMAND_CLASS_GET: u8 = 0x13;
    pub const COMMAND_CLASS_REPORT: u8 = 0x14;
    pub const CAPABILITIES_GET: u8 = 0x15;
    pub const CAPABILITIES_REPORT: u8 = 0x16;
    pub const ZWAVE_SOFTWARE_GET: u8 = 0x17;
    pub const ZWAVE_SOFTWARE_REPORT: u8 = 0x18;
}

/// Every Version command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum VersionCommand {
    Get,
    Report {
        library_type: u8,
        protocol_version: u8,
        protocol_sub_version: u8,
        firmware_version: u8,
        firmware_sub_version: u8,
        /// v2+: hardware version, number of other firmware targets, their versions.
        extra: Vec<u8>,
    },
    CommandClassGet {
        requested_class: u8,
    },
    CommandClassReport {
        requested_class: u8,
        /// 0 = not supported.
        version: u8,
    },
    CapabilitiesGet,
    CapabilitiesReport {
        capabilities: u8,
    },
    ZWaveSoftwareGet,
    ZWaveSoftwareReport {
        raw: Vec<u8>,
    },
}

impl VersionCommand {
    pub fn name(&self) -> &'static str {
        use VersionCommand::*;
        match self {
            Get => "Get",
            Report { .. } => "Report",
            CommandClassGet { .. } => "CommandClassGet",
            CommandClassReport { .. } => "CommandClassReport",
            CapabilitiesGet => "CapabilitiesGet",
            CapabilitiesReport { .. } => "CapabilitiesReport",
            ZWaveSoftwareGet => "ZWaveSoftwareGet",
            ZWaveSoftwareReport { .. } => "ZWaveSoftwareReport",
        }
    }

    pub fn command_id(&self) -> u8 {
        use VersionCommand::*;
        match self {
            Get => cmd::GET,
            Report { .. } => cmd::REPORT,
            CommandClassGet { .. } => cmd::COMMAND_CLASS_GET,
            CommandClassReport { .. } => cmd::COMMAND_CLASS_REPORT,
            CapabilitiesGet => cmd::CAPABILITIES_GET,
            CapabilitiesReport { .. } => cmd::CAPABILITIES_REPORT,
            ZWaveSoftwareGet => cmd::ZWAVE_SOFTWARE_GET,
            ZWaveSoftwareReport { .. } => cmd::ZWAVE_SOFTWARE_REPORT,
        }
    }

    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        use VersionCommand as V;
        let v = match command {
            cmd::GET => V::Get,
            cmd::REPORT => parse_cc(CLASS, "Report", p, |i| {
                let (i, library_type) = be_u8(i)?;
                let (i, protocol_version) = be_u8(i)?;
                let (i, protocol_sub_version) = be_u8(i)?;
                let (i, firmware_version) = be_u8(i)?;
                let (i, firmware_sub_version) = be_u8(i)?;
                let (i, extra) = rest(i)?;
                Ok((
                    i,
                    V::Report {
                        library_type,
                        protocol_version,
                        protocol_sub_version,
                        firmware_version,
                        firmware_sub_version,
                        extra: extra.to_vec(),
                    },
                ))
            })?,
            cmd::COMMAND_CLASS_GET => V::CommandClassGet {
                requested_class: parse_cc(CLASS, "CommandClassGet", p, be_u8)?,
            },
            cmd::COMMAND_CLASS_REPORT => parse_cc(CLASS, "CommandClassReport", p, |i| {
                let (i, requested_class) = be_u8(i)?;
                let (i, version) = be_u8(i)?;
                Ok((
                    i,
                    V::CommandClassReport {
                        requested_class,
                        version,
                    },
                ))
            })?,
            cmd::CAPABILITIES_GET => V::CapabilitiesGet,
            cmd::CAPABILITIES_REPORT => V::CapabilitiesReport {
                capabilities: parse_cc(CLASS, "CapabilitiesReport", p, be_u8)?,
            },
            cmd::ZWAVE_SOFTWARE_GET => V::ZWaveSoftwareGet,
            cmd::ZWAVE_SOFTWARE_REPORT => V::ZWaveSoftwareReport { raw: p.to_vec() },
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        use VersionCommand as V;
        match self {
            V::Get | V::CapabilitiesGet | V::ZWaveSoftwareGet => {}
            V::Report {
                library_type,
                protocol_version,
                protocol_sub_version,
                firmware_version,
                firmware_sub_version,
                extra,
            } => {
                out.put_slice(&[
                    *library_type,
                    *protocol_version,
                    *protocol_sub_version,
                    *firmware_version,
                    *firmware_sub_version,
                ]);
                out.put_slice(extra);
            }
            V::CommandClassGet { requested_class } => out.put_u8(*requested_class),
            V::CommandClassReport {
                requested_class,
                version,
            } => {
                out.put_u8(*requested_class);
                out.put_u8(*version);
            }
            V::CapabilitiesReport { capabilities } => out.put_u8(*capabilities),
            V::ZWaveSoftwareReport { raw } => out.put_slice(raw),
        }
    }
}
