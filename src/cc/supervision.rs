//! Supervision CC (0x6C): a command wrapped with a session id, answered with a status.

use bytes::BufMut;
use nom::bytes::complete::take;
use nom::combinator::rest;
use nom::number::complete::be_u8;
use serde::Serialize;

use super::error::{parse_cc, CcError};
use super::RawCommand;

pub const ID: u8 = 0x6C;
const CLASS: &str = "Supervision";

pub mod cmd {
    pub const GET: u8 = 0x01;
    pub const REPORT: u8 = 0x02;
}

/// The outcome a Supervision Report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SupervisionStatus {
    NoSupport,
    Working,
    Fail,
    Success,
    Other(u8),
}

impl SupervisionStatus {
    pub fn from_byte(b: u8) -> Self {
        match b {
            0x00 => Self::NoSupport,
            0x01 => Self::Working,
            0x02 => Self::Fail,
            0xFF => Self::Success,
            o => Self::Other(o),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            Self::NoSupport => 0x00,
            Self::Working => 0x01,
            Self::Fail => 0x02,
            Self::Success => 0xFF,
            Self::Other(o) => o,
        }
    }

    pub fn name(self) -> String {
        match self {
            Self::NoSupport => "no_support".into(),
            Self::Working => "working".into(),
            Self::Fail => "fail".into(),
            Self::Success => "success".into(),
            Self::Other(o) => format!("0x{o:02x}"),
        }
    }
}

impl Serialize for SupervisionStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// Every Supervision command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SupervisionCommand {
    Get {
        status_updates: bool,
        /// 0–63.
        session_id: u8,
        /// The wrapped command (class, command, payload).
        #[serde(skip)]
        encapsulated: RawCommand,
    },
    Report {
        more_status_updates: bool,
        wake_up_request: bool,
        session_id: u8,
        status: SupervisionStatus,
        duration: u8,
    },
}

impl SupervisionCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Get { .. } => "Get",
            Self::Report { .. } => "Report",
        }
    }

    pub fn command_id(&self) -> u8 {
        match self {
            Self::Get { .. } => cmd::GET,
            Self::Report { .. } => cmd::REPORT,
        }
    }

    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        let v = match command {
            cmd::GET => parse_cc(CLASS, "Get", p, |i| {
                let (i, b) = be_u8(i)?;
                let (i, len) = be_u8(i)?;
                // A length past the end is cut to what is there.
                let (i, inner) = if usize::from(len) <= i.len() {
                    take(len)(i)?
                } else {
                    rest(i)?
                };
                Ok((
                    i,
                    Self::Get {
                        status_updates: b & 0x80 != 0,
                        session_id: b & 0x3F,
                        encapsulated: RawCommand(inner.to_vec()),
                    },
                ))
            })?,
            cmd::REPORT => parse_cc(CLASS, "Report", p, |i| {
                let (i, b) = be_u8(i)?;
                let (i, status) = be_u8(i)?;
                let (i, duration) = nom::combinator::opt(be_u8)(i)?;
                Ok((
                    i,
                    Self::Report {
                        more_status_updates: b & 0x80 != 0,
                        wake_up_request: b & 0x40 != 0,
                        session_id: b & 0x3F,
                        status: SupervisionStatus::from_byte(status),
                        duration: duration.unwrap_or(0),
                    },
                ))
            })?,
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::Get {
                status_updates,
                session_id,
                encapsulated,
            } => {
                out.put_u8((u8::from(*status_updates) << 7) | (session_id & 0x3F));
                let inner = &encapsulated.0[..encapsulated.0.len().min(255)];
                out.put_u8(inner.len() as u8);
                out.put_slice(inner);
            }
            Self::Report {
                more_status_updates,
                wake_up_request,
                session_id,
                status,
                duration,
            } => {
                out.put_u8(
                    (u8::from(*more_status_updates) << 7)
                        | (u8::from(*wake_up_request) << 6)
                        | (session_id & 0x3F),
                );
                out.put_u8(status.to_byte());
                out.put_u8(*duration);
            }
        }
    }
}
