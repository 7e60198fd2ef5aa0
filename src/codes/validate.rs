//! Checking what users declare, and generating PINs.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The longest access code name accepted.
pub const MAX_NAME_CHARS: usize = 100;

/// One thing wrong with a request, tied to the parameter it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// What a lock accepts as a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRules {
    pub min_length: u8,
    pub max_length: u8,
    /// Allowed characters (digits for every known lock).
    pub characters: String,
    /// Lengths the lock refused (inside min..=max, but not taken).
    pub refused_lengths: Vec<u8>,
}

impl Default for CodeRules {
    fn default() -> Self {
        CodeRules {
            min_length: 4,
            max_length: 10,
            characters: "0123456789".into(),
            refused_lengths: Vec::new(),
        }
    }
}

impl CodeRules {
    /// Rules from a lock's interview, clamped to what User Code CC allows (4-10).
    pub fn for_lock(min: u8, max: u8, characters: &str) -> Self {
        let min = min.clamp(4, 10);
        let max = max.clamp(min, 10);
        let digits: String = characters.chars().filter(char::is_ascii_digit).collect();
        CodeRules {
            min_length: min,
            max_length: max,
            characters: if digits.is_empty() {
                "0123456789".into()
            } else {
                digits
            },
            refused_lengths: Vec::new(),
        }
    }

    /// The same rules, without lengths the lock has refused.
    pub fn refusing(mut self, lengths: &[u8]) -> Self {
        self.refused_lengths = lengths.to_vec();
        self
    }

    /// The lengths the lock takes, shortest first.
    pub fn supported_lengths(&self) -> Vec<u8> {
        (self.min_length..=self.max_length)
            .filter(|l| !self.refused_lengths.contains(l))
            .collect()
    }

    /// The length to generate for a `preferred` one: it, when the lock takes it, else the
    /// shortest the lock takes (Seam's rule).
    pub fn length_for(&self, preferred: Option<u8>) -> Option<u8> {
        let supported = self.supported_lengths();
        match preferred {
            Some(p) if supported.contains(&p) => Some(p),
            _ => supported.first().copied(),
        }
    }

    /// The length nearest to `preferred` the lock takes.
    pub fn length_near(&self, preferred: u8) -> Option<u8> {
        let ok = |l: &u8| !self.refused_lengths.contains(l);
        let mut lengths: Vec<u8> = (self.min_length..=self.max_length).filter(ok).collect();
        lengths.sort_by_key(|l| (l.abs_diff(preferred), *l));
        lengths.first().copied()
    }

    /// Check a PIN. Messages never repeat the PIN.
    pub fn check(&self, pin: &str) -> Result<(), FieldError> {
        if pin.is_empty() || !pin.chars().all(|c| c.is_ascii_digit()) {
            return Err(FieldError::new("code", "must be digits only"));
        }
        if let Some(c) = pin.chars().find(|c| !self.characters.contains(*c)) {
            return Err(FieldError::new(
                "code",
                format!("the lock does not accept the digit {c}"),
            ));
        }
        let len = pin.len();
        if self.refused_lengths.iter().any(|l| usize::from(*l) == len) {
            return Err(FieldError::new(
                "code",
                format!("the lock refuses {len}-digit codes; choose another length"),
            ));
        }
        if len < usize::from(self.min_length) || len > usize::from(self.max_length) {
            return Err(FieldError::new(
                "code",
                format!(
                    "must be {}-{} digits long for this lock (got {len})",
                    self.min_length, self.max_length
                ),
            ));
        }
        Ok(())
    }
}

/// A PIN anyone would guess: one repeated digit, or a run up or down (1234, 9876, 0123).
pub fn is_trivial(pin: &str) -> bool {
    let d: Vec<i32> = pin
        .bytes()
        .map(|b| i32::from(b) - i32::from(b'0'))
        .collect();
    if d.len() < 2 {
        return true;
    }
    let same = d.windows(2).all(|w| w[0] == w[1]);
    let up = d.windows(2).all(|w| w[1] == (w[0] + 1) % 10);
    let down = d.windows(2).all(|w| w[1] == (w[0] + 9) % 10);
    same || up || down
}

