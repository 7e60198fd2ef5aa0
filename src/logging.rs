//! Logging with tracing: readable on a terminal, plain lines for the journal (which adds its
//! own timestamps), and a level that a configuration reload can change.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

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
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())?;
        Ok(level.to_string())
    }
}

/// Install the process's logger: `ZWLOCK_LOG` if set, else `level`.
pub fn init(level: &str) -> LogLevel {
    let env = EnvFilter::try_from_env("ZWLOCK_LOG").ok();
    let from_env = env.is_some();
    let filter =
        env.unwrap_or_else(|| EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")));
    let (filter, handle) = reload::Layer::new(filter);
    // Under systemd the journal adds its own timestamps, and colours would show as escapes.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    if journald {
        registry.with(fmt.without_time().with_ansi(false)).init();
    } else {
        registry.with(fmt).init();
    }
    LogLevel { handle, from_env }
}
