//! Logging with tracing: readable on a terminal, plain lines for the journal, and a level that
//! a configuration reload can change.
//!
//! Under systemd (JOURNAL_STREAM names our stderr) every line starts with its syslog priority
//! (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug and trace), which journald reads and
//! strips, and carries no timestamp (the journal adds its own). Colour codes are written only
//! to a terminal. Levels take the usual aliases (`warning`, `err`, `notice`, …): a filter is
//! normalised by [`parse_filter`] before tracing sees it, so that a word tracing would read as
//! a target name (and so silence every log) is refused instead.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// A log level or filter the logger cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("empty (expected error, warn, info, debug, trace or off, or TARGET=LEVEL)")]
    Empty,
    #[error("'{0}' is not a level (expected error, warn, info, debug, trace or off; aliases: err, warning, notice, crit…), nor TARGET=LEVEL")]
    NotALevel(String),
    #[error("'{directive}': {reason}")]
    Directive { directive: String, reason: String },
}

/// A level name as tracing spells it, accepting syslog's and common aliases.
fn level_name(word: &str) -> Option<&'static str> {
    Some(match word.trim().to_ascii_lowercase().as_str() {
        "off" | "none" => "off",
        "emerg" | "emergency" | "alert" | "crit" | "critical" | "err" | "error" | "fatal" => {
            "error"
        }
        "warning" | "warn" => "warn",
        "notice" | "info" => "info",
        "debug" => "debug",
        "trace" => "trace",
        _ => return None,
    })
}

/// Normalise a log level or tracing filter: each comma-separated directive is a level (with
/// aliases) or `TARGET=LEVEL`; the result is what tracing's EnvFilter is given.
pub fn parse_filter(spec: &str) -> Result<String, FilterError> {
    let mut out = Vec::new();
    for d in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let normalised = match d.rsplit_once('=') {
            None => level_name(d)
                .ok_or_else(|| FilterError::NotALevel(d.to_string()))?
                .to_string(),
            Some((target, level)) => {
                let level = level_name(level).ok_or_else(|| FilterError::Directive {
                    directive: d.to_string(),
                    reason: format!("'{}' is not a level", level.trim()),
                })?;
                format!("{}={level}", target.trim())
            }
        };
        EnvFilter::try_new(&normalised).map_err(|e| FilterError::Directive {
            directive: d.to_string(),
            reason: e.to_string(),
        })?;
        out.push(normalised);
    }
    if out.is_empty() {
        return Err(FilterError::Empty);
    }
    Ok(out.join(","))
}

/// The syslog priority journald reads from a `<N>` line prefix.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Whether JOURNAL_STREAM (`DEVICE:INODE`, set by systemd) names the stream on fd 2: only then
/// do lines go to the journal (a redirected stderr gets plain lines).
pub fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = journal_stream.and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Prefixes each line of an inner formatter with the event's syslog priority.
struct Prioritised<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritised<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let p = priority(event.metadata().level());
        // Formatted into a buffer first: a line break inside a message would otherwise start
        // a journal entry without a priority.
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.strip_suffix('\n').unwrap_or(&line);
        writeln!(writer, "<{p}>{}", body.replace('\n', &format!("\n<{p}>")))
    }
}

/// Changes the log filter of the running process.
#[derive(Clone)]
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    /// ZWLOCK_LOG was set: it wins over the configuration, at start and on reload.
    from_env: bool,
}

impl LogLevel {
    /// Apply the configuration's level. Returns what is in force.
    pub fn set(&self, level: &str) -> Result<String, String> {
        if self.from_env {
            return Ok("ZWLOCK_LOG (the environment overrides log.level)".into());
        }
        let normalised = parse_filter(level).map_err(|e| e.to_string())?;
        let filter = EnvFilter::try_new(&normalised).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())?;
        Ok(normalised)
    }
}

/// Install the process's logger: `ZWLOCK_LOG` if set (and valid), else `level`.
pub fn init(level: &str) -> LogLevel {
    let env = std::env::var("ZWLOCK_LOG").ok();
    let env_filter = env.as_deref().map(parse_filter);
    let from_env = matches!(env_filter, Some(Ok(_)));
    let spec = match &env_filter {
        Some(Ok(f)) => f.clone(),
        _ => parse_filter(level).unwrap_or_else(|_| "info".into()),
    };
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let journal = stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref());
    let colour =
        !journal && std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    if journal {
        let format = tracing_subscriber::fmt::format()
            .with_target(false)
            .with_ansi(false)
            .without_time();
        registry.with(fmt.event_format(Prioritised(format))).init();
    } else {
        registry.with(fmt).init();
    }
    if let Some(Err(e)) = env_filter {
        tracing::warn!(error = %e, "ZWLOCK_LOG is not a usable filter: log.level applies");
    }
    LogLevel { handle, from_env }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_take_the_usual_aliases() {
        for (given, want) in [
            ("warning", "warn"),
            ("WARN", "warn"),
            ("err", "error"),
            ("crit", "error"),
            ("notice", "info"),
            ("info", "info"),
            ("trace", "trace"),
            ("off", "off"),
            ("zwlock=warning", "zwlock=warn"),
            ("info, zwlock::driver=debug", "info,zwlock::driver=debug"),
        ] {
            assert_eq!(parse_filter(given).as_deref(), Ok(want), "{given}");
        }
    }

    #[test]
    fn words_tracing_would_take_for_targets_are_refused() {
        // EnvFilter reads a bare word as a target: "warnings" would silence every log.
        assert!(EnvFilter::try_new("warnings").is_ok());
        for bad in [
            "warnings",
            "verbose",
            "zwlock",
            "zwlock=loud",
            "",
            " , ",
            "loud[",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad:?}");
        }
        let e = parse_filter("warnings").unwrap_err().to_string();
        assert!(e.contains("'warnings' is not a level"), "{e}");
    }

    #[test]
    fn priorities_are_syslog_s() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(Some("1:2")));
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata("/proc/self/fd/2").unwrap();
        assert!(stderr_is_journal(Some(&format!("{}:{}", m.dev(), m.ino()))));
    }
}
