//! Security S0 CC (0x98): the outer layout only (the crypto is in `security`).

use bytes::BufMut;
use nom::bytes::complete::take;
use nom::combinator::rest;
use nom::number::complete::be_u8;
use serde::Serialize;

use super::error::{parse_cc, CcError};
use super::RawCommand;

pub const ID: u8 = 0x98;
const CLASS: &str = "Security";

pub mod cmd {
    pub const COMMANDS_SUPPORTED_GET: u8 = 0x02;
    pub const COMMANDS_SUPPORTED_REPORT: u8 = 0x03;
    pub const SCHEME_GET: u8 = 0x04;
    pub const SCHEME_REPORT: u8 = 0x05;
    pub const NETWORK_KEY_SET: u8 = 0x06;
    pub const NETWORK_KEY_VERIFY: u8 = 0x07;
    pub const SCHEME_INHERIT: u8 = 0x08;
    pub const NONCE_GET: u8 = 0x40;
    pub const NONCE_REPORT: u8 = 0x80;
    pub const MESSAGE_ENCAPSULATION: u8 = 0x81;
    pub const MESSAGE_ENCAPSULATION_NONCE_GET: u8 = 0xC1;
}

/// An S0 encrypted message: `senderNonce[8] | ciphertext | receiverNonceId | MAC[8]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S0Encapsulation {
    #[serde(with = "hex_bytes")]
    pub sender_nonce: [u8; 8],
    #[serde(skip)]
    pub ciphertext: Vec<u8>,
    pub receiver_nonce_id: u8,
    #[serde(with = "hex_bytes")]
    pub mac: [u8; 8],
}

/// Every S0 command. Commands carried inside an encapsulation are not visible here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Security0Command {
    CommandsSupportedGet,
    CommandsSupportedReport {
        #[serde(skip)]
        raw: RawCommand,
    },
    SchemeGet {
        supported_schemes: u8,
    },
    SchemeReport {
        supported_schemes: u8,
    },
    /// Sent encrypted with the all-zero key during inclusion; never logged.
    NetworkKeySet {
        #[serde(skip)]
        network_key: RawCommand,
    },
    NetworkKeyVerify,
    SchemeInherit {
        supported_schemes: u8,
    },
    NonceGet,
    NonceReport {
        #[serde(with = "hex_bytes")]
        nonce: [u8; 8],
    },
    MessageEncapsulation(S0Encapsulation),
    MessageEncapsulationNonceGet(S0Encapsulation),
}