/// Generate a random, non-trivial PIN of `len` digits from `characters`, unlike any in `taken`.
pub fn generate_pin(len: u8, characters: &str, taken: &BTreeSet<String>) -> Option<String> {
    let chars: Vec<char> = characters.chars().filter(char::is_ascii_digit).collect();
    if chars.is_empty() || len == 0 {
        return None;
    }
    for _ in 0..1000 {
        let mut pin = String::with_capacity(usize::from(len));
        let mut bytes = Vec::new();
        while pin.len() < usize::from(len) {
            if bytes.is_empty() {
                bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            }
            let b = bytes.pop().expect("refilled");
            // Rejection sampling keeps the digits uniform.
            let n = chars.len() as u8;
            let limit = 255 - (255 % n) - 1;
            if b > limit {
                continue;
            }
            pin.push(chars[usize::from(b % n)]);
        }
        if !is_trivial(&pin) && !taken.contains(&pin) {
            return Some(pin);
        }
    }
    None
}

/// Check a time-bound window: both ends or neither, start before end, end in the future.
pub fn check_window(
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), FieldError> {
    match (starts_at, ends_at) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(FieldError::new(
            "ends_at",
            "starts_at and ends_at must be given together",
        )),
        (None, Some(_)) => Err(FieldError::new(
            "starts_at",
            "starts_at and ends_at must be given together",
        )),
        (Some(s), Some(e)) if s >= e => Err(FieldError::new("ends_at", "must be after starts_at")),
        (Some(_), Some(e)) if e <= now => Err(FieldError::new("ends_at", "must be in the future")),
        _ => Ok(()),
    }
}

/// Check a name: at most [`MAX_NAME_CHARS`] characters, no control characters.
pub fn check_name(name: &str) -> Result<(), FieldError> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The rules a lock's PINs follow: its lengths and characters, less the lengths it refused.
pub(crate) fn rules(device: &crate::store::DeviceRow) -> CodeRules {
    CodeRules::for_lock(
        device.min_code_length,
        device.max_code_length,
        &device.code_characters,
    )
    .refusing(&device.refused_code_lengths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trivial_pins() {
        for p in ["1111", "1234", "4321", "0123", "9876", "890123", "000000"] {
            assert!(is_trivial(p), "{p}");
        }
        for p in ["4821", "1357", "2468", "1212", "13579"] {
            assert!(!is_trivial(p), "{p}");
        }
    }

    #[test]
    fn generated_pins_are_valid_varied_and_avoid_clashes() {
        let rules = CodeRules::default();
        let mut taken = BTreeSet::new();
        for _ in 0..200 {
            let p = generate_pin(4, &rules.characters, &taken).unwrap();
            rules.check(&p).unwrap();
            assert!(!is_trivial(&p));
            assert!(taken.insert(p), "generated a taken PIN");
        }
        // A character set that allows only trivial PINs gives up instead of looping.
        assert_eq!(generate_pin(4, "7", &BTreeSet::new()), None);
    }

    #[test]
    fn a_length_the_lock_refused_is_not_offered_again() {
        let rules = CodeRules::for_lock(4, 8, "0123456789").refusing(&[4, 5]);
        let e = rules.check("1357").unwrap_err();
        assert_eq!(e.field, "code");
        assert!(e.message.contains("4-digit"), "{}", e.message);
        assert!(rules.check("135790").is_ok());
        assert_eq!(rules.length_near(4), Some(6));
        assert_eq!(rules.length_near(8), Some(8));
        assert_eq!(
            CodeRules::for_lock(4, 4, "0123456789")
                .refusing(&[4])
                .length_near(4),
            None
        );
    }

    #[test]
    fn rules_and_messages() {
        let rules = CodeRules::for_lock(4, 8, "0123456789");
        assert!(rules.check("4821").is_ok());
        for bad in ["", "12a4", "123", "123456789", "12 4"] {
            let e = rules.check(bad).unwrap_err();
            assert_eq!(e.field, "code");
            if !bad.is_empty() {
                assert!(
                    !e.message.contains(bad),
                    "message repeats the PIN: {}",
                    e.message
                );
            }
        }
        let narrow = CodeRules::for_lock(6, 6, "13579");
        assert!(narrow.check("135791").is_ok());
        assert!(narrow.check("246802").is_err());
    }

    #[test]
    fn windows() {
        let now = Utc::now();
        let h = chrono::Duration::hours(1);
        assert!(check_window(None, None, now).is_ok());
        assert!(check_window(Some(now), Some(now + h), now).is_ok());
        assert_eq!(
            check_window(Some(now), None, now).unwrap_err().field,
            "ends_at"
        );
        assert_eq!(
            check_window(None, Some(now + h), now).unwrap_err().field,
            "starts_at"
        );
        assert!(check_window(Some(now + h), Some(now), now).is_err());
        assert!(check_window(Some(now - h - h), Some(now - h), now).is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("Guest 12").is_ok());
        assert!(check_name(&"x".repeat(101)).is_err());
        assert!(check_name("bad\nname").is_err());
    }
}
