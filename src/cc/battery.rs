//! Battery CC (0x80).

use bytes::BufMut;
use nom::combinator::opt;
use nom::number::complete::be_u8;
use serde::Serialize;

use super::error::{parse_cc, CcError};

pub const ID: u8 = 0x80;
const CLASS: &str = "Battery";

pub mod cmd {
    pub const GET: u8 = 0x02;
    pub const REPORT: u8 = 0x03;
    pub const HEALTH_GET: u8 = 0x04;
    pub const HEALTH_REPORT: u8 = 0x05;
}

/// 0xFF in the level byte: the battery is low (no percentage given).
pub const LOW_BATTERY_WARNING: u8 = 0xFF;

/// Every Battery command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BatteryCommand {
    Get,
    Report {
        /// 0–100 %, or 0xFF for the low-battery warning.
        level: u8,
        /// v2: charging state and flags, two bytes as sent.
        flags: Option<[u8; 2]>,
    },
    HealthGet,
    HealthReport {
        raw: Vec<u8>,
    },
}

impl BatteryCommand {
    pub fn name(&self) -> &'static str {
        match self {
            BatteryCommand::Get => "Get",
            BatteryCommand::Report { .. } => "Report",
            BatteryCommand::HealthGet => "HealthGet",
            BatteryCommand::HealthReport { .. } => "HealthReport",
        }
    }

    pub fn command_id(&self) -> u8 {
        match self {
            BatteryCommand::Get => cmd::GET,
            BatteryCommand::Report { .. } => cmd::REPORT,
            BatteryCommand::HealthGet => cmd::HEALTH_GET,
            BatteryCommand::HealthReport { .. } => cmd::HEALTH_REPORT,
        }
    }

    /// The level as a percentage, with the low-battery warning read as 0.
    pub fn percent(&self) -> Option<u8> {
        match self {
            BatteryCommand::Report { level, .. } if *level == LOW_BATTERY_WARNING => Some(0),
            BatteryCommand::Report { level, .. } => Some((*level).min(100)),
            _ => None,
        }
    }

    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        let v = match command {
            cmd::GET => BatteryCommand::Get,
            cmd::REPORT => parse_cc(CLASS, "Report", p, |i| {
                let (i, level) = be_u8(i)?;
                let (i, a) = opt(be_u8)(i)?;
                let (i, b) = opt(be_u8)(i)?;
                let flags = a.zip(b).map(|(a, b)| [a, b]);
                Ok((i, BatteryCommand::Report { level, flags }))
            })?,
            cmd::HEALTH_GET => BatteryCommand::HealthGet,
            cmd::HEALTH_REPORT => BatteryCommand::HealthReport { raw: p.to_vec() },
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            BatteryCommand::Get | BatteryCommand::HealthGet => {}
            BatteryCommand::Report { level, flags } => {
                out.put_u8(*level);
                if let Some(f) = flags {
                    out.put_slice(f);
                }
            }
            BatteryCommand::HealthReport { raw } => out.put_slice(raw),
        }
    }
}
