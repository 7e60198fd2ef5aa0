//! User codes as they travel in User Code frames, and the slot status that goes with them.
//!
//! A code is kept as the raw bytes the lock sent (locks pad with zeros or spaces, mask with
//! `*`, or send non-ASCII); [`CodeBytes::view`] says what they mean. The bytes are a secret:
//! `Debug` never shows them, serde never writes them, and they are zeroed when dropped.

use std::fmt;

use serde::Serialize;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Raw code bytes from or for a User Code frame.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct CodeBytes(Vec<u8>);

impl CodeBytes {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        CodeBytes(bytes.into())
    }

    /// A PIN of ASCII digits.
    pub fn from_pin(pin: &str) -> Self {
        CodeBytes(pin.as_bytes().to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What the bytes say, read leniently as real locks need.
    pub fn view(&self) -> CodeView<'_> {
        let trimmed_len = self.0.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
        let b = &self.0[..trimmed_len];
        if b.is_empty() {
            return if self.0.is_empty() {
                CodeView::Empty
            } else {
                // All zeros: the slot holds something the lock will not show.
                CodeView::Unreadable
            };
        }
        if b.iter().all(|c| *c == b'*') {
            return CodeView::Masked;
        }
        if b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
            let s = std::str::from_utf8(b).expect("ASCII").trim();
            if s.is_empty() {
                return CodeView::Unreadable;
            }
            if s.bytes().all(|c| c == b'*') {
                return CodeView::Masked;
            }
            return CodeView::Pin(s);
        }
        CodeView::Unreadable
    }

    /// The PIN, when the bytes hold a readable one.
    pub fn pin(&self) -> Option<&str> {
        match self.view() {
            CodeView::Pin(p) => Some(p),
            _ => None,
        }
    }

    /// Masked or unreadable: occupied, but the value cannot be known.
    pub fn is_hidden(&self) -> bool {
        matches!(self.view(), CodeView::Masked | CodeView::Unreadable)
    }
}

impl fmt::Debug for CodeBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeBytes(**** {} bytes)", self.0.len())
    }
}

/// Serialized as `"****"` (or `""` when empty): a code never leaves through serde.
impl Serialize for CodeBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "****" })
    }
}

/// The meaning of a code field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeView<'a> {
    /// No bytes at all.
    Empty,
    /// A readable code (padding and surrounding spaces removed).
    Pin(&'a str),
    /// `**********`: the lock hides its codes.
    Masked,
    /// All zeros, or bytes that are not printable.
    Unreadable,
}

/// The status of a user id (slot), User Code CC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserIdStatus {
    Available,
    Enabled,
    Disabled,
    Messaging,
    PassageMode,
    /// 0xFE: the lock does not have this user id.
    NotAvailable,
    Other(u8),
}

impl UserIdStatus {
    pub fn from_byte(b: u8) -> Self {
        match b {
            0x00 => UserIdStatus::Available,
            0x01 => UserIdStatus::Enabled,
            0x02 => UserIdStatus::Disabled,
            0x03 => UserIdStatus::Messaging,
            0x04 => UserIdStatus::PassageMode,
            0xFE => UserIdStatus::NotAvailable,
            o => UserIdStatus::Other(o),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            UserIdStatus::Available => 0x00,
            UserIdStatus::Enabled => 0x01,
            UserIdStatus::Disabled => 0x02,
            UserIdStatus::Messaging => 0x03,
            UserIdStatus::PassageMode => 0x04,
            UserIdStatus::NotAvailable => 0xFE,
            UserIdStatus::Other(o) => o,
        }
    }

    /// Whether the slot holds a code (any status but available / not available).
    pub fn is_occupied(self) -> bool {
        !matches!(self, UserIdStatus::Available | UserIdStatus::NotAvailable)
    }

    /// available, enabled, disabled, messaging, passage, not_available, or the number.
    pub fn name(self) -> String {
        match self {
            UserIdStatus::Available => "available".into(),
            UserIdStatus::Enabled => "enabled".into(),
            UserIdStatus::Disabled => "disabled".into(),
            UserIdStatus::Messaging => "messaging".into(),
            UserIdStatus::PassageMode => "passage".into(),
            UserIdStatus::NotAvailable => "not_available".into(),
            UserIdStatus::Other(o) => o.to_string(),
        }
    }
}

