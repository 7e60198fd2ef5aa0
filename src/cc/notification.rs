//! Notification CC (0x71), versions 1–8, and the legacy Alarm v1 report it grew from.

use bytes::BufMut;
use nom::bytes::complete::take;
use nom::combinator::{opt, rest};
use nom::number::complete::be_u8;
use serde::Serialize;

use super::error::{parse_cc, CcError};

pub const ID: u8 = 0x71;
const CLASS: &str = "Notification";

pub mod cmd {
    pub const EVENT_SUPPORTED_GET: u8 = 0x01;
    pub const EVENT_SUPPORTED_REPORT: u8 = 0x02;
    pub const GET: u8 = 0x04;
    pub const REPORT: u8 = 0x05;
    pub const SET: u8 = 0x06;
    pub const SUPPORTED_GET: u8 = 0x07;
    pub const SUPPORTED_REPORT: u8 = 0x08;
}

/// Notification types a lock uses.
pub mod types {
    pub const ACCESS_CONTROL: u8 = 0x06;
    pub const HOME_SECURITY: u8 = 0x07;
    pub const POWER_MANAGEMENT: u8 = 0x08;
    pub const SYSTEM: u8 = 0x09;
}

/// Access Control (type 0x06) events.
pub mod access_control {
    pub const MANUAL_LOCK: u8 = 0x01;
    pub const MANUAL_UNLOCK: u8 = 0x02;
    pub const RF_LOCK: u8 = 0x03;
    pub const RF_UNLOCK: u8 = 0x04;
    pub const KEYPAD_LOCK: u8 = 0x05;
    pub const KEYPAD_UNLOCK: u8 = 0x06;
    pub const LOCK_JAMMED: u8 = 0x0B;
    pub const ALL_USER_CODES_DELETED: u8 = 0x0C;
    pub const SINGLE_USER_CODE_DELETED: u8 = 0x0D;
    pub const NEW_USER_CODE_ADDED: u8 = 0x0E;
    pub const NEW_USER_CODE_NOT_ADDED_DUPLICATE: u8 = 0x0F;
    pub const KEYPAD_TEMPORARILY_DISABLED: u8 = 0x10;
    pub const KEYPAD_BUSY: u8 = 0x11;
    pub const NEW_PROGRAM_CODE_ENTERED: u8 = 0x12;
    pub const CODE_LIMIT_EXCEEDED: u8 = 0x13;
    pub const MESSAGING_USER_CODE_ENTERED: u8 = 0x20;
    pub const LOCK_WITH_USER_CODE: u8 = 0x21;
    pub const UNLOCK_WITH_USER_CODE: u8 = 0x22;
}

/// The v2+ part of a Notification Report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationDetails {
    /// Was the ZenSor Net source node id; 0 today.
    pub reserved: u8,
    /// 0x00 off, 0xFF on, 0xFE no pending notification (pull mode).
    pub status: u8,
    pub notification_type: u8,
    pub event: u8,
    /// Event parameters (for keypad events: a User Code Report or a user id).
    pub params: Vec<u8>,
    pub sequence_number: Option<u8>,
}

/// Notification Report (v2+), or Alarm Report (v1) when `details` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationReport {
    pub alarm_type: u8,
    pub alarm_level: u8,
    #[serde(flatten)]
    pub details: Option<NotificationDetails>,
}

impl NotificationReport {
    /// An Access Control event (v2+ report) with its parameters.
    pub fn access_control(event: u8, params: Vec<u8>) -> Self {
        NotificationReport {
            alarm_type: 0,
            alarm_level: 0,
            details: Some(NotificationDetails {
                reserved: 0,
                status: 0xFF,
                notification_type: types::ACCESS_CONTROL,
                event,
                params,
                sequence_number: None,
            }),
        }
    }

    /// A legacy Alarm v1 report.
    pub fn alarm(alarm_type: u8, alarm_level: u8) -> Self {
        NotificationReport {
            alarm_type,
            alarm_level,
            details: None,
        }
    }

