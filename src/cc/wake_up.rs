//! Wake Up CC (0x84): for battery nodes that sleep (locks are usually FLiRS and do not).

use bytes::BufMut;
use nom::number::complete::{be_u24, be_u8};
use serde::Serialize;

use super::error::{parse_cc, CcError};

pub const ID: u8 = 0x84;
const CLASS: &str = "WakeUp";

pub mod cmd {
    pub const INTERVAL_SET: u8 = 0x04;
    pub const INTERVAL_GET: u8 = 0x05;
    pub const INTERVAL_REPORT: u8 = 0x06;
    pub const NOTIFICATION: u8 = 0x07;
    pub const NO_MORE_INFORMATION: u8 = 0x08;
    pub const INTERVAL_CAPABILITIES_GET: u8 = 0x09;
    pub const INTERVAL_CAPABILITIES_REPORT: u8 = 0x0A;
}

/// Every Wake Up command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum WakeUpCommand {
    IntervalSet {
        seconds: u32,
        node_id: u8,
    },
    IntervalGet,
    IntervalReport {
        seconds: u32,
        node_id: u8,
    },
    Notification,
    NoMoreInformation,
    IntervalCapabilitiesGet,
    IntervalCapabilitiesReport {
        minimum_seconds: u32,
        maximum_seconds: u32,
        default_seconds: u32,
        step_seconds: u32,
    },
}

impl WakeUpCommand {
    pub fn name(&self) -> &'static str {
        match self {
            Self::IntervalSet { .. } => "IntervalSet",
            Self::IntervalGet => "IntervalGet",
            Self::IntervalReport { .. } => "IntervalReport",
            Self::Notification => "Notification",
            Self::NoMoreInformation => "NoMoreInformation",
            Self::IntervalCapabilitiesGet => "IntervalCapabilitiesGet",
            Self::IntervalCapabilitiesReport { .. } => "IntervalCapabilitiesReport",
        }
    }

    pub fn command_id(&self) -> u8 {
        match self {
            Self::IntervalSet { .. } => cmd::INTERVAL_SET,
            Self::IntervalGet => cmd::INTERVAL_GET,
            Self::IntervalReport { .. } => cmd::INTERVAL_REPORT,
            Self::Notification => cmd::NOTIFICATION,
            Self::NoMoreInformation => cmd::NO_MORE_INFORMATION,
            Self::IntervalCapabilitiesGet => cmd::INTERVAL_CAPABILITIES_GET,
            Self::IntervalCapabilitiesReport { .. } => cmd::INTERVAL_CAPABILITIES_REPORT,
        }
    }

    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        let interval = |name| {
            parse_cc(CLASS, name, p, |i| {
                let (i, seconds) = be_u24(i)?;
                let (i, node_id) = be_u8(i)?;
                Ok((i, (seconds, node_id)))
            })
        };
        let v = match command {
            cmd::INTERVAL_SET => {
                let (seconds, node_id) = interval("IntervalSet")?;
                Self::IntervalSet { seconds, node_id }
            }
            cmd::INTERVAL_GET => Self::IntervalGet,
            cmd::INTERVAL_REPORT => {
                let (seconds, node_id) = interval("IntervalReport")?;
                Self::IntervalReport { seconds, node_id }
            }
            cmd::NOTIFICATION => Self::Notification,
            cmd::NO_MORE_INFORMATION => Self::NoMoreInformation,
            cmd::INTERVAL_CAPABILITIES_GET => Self::IntervalCapabilitiesGet,
            cmd::INTERVAL_CAPABILITIES_REPORT => {
                parse_cc(CLASS, "IntervalCapabilitiesReport", p, |i| {
                    let (i, minimum_seconds) = be_u24(i)?;
                    let (i, maximum_seconds) = be_u24(i)?;
                    let (i, default_seconds) = be_u24(i)?;
                    let (i, step_seconds) = be_u24(i)?;
                    Ok((
                        i,
                        Self::IntervalCapabilitiesReport {
                            minimum_seconds,
                            maximum_seconds,
                            default_seconds,
                            step_seconds,
                        },
                    ))
                })?
            }
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        let u24 = |out: &mut Vec<u8>, v: u32| out.put_slice(&v.min(0xFF_FFFF).to_be_bytes()[1..]);
        match self {
            Self::IntervalSet { seconds, node_id } | Self::IntervalReport { seconds, node_id } => {
                u24(out, *seconds);
                out.put_u8(*node_id);
            }
            Self::IntervalGet
            | Self::Notification
            | Self::NoMoreInformation
            | Self::IntervalCapabilitiesGet => {}
            Self::IntervalCapabilitiesReport {
                minimum_seconds,
                maximum_seconds,
                default_seconds,
                step_seconds,
            } => {
                for v in [
                    minimum_seconds,
                    maximum_seconds,
                    default_seconds,
                    step_seconds,
                ] {
                    u24(out, *v);
                }
            }
        }
    }
}