impl Serialize for UserIdStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UserIdStatus::Other(o) => s.serialize_u8(*o),
            other => s.serialize_str(&other.name()),
        }
    }
}

/// CRC-16/CCITT with init 0x1D0F, as User Code Checksum uses.
pub fn crc16_aug_ccitt(data: &[u8]) -> u16 {
    crc16_update(0x1D0F, data)
}

fn crc16_update(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The User Code Checksum of a slot table: CRC over `userId:u16be status code` of every
/// occupied slot with a code, in ascending user id order; 0x0000 when no slot is occupied.
pub fn user_code_checksum<'a>(
    slots: impl IntoIterator<Item = (u16, UserIdStatus, &'a [u8])>,
) -> u16 {
    let mut entries: Vec<(u16, UserIdStatus, &[u8])> = slots
        .into_iter()
        .filter(|(_, status, code)| {
            *status != UserIdStatus::Available
                && *status != UserIdStatus::NotAvailable
                && !code.is_empty()
        })
        .collect();
    if entries.is_empty() {
        return 0;
    }
    entries.sort_by_key(|e| e.0);
    let mut crc = 0x1D0F;
    for (id, status, code) in entries {
        crc = crc16_update(crc, &id.to_be_bytes());
        crc = crc16_update(crc, &[status.to_byte()]);
        crc = crc16_update(crc, code);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_values() {
        assert_eq!(crc16_aug_ccitt(b""), 0x1D0F);
        assert_eq!(crc16_aug_ccitt(b"A"), 0x9479);
        assert_eq!(crc16_aug_ccitt(b"123456789"), 0xE5CC);
    }

    #[test]
    fn checksum_of_one_code_and_of_none() {
        // protocol.md: only user 1 = enabled "1234" → 0x200A; no codes → 0x0000.
        assert_eq!(
            user_code_checksum([(1, UserIdStatus::Enabled, &b"1234"[..])]),
            0x200A
        );
        assert_eq!(user_code_checksum([]), 0);
        assert_eq!(
            user_code_checksum([(3, UserIdStatus::Available, &b""[..])]),
            0
        );
    }

    #[test]
    fn checksum_of_the_mock_table() {
        // The zwave-js mock answered 63 12 E9 4B for this table (seeded users 1 and 7, users 2
        // and 3 set by the probe): an independent implementation of the same checksum.
        let table: [(u16, UserIdStatus, &[u8]); 4] = [
            (7, UserIdStatus::Disabled, b"24680"),
            (1, UserIdStatus::Enabled, b"1234"),
            (2, UserIdStatus::Enabled, b"5678"),
            (3, UserIdStatus::Enabled, b"13579"),
        ];
        let c = user_code_checksum(table);
        assert_eq!(c, 0xE94B);
        // Order of the input does not matter.
        let mut sorted = table;
        sorted.sort_by_key(|e| e.0);
        assert_eq!(c, user_code_checksum(sorted));
    }

    #[test]
    fn views() {
        assert_eq!(CodeBytes::from_pin("1234").view(), CodeView::Pin("1234"));
        assert_eq!(
            CodeBytes::new(b"1234\0\0\0\0\0\0".to_vec()).view(),
            CodeView::Pin("1234")
        );
        assert_eq!(
            CodeBytes::new(b"**********".to_vec()).view(),
            CodeView::Masked
        );
        assert_eq!(CodeBytes::new(vec![0; 10]).view(), CodeView::Unreadable);
        assert_eq!(
            CodeBytes::new(vec![0xff, 0x10]).view(),
            CodeView::Unreadable
        );
        assert_eq!(
            CodeBytes::new(b" 4321 ".to_vec()).view(),
            CodeView::Pin("4321")
        );
        assert_eq!(CodeBytes::new(Vec::new()).view(), CodeView::Empty);
        assert!(CodeBytes::new(b"****".to_vec()).is_hidden());
    }

    #[test]
    fn secrets_stay_secret() {
        let c = CodeBytes::from_pin("482193");
        assert!(!format!("{c:?}").contains("482193"));
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"****\"");
    }
}