    /// The user id an Access Control event is about, in every form locks send it:
    /// a nested User Code Report (`63 03 id …`, also truncated), an Extended User Code Report
    /// (`63 0D n id:u16 …`), a bare 1-byte id, or a 2-byte id (events 0x20–0x22).
    pub fn user_id(&self) -> Option<u16> {
        let d = self.details.as_ref()?;
        if d.notification_type != types::ACCESS_CONTROL {
            return None;
        }
        use access_control::*;
        let carries_user = matches!(
            d.event,
            KEYPAD_LOCK
                | KEYPAD_UNLOCK
                | SINGLE_USER_CODE_DELETED
                | NEW_USER_CODE_ADDED
                | NEW_USER_CODE_NOT_ADDED_DUPLICATE
                | MESSAGING_USER_CODE_ENTERED
                | LOCK_WITH_USER_CODE
                | UNLOCK_WITH_USER_CODE
        );
        if !carries_user {
            return None;
        }
        let p = &d.params[..];
        match p {
            [0x63, 0x03, id, ..] => Some(u16::from(*id)),
            [0x63, 0x0D, _n, hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
            [id] => Some(u16::from(*id)),
            [hi, lo] if matches!(d.event, 0x20..=0x22) => Some(u16::from_be_bytes([*hi, *lo])),
            // Some locks send a 2-byte id for the classic events too.
            [0, lo] => Some(u16::from(*lo)),
            _ => None,
        }
    }
}

/// Every Notification command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum NotificationCommand {
    EventSupportedGet {
        notification_type: u8,
    },
    EventSupportedReport {
        notification_type: u8,
        /// Bit n = event n supported.
        events_mask: Vec<u8>,
    },
    Get {
        alarm_type: u8,
        notification_type: Option<u8>,
        event: Option<u8>,
    },
    Report(NotificationReport),
    Set {
        notification_type: u8,
        status: u8,
    },
    SupportedGet,
    SupportedReport {
        v1_alarm: bool,
        /// Bit n = notification type n supported.
        types_mask: Vec<u8>,
    },
}

