//! Hex text for frames in fixtures, tools and logs.

use std::fmt::Write;

/// Lower-case hex with no separators: `010300ff03`.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Lower-case hex with a space between bytes: `01 03 00 ff 03`.
pub fn encode_spaced(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Why a text is not hex bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("'{0}' is not a hex digit")]
    BadDigit(char),
    #[error("odd number of hex digits")]
    OddLength,
    #[error("'{0}' is not a byte (expected 1 or 2 hex digits)")]
    BadByte(String),
}

/// Hex bytes in any of the common spellings: `010a0013`, `01 0a 00 13`, `0x01, 0x0a`,
/// `0x010a0013`, `[0x01 0x0a]`. Separators are spaces, commas, colons and brackets.
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let cleaned: String = text
        .chars()
        .map(|c| match c {
            ',' | ':' | '[' | ']' | '{' | '}' | '\t' => ' ',
            c => c,
        })
        .collect();
    let tokens: Vec<&str> = cleaned.split_whitespace().collect();
    let mut out = Vec::new();
    if tokens.len() == 1 {
        // One run of digits, with or without 0x: a packed byte string.
        let t = strip_0x(tokens[0]);
        return decode_packed(t);
    }
    for tok in tokens {
        let t = strip_0x(tok);
        if t.is_empty() || t.len() > 2 {
            // Several packed runs separated by spaces are accepted too.
            out.extend(decode_packed(t).map_err(|_| HexError::BadByte(tok.to_string()))?);
            continue;
        }
        out.push(parse_byte(t)?);
    }
    Ok(out)
}

fn strip_0x(t: &str) -> &str {
    t.strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t)
}

fn decode_packed(t: &str) -> Result<Vec<u8>, HexError> {
    if let Some(c) = t.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(HexError::BadDigit(c));
    }
    if t.len() % 2 != 0 {
        return Err(HexError::OddLength);
    }
    (0..t.len())
        .step_by(2)
        .map(|i| parse_byte(&t[i..i + 2]))
        .collect()
}

fn parse_byte(t: &str) -> Result<u8, HexError> {
    if let Some(c) = t.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(HexError::BadDigit(c));
    }
    u8::from_str_radix(t, 16).map_err(|_| HexError::BadByte(t.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        let want = vec![0x01, 0x0a, 0x00, 0x13];
        for s in [
            "010a0013",
            "01 0a 00 13",
            "0x01, 0x0a, 0x00, 0x13",
            "0x010a0013",
            "[0x01,0x0A,0x00,0x13]",
            "1 a 0 13",
            "010a 0013",
        ] {
            assert_eq!(decode(s).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(decode("0g"), Err(HexError::BadDigit('g')));
        assert_eq!(decode("010"), Err(HexError::OddLength));
        assert!(decode("01 zz").is_err());
    }

    #[test]
    fn encodings() {
        assert_eq!(encode(&[1, 0xab]), "01ab");
        assert_eq!(encode_spaced(&[1, 0xab]), "01 ab");
    }
}
