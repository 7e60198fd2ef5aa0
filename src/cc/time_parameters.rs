//! Time Parameters CC (0x8B): the lock's clock, in UTC (on-lock schedules depend on it).

use bytes::BufMut;
use nom::number::complete::{be_u16, be_u8};
use serde::Serialize;

use super::error::{parse_cc, CcError};

pub const ID: u8 = 0x8B;
const CLASS: &str = "TimeParameters";

pub mod cmd {
    pub const SET: u8 = 0x01;
    pub const GET: u8 = 0x02;
    pub const REPORT: u8 = 0x03;
}

/// A UTC date and time as Time Parameters carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// Every Time Parameters command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TimeParametersCommand {
    Set(DateTime),
    Get,
    Report(DateTime),
}

impl TimeParametersCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Set(_) => "Set",
            Self::Get => "Get",
            Self::Report(_) => "Report",
        }
    }

    pub fn command_id(&self) -> u8 {
        match self {
            Self::Set(_) => cmd::SET,
            Self::Get => cmd::GET,
            Self::Report(_) => cmd::REPORT,
        }
    }

    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        let dt = |name| {
            parse_cc(CLASS, name, p, |i| {
                let (i, year) = be_u16(i)?;
                let (i, month) = be_u8(i)?;
                let (i, day) = be_u8(i)?;
                let (i, hour) = be_u8(i)?;
                let (i, minute) = be_u8(i)?;
                let (i, second) = be_u8(i)?;
                Ok((
                    i,
                    DateTime {
                        year,
                        month,
                        day,
                        hour,
                        minute,
                        second,
                    },
                ))
            })
        };
        let v = match command {
            cmd::SET => Self::Set(dt("Set")?),
            cmd::GET => Self::Get,
            cmd::REPORT => Self::Report(dt("Report")?),
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Set(d) | Self::Report(d) => {
                out.put_u16(d.year);
                out.put_slice(&[d.month, d.day, d.hour, d.minute, d.second]);
            }
            Self::Get => {}
        }
    }
}
