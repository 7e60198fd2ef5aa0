//! S2 Message Encapsulation (`9F 03`): sequence number, extensions, AES-CCM ciphertext and
//! an 8-byte tag, and the additional authenticated data that binds it to the two nodes and
//! the network.
//!
//! `9F 03 | seq | flags (bit0 extensions, bit1 encrypted extensions) | unencrypted
//! extensions | ciphertext (encrypted extensions ‖ command) | tag (8)`. Each extension is
//! `[length incl. these 2 bytes][more(7) | critical(6) | type(5..0)][data]`.

use crate::security::primitives::{ccm_decrypt, ccm_encrypt, Key};
use crate::security::SecurityError;

pub const CC: u8 = 0x9F;
pub const ENCAPSULATION: u8 = 0x03;
const TAG_LEN: usize = 8;

pub mod ext {
    pub const SPAN: u8 = 1;
    pub const MPAN: u8 = 2;
    pub const MGRP: u8 = 3;
    pub const MOS: u8 = 4;
}

/// One extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub kind: u8,
    pub critical: bool,
    pub data: Vec<u8>,
}

impl Extension {
    /// The sender's entropy input, for a new SPAN (critical, unencrypted).
    pub fn span(sender_ei: &[u8; 16]) -> Extension {
        Extension {
            kind: ext::SPAN,
            critical: true,
            data: sender_ei.to_vec(),
        }
    }

    /// The sender's SPAN entropy input, if this is a SPAN extension of the right size.
    pub fn sender_ei(&self) -> Option<[u8; 16]> {
        (self.kind == ext::SPAN)
            .then(|| self.data.as_slice().try_into().ok())
            .flatten()
    }
}

fn encode_extensions(exts: &[Extension], out: &mut Vec<u8>) {
    for (i, e) in exts.iter().enumerate() {
        let more = if i + 1 < exts.len() { 0x80 } else { 0 };
        let critical = if e.critical { 0x40 } else { 0 };
        out.push((e.data.len() + 2) as u8);
        out.push(more | critical | (e.kind & 0x3F));
        out.extend_from_slice(&e.data);
    }
}

/// Parse a run of extensions (present: the caller saw the flag). Returns them and the rest.
fn parse_extensions(mut bytes: &[u8]) -> Result<(Vec<Extension>, &[u8]), SecurityError> {
    let mut out = Vec::new();
    loop {
        let [len, head, ..] = bytes else {
            return Err(SecurityError::Malformed("S2 extension truncated"));
        };
        let len = usize::from(*len);
        if len < 2 || len > bytes.len() {
            return Err(SecurityError::Malformed("S2 extension length"));
        }
        out.push(Extension {
            kind: head & 0x3F,
            critical: head & 0x40 != 0,
            data: bytes[2..len].to_vec(),
        });
        let more = head & 0x80 != 0;
        bytes = &bytes[len..];
        if !more {
            return Ok((out, bytes));
        }
    }
}

/// Who, where and which network: what the tag binds besides the frame itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressing {
    pub source: u16,
    pub destination: u16,
    pub home_id: u32,
}

impl Addressing {
    fn write(&self, out: &mut Vec<u8>) {
        // Node ids are one byte unless either side is a Long Range node.
        if self.source > 0xFF || self.destination > 0xFF {
            out.extend_from_slice(&self.source.to_be_bytes());
            out.extend_from_slice(&self.destination.to_be_bytes());
        } else {
            out.push(self.source as u8);
            out.push(self.destination as u8);
        }
        out.extend_from_slice(&self.home_id.to_be_bytes());
    }
}

fn aad(addr: &Addressing, total_len: usize, header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(10 + header.len());
    addr.write(&mut a);
    a.extend_from_slice(&(total_len as u16).to_be_bytes());
    a.extend_from_slice(header);
    a
}

/// A decrypted (or to-be-encrypted) S2 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sequence: u8,
    pub extensions: Vec<Extension>,
    pub encrypted_extensions: Vec<Extension>,
    pub command: Vec<u8>,
}

/// Encrypt `msg` under `key` with `nonce` (the SPAN's next one).
pub fn encapsulate(key: &Key, nonce: &[u8; 13], addr: &Addressing, msg: &Message) -> Vec<u8> {
    let mut header = vec![msg.sequence, 0];
    if !msg.extensions.is_empty() {
        header[1] |= 0x01;
        encode_extensions(&msg.extensions, &mut header);
    }
    if !msg.encrypted_extensions.is_empty() {
        header[1] |= 0x02;
    }
    let mut plain = Vec::new();
    encode_extensions(&msg.encrypted_extensions, &mut plain);
    plain.extend_from_slice(&msg.command);
    let total = 2 + header.len() + plain.len() + TAG_LEN;
    let sealed = ccm_encrypt(key, nonce, &aad(addr, total, &header), &plain);
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&[CC, ENCAPSULATION]);
    out.extend_from_slice(&header);
    out.extend_from_slice(&sealed);
    out
}

/// The parts readable before decryption: the sequence number and the unencrypted
/// extensions (a SPAN extension says which nonce to decrypt with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub sequence: u8,
    pub extensions: Vec<Extension>,
    encrypted_extensions: bool,
    header: &'a [u8],
    sealed: &'a [u8],
    total_len: usize,
}

