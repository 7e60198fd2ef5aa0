//! Security 2 CC (0x9F): the outer layout only (the crypto is in `security`).

use bytes::BufMut;
use nom::bytes::complete::take;
use nom::combinator::rest;
use nom::number::complete::be_u8;
use nom::IResult;
use serde::Serialize;

use super::error::{parse_cc, CcError};
use super::security0::hex_bytes;
use super::RawCommand;

pub const ID: u8 = 0x9F;
const CLASS: &str = "Security2";

pub mod cmd {
    pub const NONCE_GET: u8 = 0x01;
    pub const NONCE_REPORT: u8 = 0x02;
    pub const MESSAGE_ENCAPSULATION: u8 = 0x03;
    pub const KEX_GET: u8 = 0x04;
    pub const KEX_REPORT: u8 = 0x05;
    pub const KEX_SET: u8 = 0x06;
    pub const KEX_FAIL: u8 = 0x07;
    pub const PUBLIC_KEY_REPORT: u8 = 0x08;
    pub const NETWORK_KEY_GET: u8 = 0x09;
    pub const NETWORK_KEY_REPORT: u8 = 0x0A;
    pub const NETWORK_KEY_VERIFY: u8 = 0x0B;
    pub const TRANSFER_END: u8 = 0x0C;
    pub const COMMANDS_SUPPORTED_GET: u8 = 0x0D;
    pub const COMMANDS_SUPPORTED_REPORT: u8 = 0x0E;
}

/// Extension types.
pub mod ext {
    pub const SPAN: u8 = 1;
    pub const MPAN: u8 = 2;
    pub const MGRP: u8 = 3;
    pub const MOS: u8 = 4;
}

/// One header extension of an S2 Message Encapsulation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S2Extension {
    pub critical: bool,
    pub ext_type: u8,
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// S2 Message Encapsulation: `seq | flags | unencrypted extensions | ciphertext | tag[8]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S2Encapsulation {
    pub sequence_number: u8,
    /// The ciphertext starts with encrypted extensions.
    pub encrypted_extensions: bool,
    pub extensions: Vec<S2Extension>,
    /// Ciphertext followed by the 8-byte authentication tag.
    #[serde(skip)]
    pub ciphertext: Vec<u8>,
}

impl S2Encapsulation {
    /// The sender's entropy input, when a SPAN extension carries one.
    pub fn sender_ei(&self) -> Option<[u8; 16]> {
        self.extensions
            .iter()
            .find(|e| e.ext_type == ext::SPAN && e.data.len() == 16)
            .map(|e| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&e.data);
                a
            })
    }

    /// The bytes from the sequence number through the unencrypted extensions (part of the AAD).
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.put_header(&mut out);
        out
    }

    fn put_header(&self, out: &mut Vec<u8>) {
        out.put_u8(self.sequence_number);
        out.put_u8(
            (u8::from(self.encrypted_extensions) << 1) | u8::from(!self.extensions.is_empty()),
        );
        for (n, e) in self.extensions.iter().enumerate() {
            let more = n + 1 < self.extensions.len();
            out.put_u8((e.data.len() + 2).min(255) as u8);
            out.put_u8((u8::from(more) << 7) | (u8::from(e.critical) << 6) | (e.ext_type & 0x3F));
            out.put_slice(&e.data[..e.data.len().min(253)]);
        }
    }
}

/// Every Security 2 command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Security2Command {
    NonceGet {
        sequence_number: u8,
    },
    NonceReport {
        sequence_number: u8,
        /// Multicast out of sync.
        mos: bool,
        /// Singlecast out of sync: a fresh receiver EI follows.
        sos: bool,
        #[serde(skip)]
        receiver_ei: Option<[u8; 16]>,
    },
    MessageEncapsulation(S2Encapsulation),
    KexGet,
    KexReport {
        request_csa: bool,
        echo: bool,
        supported_schemes: u8,
        supported_ecdh_profiles: u8,
        requested_keys: u8,
    },
    KexSet {
        permit_csa: bool,
        echo: bool,
        selected_scheme: u8,
        selected_ecdh_profile: u8,
        granted_keys: u8,
    },
    KexFail {
        fail_type: u8,
    },
    PublicKeyReport {
        including_node: bool,
        #[serde(with = "hex_bytes")]
        public_key: [u8; 32],
    },
    NetworkKeyGet {
        requested_key: u8,
    },
    /// Carries a network key: never logged or serialized.
    NetworkKeyReport {
        granted_key: u8,
        #[serde(skip)]
        network_key: RawCommand,
    },
    NetworkKeyVerify,
    TransferEnd {
        key_verified: bool,
        key_request_complete: bool,
    },
    CommandsSupportedGet,
    CommandsSupportedReport {
        #[serde(skip)]
        raw: RawCommand,
    },
}

