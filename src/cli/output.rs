//! What the client subcommands print, and how they end: tables or JSON on stdout (PINs
//! starred out unless asked for), messages on stderr, documented exit codes. A reader that
//! goes away (`zwlock … | head`) ends the command quietly instead of a panic.

use std::io::Write;

use serde_json::{json, Value};

use super::client::ClientError;

/// Exit codes of every `zwlock` command (also in `zwlock --help`).
pub mod exit {
    /// It worked.
    pub const OK: u8 = 0;
    /// It did not: the daemon refused, a lock failed, a wait ran out, a file was bad.
    pub const FAILED: u8 = 1;
    /// The command line was wrong (unknown option, missing argument, bad value).
    pub const USAGE: u8 = 2;
    /// The daemon could not be reached (not running, wrong --socket, no permission).
    pub const UNREACHABLE: u8 = 3;
}

/// The exit codes, for help texts.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 ok; 1 failed (refused by the daemon, the lock did not answer, a wait ran out, a bad file); 2 usage error; 3 the daemon is not reachable (not running, wrong --socket, no permission).";

/// What went wrong, and the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Api(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Failed(String),
    /// Whoever read our output stopped reading: nothing more to say.
    #[error("output closed")]
    ClosedPipe,
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Client(e) if e.is_unreachable() => exit::UNREACHABLE,
            CliError::ClosedPipe => exit::OK,
            _ => exit::FAILED,
        }
    }

    /// Whether to print the error (a closed pipe is not one to the user).
    pub fn is_quiet(&self) -> bool {
        matches!(self, CliError::ClosedPipe)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::ClosedPipe
        } else {
            CliError::Output(e)
        }
    }
}

/// Write to stdout and flush; a closed pipe becomes [`CliError::ClosedPipe`].
pub fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Print one line.
pub fn line(text: impl std::fmt::Display) -> Result<(), CliError> {
    print(&format!("{text}\n"))
}

/// Every `code` field starred out.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "code" && x.is_string() {
                    *x = json!("****");
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// How one client command prints.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub show_codes: bool,
}

impl Out {
    pub fn pin(&self, v: &Value) -> String {
        match v.as_str() {
            Some(p) if self.show_codes => p.to_string(),
            Some(_) => "****".into(),
            None => "-".into(),
        }
    }

    /// `value` as pretty JSON, codes starred out unless --show-codes.
    pub fn json(&self, mut value: Value) -> Result<(), CliError> {
        if !self.show_codes {
            redact(&mut value);
        }
        line(serde_json::to_string_pretty(&value).unwrap_or_default())
    }

    /// `value` as one line of JSON (for streams), codes starred out unless --show-codes.
    pub fn json_line(&self, mut value: Value) -> Result<(), CliError> {
        if !self.show_codes {
            redact(&mut value);
        }
        line(value)
    }

    /// JSON when --json, else `text`.
    pub fn either(&self, value: Value, text: impl std::fmt::Display) -> Result<(), CliError> {
        if self.json {
            self.json(value)
        } else {
            line(text)
        }
    }
}

/// Columns padded to their widest cell.
pub fn table(rows: &[Vec<String>], header: &[&str]) -> Result<(), CliError> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let render = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut text = render(&header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    text.push('\n');
    for r in rows {
        text.push_str(&render(r));
        text.push('\n');
    }
    print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let unreachable = CliError::Client(ClientError::Connect {
            path: "/run/zwlock/api.sock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(unreachable.exit_code(), exit::UNREACHABLE);
        assert_eq!(CliError::Api("no".into()).exit_code(), exit::FAILED);
        assert_eq!(CliError::Failed("no".into()).exit_code(), exit::FAILED);
        let closed = CliError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(closed.is_quiet());
        assert_eq!(closed.exit_code(), exit::OK);
        assert!(EXIT_CODES_HELP.contains("3 the daemon is not reachable"));
    }

    #[test]
    fn codes_are_starred_out_at_any_depth() {
        let mut v = json!({ "code": "1234", "list": [{ "code": "5678", "name": "x" }], "n": 1 });
        redact(&mut v);
        assert_eq!(
            v,
            json!({ "code": "****", "list": [{ "code": "****", "name": "x" }], "n": 1 })
        );
    }
}
