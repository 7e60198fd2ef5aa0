//! User Code CC (0x63), versions 1 and 2.

use bytes::BufMut;
use nom::bytes::complete::take;
use nom::combinator::{opt, rest};
use nom::multi::count;
use nom::number::complete::{be_u16, be_u8};
use nom::IResult;
use serde::Serialize;

use super::code::{CodeBytes, UserIdStatus};
use super::error::{parse_cc, CcError};

pub const ID: u8 = 0x63;
const CLASS: &str = "UserCode";

pub mod cmd {
    pub const SET: u8 = 0x01;
    pub const GET: u8 = 0x02;
    pub const REPORT: u8 = 0x03;
    pub const USERS_NUMBER_GET: u8 = 0x04;
    pub const USERS_NUMBER_REPORT: u8 = 0x05;
    pub const CAPABILITIES_GET: u8 = 0x06;
    pub const CAPABILITIES_REPORT: u8 = 0x07;
    pub const KEYPAD_MODE_SET: u8 = 0x08;
    pub const KEYPAD_MODE_GET: u8 = 0x09;
    pub const KEYPAD_MODE_REPORT: u8 = 0x0A;
    pub const EXTENDED_SET: u8 = 0x0B;
    pub const EXTENDED_GET: u8 = 0x0C;
    pub const EXTENDED_REPORT: u8 = 0x0D;
    pub const ADMIN_CODE_SET: u8 = 0x0E;
    pub const ADMIN_CODE_GET: u8 = 0x0F;
    pub const ADMIN_CODE_REPORT: u8 = 0x10;
    pub const CHECKSUM_GET: u8 = 0x11;
    pub const CHECKSUM_REPORT: u8 = 0x12;
}

/// One slot in an Extended User Code Set or Report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserCodeEntry {
    pub user_id: u16,
    pub user_id_status: UserIdStatus,
    pub user_code: CodeBytes,
}

/// User Code Capabilities Report (v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub admin_code_supported: bool,
    pub admin_code_deactivation_supported: bool,
    /// Bitmask: bit n = user id status n supported.
    pub supported_statuses_mask: Vec<u8>,
    pub checksum_supported: bool,
    /// Extended Get can return several codes per report.
    pub multiple_report_supported: bool,
    pub multiple_set_supported: bool,
    /// Bitmask: bit n = keypad mode n supported.
    pub supported_keypad_modes_mask: Vec<u8>,
    /// Bitmask: bit n = ASCII character n may appear in a code.
    pub supported_keys_mask: Vec<u8>,
}

impl Capabilities {
    fn bit(mask: &[u8], n: usize) -> bool {
        mask.get(n / 8).is_some_and(|b| b & (1 << (n % 8)) != 0)
    }

    pub fn supports_status(&self, status: UserIdStatus) -> bool {
        Self::bit(&self.supported_statuses_mask, usize::from(status.to_byte()))
    }

    pub fn supports_keypad_mode(&self, mode: u8) -> bool {
        Self::bit(&self.supported_keypad_modes_mask, usize::from(mode))
    }

    /// The characters a code may contain.
    pub fn supported_characters(&self) -> String {
        (0..self.supported_keys_mask.len() * 8)
            .filter(|n| Self::bit(&self.supported_keys_mask, *n))
            .filter_map(|n| u8::try_from(n).ok())
            .map(char::from)
            .collect()
    }

    pub fn allows_key(&self, c: u8) -> bool {
        Self::bit(&self.supported_keys_mask, usize::from(c))
    }
}

/// Every User Code command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum UserCodeCommand {
    Set {
        user_id: u8,
        user_id_status: UserIdStatus,
        user_code: CodeBytes,
    },
    Get {
        user_id: u8,
    },
    Report {
        user_id: u8,
        user_id_status: UserIdStatus,
        user_code: CodeBytes,
    },
    UsersNumberGet,
    UsersNumberReport {
        /// The v1 count, capped at 255 by v2 locks.
        supported_users: u8,
        /// The v2 16-bit count.
        extended_supported_users: Option<u16>,
    },
    CapabilitiesGet,
    CapabilitiesReport(Capabilities),
    KeypadModeSet {
        keypad_mode: u8,
    },
    KeypadModeGet,
    KeypadModeReport {
        keypad_mode: u8,
    },
    ExtendedUserCodeSet {
        entries: Vec<UserCodeEntry>,
    },
    ExtendedUserCodeGet {
        user_id: u16,
        report_more: bool,
    },
    ExtendedUserCodeReport {
        entries: Vec<UserCodeEntry>,
        next_user_id: u16,
    },
    AdminCodeSet {
        admin_code: CodeBytes,
    },
    AdminCodeGet,
    AdminCodeReport {
        admin_code: CodeBytes,
    },
    UserCodeChecksumGet,
    UserCodeChecksumReport {
        checksum: u16,
    },
}