impl Security2Command {
    pub fn name(&self) -> &'static str {
        use Security2Command::*;
        match self {
            NonceGet { .. } => "NonceGet",
            NonceReport { .. } => "NonceReport",
            MessageEncapsulation(_) => "MessageEncapsulation",
            KexGet => "KexGet",
            KexReport { .. } => "KexReport",
            KexSet { .. } => "KexSet",
            KexFail { .. } => "KexFail",
            PublicKeyReport { .. } => "PublicKeyReport",
            NetworkKeyGet { .. } => "NetworkKeyGet",
            NetworkKeyReport { .. } => "NetworkKeyReport",
            NetworkKeyVerify => "NetworkKeyVerify",
            TransferEnd { .. } => "TransferEnd",
            CommandsSupportedGet => "CommandsSupportedGet",
            CommandsSupportedReport { .. } => "CommandsSupportedReport",
        }
    }

    pub fn command_id(&self) -> u8 {
        use Security2Command::*;
        match self {
            NonceGet { .. } => cmd::NONCE_GET,
            NonceReport { .. } => cmd::NONCE_REPORT,
            MessageEncapsulation(_) => cmd::MESSAGE_ENCAPSULATION,
            KexGet => cmd::KEX_GET,
            KexReport { .. } => cmd::KEX_REPORT,
            KexSet { .. } => cmd::KEX_SET,
            KexFail { .. } => cmd::KEX_FAIL,
            PublicKeyReport { .. } => cmd::PUBLIC_KEY_REPORT,
            NetworkKeyGet { .. } => cmd::NETWORK_KEY_GET,
            NetworkKeyReport { .. } => cmd::NETWORK_KEY_REPORT,
            NetworkKeyVerify => cmd::NETWORK_KEY_VERIFY,
            TransferEnd { .. } => cmd::TRANSFER_END,
            CommandsSupportedGet => cmd::COMMANDS_SUPPORTED_GET,
            CommandsSupportedReport { .. } => cmd::COMMANDS_SUPPORTED_REPORT,
        }
    }

    pub fn parse(command: u8, p: &[u8]) -> Result<Option<Self>, CcError> {
        use Security2Command as S;
        let v = match command {
            cmd::NONCE_GET => S::NonceGet {
                sequence_number: parse_cc(CLASS, "NonceGet", p, be_u8)?,
            },
            cmd::NONCE_REPORT => parse_cc(CLASS, "NonceReport", p, |i| {
                let (i, sequence_number) = be_u8(i)?;
                let (i, flags) = be_u8(i)?;
                let sos = flags & 0x01 != 0;
                let (i, receiver_ei) = if sos {
                    let (i, ei) = array16(i)?;
                    (i, Some(ei))
                } else {
                    (i, None)
                };
                Ok((
                    i,
                    S::NonceReport {
                        sequence_number,
                        mos: flags & 0x02 != 0,
                        sos,
                        receiver_ei,
                    },
                ))
            })?,
            cmd::MESSAGE_ENCAPSULATION => {
                S::MessageEncapsulation(parse_cc(CLASS, "MessageEncapsulation", p, encapsulation)?)
            }
            cmd::KEX_GET => S::KexGet,
            cmd::KEX_REPORT => parse_cc(CLASS, "KexReport", p, |i| {
                let (i, (f, schemes, profiles, keys)) =
                    nom::sequence::tuple((be_u8, be_u8, be_u8, be_u8))(i)?;
                Ok((
                    i,
                    S::KexReport {
                        request_csa: f & 0x02 != 0,
                        echo: f & 0x01 != 0,
                        supported_schemes: schemes,
                        supported_ecdh_profiles: profiles,
                        requested_keys: keys,
                    },
                ))
            })?,
            cmd::KEX_SET => parse_cc(CLASS, "KexSet", p, |i| {
                let (i, (f, scheme, profile, keys)) =
                    nom::sequence::tuple((be_u8, be_u8, be_u8, be_u8))(i)?;
                Ok((
                    i,
                    S::KexSet {
                        permit_csa: f & 0x02 != 0,
                        echo: f & 0x01 != 0,
                        selected_scheme: scheme,
                        selected_ecdh_profile: profile,
                        granted_keys: keys,
                    },
                ))
            })?,
            cmd::KEX_FAIL => S::KexFail {
                fail_type: parse_cc(CLASS, "KexFail", p, be_u8)?,
            },
            cmd::PUBLIC_KEY_REPORT => parse_cc(CLASS, "PublicKeyReport", p, |i| {
                let (i, inc) = be_u8(i)?;
                let (i, k) = take(32usize)(i)?;
                let mut public_key = [0u8; 32];
                public_key.copy_from_slice(k);
                Ok((
                    i,
                    S::PublicKeyReport {
                        including_node: inc & 0x01 != 0,
                        public_key,
                    },
                ))
            })?,
            cmd::NETWORK_KEY_GET => S::NetworkKeyGet {
                requested_key: parse_cc(CLASS, "NetworkKeyGet", p, be_u8)?,
            },
            cmd::NETWORK_KEY_REPORT => parse_cc(CLASS, "NetworkKeyReport", p, |i| {
                let (i, granted_key) = be_u8(i)?;
                let (i, k) = take(16usize)(i)?;
                Ok((
                    i,
                    S::NetworkKeyReport {
                        granted_key,
                        network_key: RawCommand(k.to_vec()),
                    },
                ))
            })?,
            cmd::NETWORK_KEY_VERIFY => S::NetworkKeyVerify,
            cmd::TRANSFER_END => {
                let f = parse_cc(CLASS, "TransferEnd", p, be_u8)?;
                S::TransferEnd {
                    key_verified: f & 0x02 != 0,
                    key_request_complete: f & 0x01 != 0,
                }
            }
            cmd::COMMANDS_SUPPORTED_GET => S::CommandsSupportedGet,
            cmd::COMMANDS_SUPPORTED_REPORT => S::CommandsSupportedReport {
                raw: RawCommand(p.to_vec()),
            },
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        use Security2Command as S;
        match self {
            S::NonceGet { sequence_number } => out.put_u8(*sequence_number),
            S::NonceReport {
                sequence_number,
                mos,
                sos,
                receiver_ei,
            } => {
                out.put_u8(*sequence_number);
                out.put_u8((u8::from(*mos) << 1) | u8::from(*sos));
                if *sos {
                    out.put_slice(&receiver_ei.unwrap_or([0; 16]));
                }
            }
            S::MessageEncapsulation(e) => {
                e.put_header(out);
                out.put_slice(&e.ciphertext);
            }
            S::KexGet | S::NetworkKeyVerify | S::CommandsSupportedGet => {}
            S::KexReport {
                request_csa,
                echo,
                supported_schemes,
                supported_ecdh_profiles,
                requested_keys,
            } => out.put_slice(&[
                (u8::from(*request_csa) << 1) | u8::from(*echo),
                *supported_schemes,
                *supported_ecdh_profiles,
                *requested_keys,
            ]),
            S::KexSet {
                permit_csa,
                echo,
                selected_scheme,
                selected_ecdh_profile,
                granted_keys,
            } => out.put_slice(&[
                (u8::from(*permit_csa) << 1) | u8::from(*echo),
                *selected_scheme,
                *selected_ecdh_profile,
                *granted_keys,
            ]),
            S::KexFail { fail_type } => out.put_u8(*fail_type),
            S::PublicKeyReport {
                including_node,
                public_key,
            } => {
                out.put_u8(u8::from(*including_node));
                out.put_slice(public_key);
            }
            S::NetworkKeyGet { requested_key } => out.put_u8(*requested_key),
            S::NetworkKeyReport {
                granted_key,
                network_key,
            } => {
                out.put_u8(*granted_key);
                out.put_slice(&network_key.0);
            }
            S::TransferEnd {
                key_verified,
                key_request_complete,
            } => out.put_u8((u8::from(*key_verified) << 1) | u8::from(*key_request_complete)),
            S::CommandsSupportedReport { raw } => out.put_slice(&raw.0),
        }
    }
}