impl NotificationCommand {
    pub fn name(&self) -> &'static str {
        match self {
            NotificationCommand::EventSupportedGet { .. } => "EventSupportedGet",
            NotificationCommand::EventSupportedReport { .. } => "EventSupportedReport",
            NotificationCommand::Get { .. } => "Get",
            NotificationCommand::Report(_) => "Report",
            NotificationCommand::Set { .. } => "Set",
            NotificationCommand::SupportedGet => "SupportedGet",
            NotificationCommand::SupportedReport { .. } => "SupportedReport",
        }
    }

    pub fn command_id(&self) -> u8 {
        match self {
            NotificationCommand::EventSupportedGet { .. } => cmd::EVENT_SUPPORTED_GET,
            NotificationCommand::EventSupportedReport { .. } => cmd::EVENT_SUPPORTED_REPORT,
            NotificationCommand::Get { .. } => cmd::GET,
            NotificationCommand::Report(_) => cmd::REPORT,
            NotificationCommand::Set { .. } => cmd::SET,
            NotificationCommand::SupportedGet => cmd::SUPPORTED_GET,
            NotificationCommand::SupportedReport { .. } => cmd::SUPPORTED_REPORT,
        }
    }

    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        use NotificationCommand as N;
        let v = match command {
            cmd::EVENT_SUPPORTED_GET => N::EventSupportedGet {
                notification_type: parse_cc(CLASS, "EventSupportedGet", p, be_u8)?,
            },
            cmd::EVENT_SUPPORTED_REPORT => parse_cc(CLASS, "EventSupportedReport", p, |i| {
                let (i, notification_type) = be_u8(i)?;
                let (i, len) = be_u8(i)?;
                let (i, mask) = take(len & 0x1F)(i)?;
                Ok((
                    i,
                    N::EventSupportedReport {
                        notification_type,
                        events_mask: mask.to_vec(),
                    },
                ))
            })?,
            cmd::GET => parse_cc(CLASS, "Get", p, |i| {
                let (i, alarm_type) = be_u8(i)?;
                let (i, notification_type) = opt(be_u8)(i)?;
                let (i, event) = opt(be_u8)(i)?;
                Ok((
                    i,
                    N::Get {
                        alarm_type,
                        notification_type,
                        event,
                    },
                ))
            })?,
            cmd::REPORT => N::Report(parse_report(p)?),
            cmd::SET => parse_cc(CLASS, "Set", p, |i| {
                let (i, notification_type) = be_u8(i)?;
                let (i, status) = be_u8(i)?;
                Ok((
                    i,
                    N::Set {
                        notification_type,
                        status,
                    },
                ))
            })?,
            cmd::SUPPORTED_GET => N::SupportedGet,
            cmd::SUPPORTED_REPORT => parse_cc(CLASS, "SupportedReport", p, |i| {
                let (i, b) = be_u8(i)?;
                let (i, mask) = take(b & 0x1F)(i)?;
                Ok((
                    i,
                    N::SupportedReport {
                        v1_alarm: b & 0x80 != 0,
                        types_mask: mask.to_vec(),
                    },
                ))
            })?,
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        use NotificationCommand as N;
        match self {
            N::EventSupportedGet { notification_type } => out.put_u8(*notification_type),
            N::EventSupportedReport {
                notification_type,
                events_mask,
            } => {
                out.put_u8(*notification_type);
                let n = events_mask.len().min(31);
                out.put_u8(n as u8);
                out.put_slice(&events_mask[..n]);
            }
            N::Get {
                alarm_type,
                notification_type,
                event,
            } => {
                out.put_u8(*alarm_type);
                if let Some(t) = notification_type {
                    out.put_u8(*t);
                    if let Some(e) = event {
                        out.put_u8(*e);
                    }
                }
            }
            N::Report(r) => {
                out.put_u8(r.alarm_type);
                out.put_u8(r.alarm_level);
                if let Some(d) = &r.details {
                    out.put_u8(d.reserved);
                    out.put_u8(d.status);
                    out.put_u8(d.notification_type);
                    out.put_u8(d.event);
                    let n = d.params.len().min(31);
                    out.put_u8(n as u8 | if d.sequence_number.is_some() { 0x80 } else { 0 });
                    out.put_slice(&d.params[..n]);
                    if let Some(s) = d.sequence_number {
                        out.put_u8(s);
                    }
                }
            }
            N::Set {
                notification_type,
                status,
            } => {
                out.put_u8(*notification_type);
                out.put_u8(*status);
            }
            N::SupportedGet => {}
            N::SupportedReport {
                v1_alarm,
                types_mask,
            } => {
                let n = types_mask.len().min(31);
                out.put_u8(n as u8 | if *v1_alarm { 0x80 } else { 0 });
                out.put_slice(&types_mask[..n]);
            }
        }
    }
}

/// A Notification/Alarm Report, read as leniently as locks require: fewer than 6 bytes is the
/// v1 form; parameters that run past the end are cut to what is there; trailing bytes ignored.
fn parse_report(p: &[u8]) -> Result<NotificationReport, CcError> {
    parse_cc(CLASS, "Report", p, |i| {
        let (i, alarm_type) = be_u8(i)?;
        let (i, alarm_level) = be_u8(i)?;
        if i.len() < 4 {
            return Ok((
                i,
                NotificationReport {
                    alarm_type,
                    alarm_level,
                    details: None,
                },
            ));
        }
        let (i, reserved) = be_u8(i)?;
        let (i, status) = be_u8(i)?;
        let (i, notification_type) = be_u8(i)?;
        let (i, event) = be_u8(i)?;
        let (i, props) = opt(be_u8)(i)?;
        let props = props.unwrap_or(0);
        let n = usize::from(props & 0x1F);
        let (i, params) = if n <= i.len() { take(n)(i)? } else { rest(i)? };
        let (i, sequence_number) = if props & 0x80 != 0 {
            opt(be_u8)(i)?
        } else {
            (i, None)
        };
        Ok((
            i,
            NotificationReport {
                alarm_type,
                alarm_level,
                details: Some(NotificationDetails {
                    reserved,
                    status,
                    notification_type,
                    event,
                    params: params.to_vec(),
                    sequence_number,
                }),
            },
        ))
    })
}
