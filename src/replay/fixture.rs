//! Replay fixtures: captured serial sessions as text.
//!
//! One item per line, in wire order:
//!
//! ```text
//! # a comment
//! > 01 03 00 07 fb        host → stick
//! < 06                    stick → host
//! @+120ms                 the next line happens 120 ms after the previous one
//! > 01 0a 00 13 02 03 63 02 01 25 ?? ??   `??` matches any byte (host lines only)
//! ```
//!
//! Bytes may be written in any spelling [`crate::util::hex::decode`] accepts; a `#` after the
//! bytes starts a trailing comment.

use std::time::Duration;

use crate::util::hex;

/// Who put the bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `>`: the host (zwlock) wrote these bytes to the stick.
    HostToStick,
    /// `<`: the stick wrote these bytes to the host.
    StickToHost,
}

/// One expected byte: exact, or `??` for any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternByte {
    Exact(u8),
    Any,
}

/// One line of a fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bytes in one direction. Stick lines never contain wildcards.
    Bytes {
        line: usize,
        direction: Direction,
        bytes: Vec<PatternByte>,
    },
    /// `@+Nms`: time between the previous step and the next one.
    Delay { line: usize, after: Duration },
}

/// A parsed fixture.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fixture {
    pub steps: Vec<Step>,
}

/// A fixture line that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fixture line {line}: {reason}")]
pub struct FixtureError {
    pub line: usize,
    pub reason: String,
}

impl Fixture {
    /// Parse fixture text.
    pub fn parse(text: &str) -> Result<Fixture, FixtureError> {
        let mut steps = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let err = |reason: String| FixtureError { line, reason };
            if let Some(rest) = content.strip_prefix('@') {
                let after = parse_delay(rest.trim()).map_err(err)?;
                steps.push(Step::Delay { line, after });
                continue;
            }
            let (direction, rest) = if let Some(r) = content.strip_prefix('>') {
                (Direction::HostToStick, r)
            } else if let Some(r) = content.strip_prefix('<') {
                (Direction::StickToHost, r)
            } else {
                return Err(err(format!(
                    "expected '>', '<', '@+Nms' or '#', found '{content}'"
                )));
            };
            let bytes = parse_pattern(rest).map_err(err)?;
            if bytes.is_empty() {
                return Err(err("no bytes".into()));
            }
            if direction == Direction::StickToHost && bytes.contains(&PatternByte::Any) {
                return Err(err("'??' is only allowed in host lines".into()));
            }
            steps.push(Step::Bytes {
                line,
                direction,
                bytes,
            });
        }
        Ok(Fixture { steps })
    }

    /// Read and parse a fixture file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Fixture, FixtureError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| FixtureError {
            line: 0,
            reason: format!("{}: {e}", path.display()),
        })?;
        Fixture::parse(&text)
    }
}

fn parse_delay(s: &str) -> Result<Duration, String> {
    let body = s
        .strip_prefix('+')
        .ok_or_else(|| format!("expected '@+Nms', found '@{s}'"))?;
    let (num, unit) = body
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| body.split_at(i))
        .unwrap_or((body, "ms"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{body}' is not a duration like 120ms"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        other => Err(format!("unknown time unit '{other}' (use ms or s)")),
    }
}

fn parse_pattern(s: &str) -> Result<Vec<PatternByte>, String> {
    let mut out = Vec::new();
    for tok in s.split(|c: char| c.is_whitespace() || c == ',') {
        if tok.is_empty() {
            continue;
        }
        if tok == "??" {
            out.push(PatternByte::Any);
            continue;
        }
        let bytes = hex::decode(tok).map_err(|e| format!("'{tok}': {e}"))?;
        out.extend(bytes.into_iter().map(PatternByte::Exact));
    }
    Ok(out)
}

/// Whether `actual` matches `pattern` byte for byte.
pub fn matches(pattern: &[PatternByte], actual: &[u8]) -> bool {
    pattern.len() == actual.len()
        && pattern.iter().zip(actual).all(|(p, a)| match p {
            PatternByte::Exact(b) => b == a,
            PatternByte::Any => true,
        })
}

/// The pattern as text, `??` for wildcards.
pub fn pattern_to_string(pattern: &[PatternByte]) -> String {
    pattern
        .iter()
        .map(|p| match p {
            PatternByte::Exact(b) => format!("{b:02x}"),
            PatternByte::Any => "??".into(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Exact bytes of a pattern (wildcards become 0).
pub fn pattern_bytes(pattern: &[PatternByte]) -> Vec<u8> {
    pattern
        .iter()
        .map(|p| match p {
            PatternByte::Exact(b) => *b,
            PatternByte::Any => 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_line() {
        let f = Fixture::parse(
            "# startup\n> 15\n> 01 03 00 08 f4  # soft reset\n< 06\n@+500ms\n< 0x01,0x04\n\n> 01 ?? 06\n@+2s\n",
        )
        .unwrap();
        use PatternByte::*;
        assert_eq!(
            f.steps,
            vec![
                Step::Bytes {
                    line: 2,
                    direction: Direction::HostToStick,
                    bytes: vec![Exact(0x15)]
                },
                Step::Bytes {
                    line: 3,
                    direction: Direction::HostToStick,
                    bytes: vec![Exact(1), Exact(3), Exact(0), Exact(8), Exact(0xf4)]
                },
                Step::Bytes {
                    line: 4,
                    direction: Direction::StickToHost,
                    bytes: vec![Exact(6)]
                },
                Step::Delay {
                    line: 5,
                    after: Duration::from_millis(500)
                },
                Step::Bytes {
                    line: 6,
                    direction: Direction::StickToHost,
                    bytes: vec![Exact(1), Exact(4)]
                },
                Step::Bytes {
                    line: 8,
                    direction: Direction::HostToStick,
                    bytes: vec![Exact(1), Any, Exact(6)]
                },
                Step::Delay {
                    line: 9,
                    after: Duration::from_secs(2)
                },
            ]
        );
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        for (text, line) in [
            ("> 06\nhello", 2),
            ("< ??", 1),
            ("> zz", 1),
            ("@5ms", 1),
            ("@+5h", 1),
            (">", 1),
        ] {
            assert_eq!(Fixture::parse(text).unwrap_err().line, line, "{text}");
        }
    }

    #[test]
    fn wildcard_matching() {
        let p = parse_pattern("01 ?? 03").unwrap();
        assert!(matches(&p, &[1, 9, 3]));
        assert!(!matches(&p, &[1, 9, 4]));
        assert!(!matches(&p, &[1, 9]));
        assert_eq!(pattern_to_string(&p), "01 ?? 03");
    }
}