impl Security0Command {
    pub fn name(&self) -> &'static str {
        use Security0Command::*;
        match self {
            CommandsSupportedGet => "CommandsSupportedGet",
            CommandsSupportedReport { .. } => "CommandsSupportedReport",
            SchemeGet { .. } => "SchemeGet",
            SchemeReport { .. } => "SchemeReport",
            NetworkKeySet { .. } => "NetworkKeySet",
            NetworkKeyVerify => "NetworkKeyVerify",
            SchemeInherit { .. } => "SchemeInherit",
            NonceGet => "NonceGet",
            NonceReport { .. } => "NonceReport",
            MessageEncapsulation(_) => "MessageEncapsulation",
            MessageEncapsulationNonceGet(_) => "MessageEncapsulationNonceGet",
        }
    }

    pub fn command_id(&self) -> u8 {
        use Security0Command::*;
        match self {
            CommandsSupportedGet => cmd::COMMANDS_SUPPORTED_GET,
            CommandsSupportedReport { .. } => cmd::COMMANDS_SUPPORTED_REPORT,
            SchemeGet { .. } => cmd::SCHEME_GET,
            SchemeReport { .. } => cmd::SCHEME_REPORT,
            NetworkKeySet { .. } => cmd::NETWORK_KEY_SET,
            NetworkKeyVerify => cmd::NETWORK_KEY_VERIFY,
            SchemeInherit { .. } => cmd::SCHEME_INHERIT,
            NonceGet => cmd::NONCE_GET,
            NonceReport { .. } => cmd::NONCE_REPORT,
            MessageEncapsulation(_) => cmd::MESSAGE_ENCAPSULATION,
            MessageEncapsulationNonceGet(_) => cmd::MESSAGE_ENCAPSULATION_NONCE_GET,
        }
    }

    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        use Security0Command as S;
        let scheme = |name| parse_cc(CLASS, name, p, be_u8);
        let v = match command {
            cmd::COMMANDS_SUPPORTED_GET => S::CommandsSupportedGet,
            cmd::COMMANDS_SUPPORTED_REPORT => S::CommandsSupportedReport {
                raw: RawCommand(p.to_vec()),
            },
            cmd::SCHEME_GET => S::SchemeGet {
                supported_schemes: scheme("SchemeGet")?,
            },
            cmd::SCHEME_REPORT => S::SchemeReport {
                supported_schemes: scheme("SchemeReport")?,
            },
            cmd::NETWORK_KEY_SET => S::NetworkKeySet {
                network_key: RawCommand(p.to_vec()),
            },
            cmd::NETWORK_KEY_VERIFY => S::NetworkKeyVerify,
            cmd::SCHEME_INHERIT => S::SchemeInherit {
                supported_schemes: scheme("SchemeInherit")?,
            },
            cmd::NONCE_GET => S::NonceGet,
            cmd::NONCE_REPORT => S::NonceReport {
                nonce: parse_cc(CLASS, "NonceReport", p, array8)?,
            },
            cmd::MESSAGE_ENCAPSULATION => {
                S::MessageEncapsulation(parse_encapsulation("MessageEncapsulation", p)?)
            }
            cmd::MESSAGE_ENCAPSULATION_NONCE_GET => S::MessageEncapsulationNonceGet(
                parse_encapsulation("MessageEncapsulationNonceGet", p)?,
            ),
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        use Security0Command as S;
        match self {
            S::CommandsSupportedGet | S::NetworkKeyVerify | S::NonceGet => {}
            S::CommandsSupportedReport { raw } | S::NetworkKeySet { network_key: raw } => {
                out.put_slice(&raw.0)
            }
            S::SchemeGet { supported_schemes }
            | S::SchemeReport { supported_schemes }
            | S::SchemeInherit { supported_schemes } => out.put_u8(*supported_schemes),
            S::NonceReport { nonce } => out.put_slice(nonce),
            S::MessageEncapsulation(e) | S::MessageEncapsulationNonceGet(e) => {
                out.put_slice(&e.sender_nonce);
                out.put_slice(&e.ciphertext);
                out.put_u8(e.receiver_nonce_id);
                out.put_slice(&e.mac);
            }
        }
    }
}

fn array8(i: &[u8]) -> nom::IResult<&[u8], [u8; 8]> {
    let (i, b) = take(8usize)(i)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok((i, a))
}

fn parse_encapsulation(name: &'static str, p: &[u8]) -> Result<S0Encapsulation, CcError> {
    parse_cc(CLASS, name, p, |i| {
        let (i, sender_nonce) = array8(i)?;
        // ciphertext | nonce id | MAC[8]: the last 9 bytes are fixed.
        if i.len() < 9 {
            return Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Eof,
            )));
        }
        let (i, ciphertext) = take(i.len() - 9)(i)?;
        let (i, receiver_nonce_id) = be_u8(i)?;
        let (i, mac) = array8(i)?;
        let (i, _) = rest(i)?;
        Ok((
            i,
            S0Encapsulation {
                sender_nonce,
                ciphertext: ciphertext.to_vec(),
                receiver_nonce_id,
                mac,
            },
        ))
    })
}

/// Serialize fixed byte arrays as hex strings.
pub(crate) mod hex_bytes {
    pub fn serialize<S: serde::Serializer, const N: usize>(
        b: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::util::hex::encode(b))
    }
}