impl Envelope<'_> {
    pub fn parse(frame: &[u8]) -> Result<Envelope<'_>, SecurityError> {
        let [CC, ENCAPSULATION, body @ ..] = frame else {
            return Err(SecurityError::Malformed("not an S2 encapsulation"));
        };
        let [sequence, flags, rest @ ..] = body else {
            return Err(SecurityError::Malformed("S2 encapsulation too short"));
        };
        let (extensions, rest) = if flags & 0x01 != 0 {
            parse_extensions(rest)?
        } else {
            (Vec::new(), rest)
        };
        if rest.len() < TAG_LEN + 1 {
            return Err(SecurityError::Malformed("S2 ciphertext too short"));
        }
        let header_len = body.len() - rest.len();
        Ok(Envelope {
            sequence: *sequence,
            extensions,
            encrypted_extensions: flags & 0x02 != 0,
            header: &body[..header_len],
            sealed: rest,
            total_len: frame.len(),
        })
    }

    /// The SPAN extension's sender entropy input, when the sender starts a new SPAN.
    pub fn sender_ei(&self) -> Option<[u8; 16]> {
        self.extensions.iter().find_map(Extension::sender_ei)
    }

    /// Authenticate and decrypt.
    pub fn open(
        &self,
        key: &Key,
        nonce: &[u8; 13],
        addr: &Addressing,
    ) -> Result<Message, SecurityError> {
        let plain = ccm_decrypt(
            key,
            nonce,
            &aad(addr, self.total_len, self.header),
            self.sealed,
        )
        .ok_or(SecurityError::AuthenticationFailed)?;
        let (encrypted_extensions, command) = if self.encrypted_extensions {
            let (e, rest) = parse_extensions(&plain)?;
            (e, rest.to_vec())
        } else {
            (Vec::new(), plain)
        };
        if self
            .extensions
            .iter()
            .chain(&encrypted_extensions)
            .any(|e| e.critical && !matches!(e.kind, ext::SPAN | ext::MPAN | ext::MGRP | ext::MOS))
        {
            return Err(SecurityError::Unsupported(
                "a critical S2 extension of unknown type",
            ));
        }
        Ok(Message {
            sequence: self.sequence,
            extensions: self.extensions.clone(),
            encrypted_extensions,
            command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: Addressing = Addressing {
        source: 1,
        destination: 5,
        home_id: 0xC0FFEE01,
    };

    fn msg(ext: Vec<Extension>) -> Message {
        Message {
            sequence: 0x42,
            extensions: ext,
            encrypted_extensions: Vec::new(),
            command: vec![0x63, 0x02, 0x03],
        }
    }

    #[test]
    fn round_trip_with_and_without_span() {
        let key = [9u8; 16];
        let nonce = [3u8; 13];
        for m in [msg(Vec::new()), msg(vec![Extension::span(&[7; 16])])] {
            let frame = encapsulate(&key, &nonce, &ADDR, &m);
            let env = Envelope::parse(&frame).unwrap();
            assert_eq!(env.sequence, 0x42);
            assert_eq!(
                env.sender_ei(),
                m.extensions.first().and_then(Extension::sender_ei)
            );
            assert_eq!(env.open(&key, &nonce, &ADDR).unwrap(), m);
        }
    }

    #[test]
    fn every_flipped_byte_wrong_nonce_key_or_address_is_rejected() {
        let key = [9u8; 16];
        let nonce = [3u8; 13];
        let frame = encapsulate(&key, &nonce, &ADDR, &msg(vec![Extension::span(&[7; 16])]));
        for i in 2..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x04;
            if let Ok(env) = Envelope::parse(&bad) {
                assert!(env.open(&key, &nonce, &ADDR).is_err(), "byte {i} flipped");
            }
        }
        let env = Envelope::parse(&frame).unwrap();
        assert_eq!(
            env.open(&key, &[4; 13], &ADDR),
            Err(SecurityError::AuthenticationFailed)
        );
        assert_eq!(
            env.open(&[8; 16], &nonce, &ADDR),
            Err(SecurityError::AuthenticationFailed)
        );
        let other = Addressing { home_id: 1, ..ADDR };
        assert_eq!(
            env.open(&key, &nonce, &other),
            Err(SecurityError::AuthenticationFailed)
        );
        let swapped = Addressing {
            source: 5,
            destination: 1,
            ..ADDR
        };
        assert_eq!(
            env.open(&key, &nonce, &swapped),
            Err(SecurityError::AuthenticationFailed)
        );
    }

    #[test]
    fn truncated_and_garbled_frames_are_malformed_not_panics() {
        let frame = encapsulate(
            &[1; 16],
            &[2; 13],
            &ADDR,
            &msg(vec![Extension::span(&[7; 16])]),
        );
        for n in 0..frame.len() {
            let _ = Envelope::parse(&frame[..n]);
        }
        assert!(Envelope::parse(&[0x9F, 0x03, 0x01, 0x01, 0x00, 0x41]).is_err());
    }
}