fn array16(i: &[u8]) -> IResult<&[u8], [u8; 16]> {
    let (i, b) = take(16usize)(i)?;
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ok((i, a))
}

fn encapsulation(i: &[u8]) -> IResult<&[u8], S2Encapsulation> {
    let (mut i, sequence_number) = be_u8(i)?;
    let (rest_i, flags) = be_u8(i)?;
    i = rest_i;
    let mut extensions = Vec::new();
    if flags & 0x01 != 0 {
        loop {
            let (r, len) = be_u8(i)?;
            let (r, t) = be_u8(r)?;
            if len < 2 {
                return Err(nom::Err::Error(nom::error::Error::new(
                    r,
                    nom::error::ErrorKind::Verify,
                )));
            }
            let (r, data) = take(len - 2)(r)?;
            extensions.push(S2Extension {
                critical: t & 0x40 != 0,
                ext_type: t & 0x3F,
                data: data.to_vec(),
            });
            i = r;
            if t & 0x80 == 0 {
                break;
            }
        }
    }
    let (i, ciphertext) = rest(i)?;
    Ok((
        i,
        S2Encapsulation {
            sequence_number,
            encrypted_extensions: flags & 0x02 != 0,
            extensions,
            ciphertext: ciphertext.to_vec(),
        },
    ))
}