impl UserCodeCommand {
    /// Clear one slot (v1 form, as zwave-js writes it: status available, four 0x00).
    pub fn clear(user_id: u8) -> Self {
        UserCodeCommand::Set {
            user_id,
            user_id_status: UserIdStatus::Available,
            user_code: CodeBytes::new(vec![0; 4]),
        }
    }

    /// The number of user ids the lock has, from a Users Number Report.
    pub fn users_number(&self) -> Option<u16> {
        match self {
            UserCodeCommand::UsersNumberReport {
                supported_users,
                extended_supported_users,
            } => Some(extended_supported_users.unwrap_or(u16::from(*supported_users))),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        use UserCodeCommand::*;
        match self {
            Set { .. } => "Set",
            Get { .. } => "Get",
            Report { .. } => "Report",
            UsersNumberGet => "UsersNumberGet",
            UsersNumberReport { .. } => "UsersNumberReport",
            CapabilitiesGet => "CapabilitiesGet",
            CapabilitiesReport(_) => "CapabilitiesReport",
            KeypadModeSet { .. } => "KeypadModeSet",
            KeypadModeGet => "KeypadModeGet",
            KeypadModeReport { .. } => "KeypadModeReport",
            ExtendedUserCodeSet { .. } => "ExtendedUserCodeSet",
            ExtendedUserCodeGet { .. } => "ExtendedUserCodeGet",
            ExtendedUserCodeReport { .. } => "ExtendedUserCodeReport",
            AdminCodeSet { .. } => "AdminCodeSet",
            AdminCodeGet => "AdminCodeGet",
            AdminCodeReport { .. } => "AdminCodeReport",
            UserCodeChecksumGet => "UserCodeChecksumGet",
            UserCodeChecksumReport { .. } => "UserCodeChecksumReport",
        }
    }

    pub fn command_id(&self) -> u8 {
        use UserCodeCommand::*;
        match self {
            Set { .. } => cmd::SET,
            Get { .. } => cmd::GET,
            Report { .. } => cmd::REPORT,
            UsersNumberGet => cmd::USERS_NUMBER_GET,
            UsersNumberReport { .. } => cmd::USERS_NUMBER_REPORT,
            CapabilitiesGet => cmd::CAPABILITIES_GET,
            CapabilitiesReport(_) => cmd::CAPABILITIES_REPORT,
            KeypadModeSet { .. } => cmd::KEYPAD_MODE_SET,
            KeypadModeGet => cmd::KEYPAD_MODE_GET,
            KeypadModeReport { .. } => cmd::KEYPAD_MODE_REPORT,
            ExtendedUserCodeSet { .. } => cmd::EXTENDED_SET,
            ExtendedUserCodeGet { .. } => cmd::EXTENDED_GET,
            ExtendedUserCodeReport { .. } => cmd::EXTENDED_REPORT,
            AdminCodeSet { .. } => cmd::ADMIN_CODE_SET,
            AdminCodeGet => cmd::ADMIN_CODE_GET,
            AdminCodeReport { .. } => cmd::ADMIN_CODE_REPORT,
            UserCodeChecksumGet => cmd::CHECKSUM_GET,
            UserCodeChecksumReport { .. } => cmd::CHECKSUM_REPORT,
        }
    }

    /// Parse the payload after `63 <command>`; `Ok(None)` for a command id we do not know.
    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        use UserCodeCommand as U;
        let v = match command {
            cmd::SET => parse_cc(CLASS, "Set", p, |i| {
                let (i, user_id) = be_u8(i)?;
                let (i, status) = be_u8(i)?;
                let (i, code) = rest(i)?;
                Ok((
                    i,
                    U::Set {
                        user_id,
                        user_id_status: UserIdStatus::from_byte(status),
                        user_code: CodeBytes::new(code),
                    },
                ))
            })?,
            cmd::GET => parse_cc(CLASS, "Get", p, |i| {
                let (i, user_id) = be_u8(i)?;
                Ok((i, U::Get { user_id }))
            })?,
            // Lenient, as real locks need: no code bytes at all (status only), zero padding,
            // masking and trailing bytes are all kept as sent.
            cmd::REPORT => parse_cc(CLASS, "Report", p, |i| {
                let (i, user_id) = be_u8(i)?;
                let (i, status) = be_u8(i)?;
                let (i, code) = rest(i)?;
                Ok((
                    i,
                    U::Report {
                        user_id,
                        user_id_status: UserIdStatus::from_byte(status),
                        user_code: CodeBytes::new(code),
                    },
                ))
            })?,
            cmd::USERS_NUMBER_GET => U::UsersNumberGet,
            cmd::USERS_NUMBER_REPORT => parse_cc(CLASS, "UsersNumberReport", p, |i| {
                let (i, supported_users) = be_u8(i)?;
                let (i, extended_supported_users) = opt(be_u16)(i)?;
                Ok((
                    i,
                    U::UsersNumberReport {
                        supported_users,
                        extended_supported_users,
                    },
                ))
            })?,
            cmd::CAPABILITIES_GET => U::CapabilitiesGet,
            cmd::CAPABILITIES_REPORT => {
                U::CapabilitiesReport(parse_cc(CLASS, "CapabilitiesReport", p, capabilities)?)
            }
            cmd::KEYPAD_MODE_SET => U::KeypadModeSet {
                keypad_mode: parse_cc(CLASS, "KeypadModeSet", p, be_u8)?,
            },
            cmd::KEYPAD_MODE_GET => U::KeypadModeGet,
            cmd::KEYPAD_MODE_REPORT => U::KeypadModeReport {
                keypad_mode: parse_cc(CLASS, "KeypadModeReport", p, be_u8)?,
            },
            cmd::EXTENDED_SET => U::ExtendedUserCodeSet {
                entries: parse_cc(CLASS, "ExtendedUserCodeSet", p, entries)?,
            },
            cmd::EXTENDED_GET => parse_cc(CLASS, "ExtendedUserCodeGet", p, |i| {
                let (i, user_id) = be_u16(i)?;
                let (i, more) = opt(be_u8)(i)?;
                Ok((
                    i,
                    U::ExtendedUserCodeGet {
                        user_id,
                        report_more: more.is_some_and(|m| m & 0x01 != 0),
                    },
                ))
            })?,
            cmd::EXTENDED_REPORT => parse_cc(CLASS, "ExtendedUserCodeReport", p, |i| {
                let (i, entries) = entries(i)?;
                let (i, next) = opt(be_u16)(i)?;
                Ok((
                    i,
                    U::ExtendedUserCodeReport {
                        entries,
                        next_user_id: next.unwrap_or(0),
                    },
                ))
            })?,
            cmd::ADMIN_CODE_SET => U::AdminCodeSet {
                admin_code: parse_cc(CLASS, "AdminCodeSet", p, length_prefixed_code)?,
            },
            cmd::ADMIN_CODE_GET => U::AdminCodeGet,
            cmd::ADMIN_CODE_REPORT => U::AdminCodeReport {
                admin_code: parse_cc(CLASS, "AdminCodeReport", p, length_prefixed_code)?,
            },
            cmd::CHECKSUM_GET => U::UserCodeChecksumGet,
            cmd::CHECKSUM_REPORT => U::UserCodeChecksumReport {
                checksum: parse_cc(CLASS, "UserCodeChecksumReport", p, be_u16)?,
            },
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    /// Append the payload after `63 <command>`.
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        use UserCodeCommand as U;
        match self {
            U::Set {
                user_id,
                user_id_status,
                user_code,
            }
            | U::Report {
                user_id,
                user_id_status,
                user_code,
            } => {
                out.put_u8(*user_id);
                out.put_u8(user_id_status.to_byte());
                out.put_slice(user_code.as_bytes());
            }
            U::Get { user_id } => out.put_u8(*user_id),
            U::UsersNumberGet
            | U::CapabilitiesGet
            | U::KeypadModeGet
            | U::AdminCodeGet
            | U::UserCodeChecksumGet => {}
            U::UsersNumberReport {
                supported_users,
                extended_supported_users,
            } => {
                out.put_u8(*supported_users);
                if let Some(e) = extended_supported_users {
                    out.put_u16(*e);
                }
            }
            U::CapabilitiesReport(c) => {
                let l1 = c.supported_statuses_mask.len().min(31) as u8;
                out.put_u8(
                    (u8::from(c.admin_code_supported) << 7)
                        | (u8::from(c.admin_code_deactivation_supported) << 6)
                        | l1,
                );
                out.put_slice(&c.supported_statuses_mask[..usize::from(l1)]);
                let l2 = c.supported_keypad_modes_mask.len().min(31) as u8;
                out.put_u8(
                    (u8::from(c.checksum_supported) << 7)
                        | (u8::from(c.multiple_report_supported) << 6)
                        | (u8::from(c.multiple_set_supported) << 5)
                        | l2,
                );
                out.put_slice(&c.supported_keypad_modes_mask[..usize::from(l2)]);
                let l3 = c.supported_keys_mask.len().min(31) as u8;
                out.put_u8(l3);
                out.put_slice(&c.supported_keys_mask[..usize::from(l3)]);
            }
            U::KeypadModeSet { keypad_mode } | U::KeypadModeReport { keypad_mode } => {
                out.put_u8(*keypad_mode)
            }
            U::ExtendedUserCodeSet { entries } => put_entries(out, entries),
            U::ExtendedUserCodeGet {
                user_id,
                report_more,
            } => {
                out.put_u16(*user_id);
                out.put_u8(u8::from(*report_more));
            }
            U::ExtendedUserCodeReport {
                entries,
                next_user_id,
            } => {
                put_entries(out, entries);
                out.put_u16(*next_user_id);
            }
            U::AdminCodeSet { admin_code } | U::AdminCodeReport { admin_code } => {
                let code = &admin_code.as_bytes()[..admin_code.len().min(15)];
                out.put_u8(code.len() as u8);
                out.put_slice(code);
            }
            U::UserCodeChecksumReport { checksum } => out.put_u16(*checksum),
        }
    }
}

fn capabilities(i: &[u8]) -> IResult<&[u8], Capabilities> {
    let (i, b0) = be_u8(i)?;
    let (i, statuses) = take(b0 & 0x1F)(i)?;
    let (i, b1) = be_u8(i)?;
    let (i, modes) = take(b1 & 0x1F)(i)?;
    let (i, b2) = be_u8(i)?;
    let (i, keys) = take(b2 & 0x1F)(i)?;
    Ok((
        i,
        Capabilities {
            admin_code_supported: b0 & 0x80 != 0,
            admin_code_deactivation_supported: b0 & 0x40 != 0,
            supported_statuses_mask: statuses.to_vec(),
            checksum_supported: b1 & 0x80 != 0,
            multiple_report_supported: b1 & 0x40 != 0,
            multiple_set_supported: b1 & 0x20 != 0,
            supported_keypad_modes_mask: modes.to_vec(),
            supported_keys_mask: keys.to_vec(),
        },
    ))
}

fn entry(i: &[u8]) -> IResult<&[u8], UserCodeEntry> {
    let (i, user_id) = be_u16(i)?;
    let (i, status) = be_u8(i)?;
    let (i, len) = be_u8(i)?;
    let (i, code) = take(len & 0x0F)(i)?;
    Ok((
        i,
        UserCodeEntry {
            user_id,
            user_id_status: UserIdStatus::from_byte(status),
            user_code: CodeBytes::new(code),
        },
    ))
}

fn entries(i: &[u8]) -> IResult<&[u8], Vec<UserCodeEntry>> {
    let (i, n) = be_u8(i)?;
    count(entry, usize::from(n))(i)
}

fn put_entries(out: &mut Vec<u8>, entries: &[UserCodeEntry]) {
    out.put_u8(entries.len().min(255) as u8);
    for e in entries.iter().take(255) {
        out.put_u16(e.user_id);
        out.put_u8(e.user_id_status.to_byte());
        let code = &e.user_code.as_bytes()[..e.user_code.len().min(15)];
        out.put_u8(code.len() as u8);
        out.put_slice(code);
    }
}

fn length_prefixed_code(i: &[u8]) -> IResult<&[u8], CodeBytes> {
    let (i, len) = be_u8(i)?;
    let (i, code) = take(len & 0x0F)(i)?;
    Ok((i, CodeBytes::new(code)))
}
