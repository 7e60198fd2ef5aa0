//! Looking for PINs in the daemon's log, in one pass however long the log is.

use std::collections::BTreeMap;

/// The numbers a log contains, to look PINs up in one pass however long the log is: every
/// maximal run of digits, and every digit string spelled as ASCII hex (`3132…`, plain or
/// spaced, either case), with the line it is on.
pub struct LogIndex {
    digits: BTreeMap<String, usize>,
    hex: Vec<(String, usize)>,
    lines: Vec<String>,
}

impl LogIndex {
    pub fn new(log: &str) -> Self {
        let mut digits = BTreeMap::new();
        let mut hex = Vec::new();
        let mut lines = Vec::new();
        for (n, line) in log.lines().enumerate() {
            for run in line.split(|c: char| !c.is_ascii_digit()) {
                if run.len() >= 4 {
                    digits.entry(run.to_string()).or_insert(n);
                }
            }
            let squeezed: Vec<u8> = line
                .bytes()
                .filter(|b| *b != b' ')
                .map(|b| b.to_ascii_lowercase())
                .collect();
            let mut i = 0;
            while i + 1 < squeezed.len() {
                let mut j = i;
                let mut decoded = String::new();
                while j + 1 < squeezed.len()
                    && squeezed[j] == b'3'
                    && squeezed[j + 1].is_ascii_digit()
                {
                    decoded.push(char::from(squeezed[j + 1]));
                    j += 2;
                }
                if decoded.len() >= 4 {
                    hex.push((decoded, n));
                    i = j;
                } else {
                    i += 1;
                }
            }
            lines.push(line.to_string());
        }
        LogIndex { digits, hex, lines }
    }

    /// The first line that shows `pin`, if any.
    pub fn find(&self, pin: &str) -> Option<&str> {
        let n = self.digits.get(pin).copied().or_else(|| {
            self.hex
                .iter()
                .find(|(d, _)| d.contains(pin))
                .map(|(_, n)| *n)
        })?;
        Some(&self.lines[n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_found_in_logs_as_text_or_hex_but_not_inside_longer_numbers() {
        let pin = "4821937";
        let found = |log: &str| LogIndex::new(log).find(pin).map(str::to_string);
        assert_eq!(
            found("a\ncode=4821937 set\nb").as_deref(),
            Some("code=4821937 set")
        );
        assert!(found("frame 63 01 05 01 34 38 32 31 39 33 37").is_some());
        assert!(found("payload 6301050134383231393337ff").is_some());
        assert!(found("PAYLOAD 34383231393337").is_some());
        assert!(found("at 20:58:36.148219370Z").is_none());
        assert!(found("nothing here 1234 0x3132").is_none());
    }
}
