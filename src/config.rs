//! The daemon's configuration file (TOML). Unknown keys and bad values are refused with the
//! file, the line and what was expected; nothing starts on a bad file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::serial::PortUrl;
use crate::sim::SimConfig;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub serial: SerialConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub codes: CodesConfig,
    /// Simulated networks, for `sim://NAME` ports.
    #[serde(default)]
    pub sim: SimSection,
    /// `[[lock]]`: names for the locks, by node id.
    #[serde(default, rename = "lock")]
    pub locks: Vec<LockEntry>,
    /// `[mqtt]`: the API over an MQTT broker (off unless `url` is set; see crate::mqtt).
    #[serde(default)]
    pub mqtt: crate::mqtt::MqttConfig,
}

/// `[[lock]]`: what the configuration says of one lock.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    pub node_id: u16,
    /// The name the lock gets when zwlock first sees it (`devices/update` renames it later).
    pub name: String,
}

/// `[serial]`: the stick and how patient to be with it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// `/dev/serial/by-id/…`, `/dev/ttyACM0`, `tcp://host:port` or `sim://NAME`. None until
    /// the user sets one (`zwlock setup` helps): the daemon then waits instead of taking
    /// whatever stick is plugged in.
    #[serde(default)]
    pub port: Option<String>,
    /// How long a lock gets to answer a Get, in ms (FLiRS locks need seconds).
    #[serde(default = "default_report_timeout")]
    pub report_timeout_ms: u64,
    /// Soft-reset the stick at startup.
    #[serde(default = "yes")]
    pub soft_reset: bool,
    /// First and longest wait between reconnection attempts, in ms.
    #[serde(default = "default_reconnect_initial")]
    pub reconnect_initial_ms: u64,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Jobs waiting per lock before new ones are refused.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
}

/// `[store]`: where declared state lives.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_db")]
    pub path: PathBuf,
    /// The network keys file (mode 0600); beside the database when not given.
    #[serde(default)]
    pub keys: Option<PathBuf>,
}

impl StoreConfig {
    /// Where the network keys live.
    pub fn keys_path(&self) -> PathBuf {
        self.keys
            .clone()
            .unwrap_or_else(|| self.path.with_file_name("network-keys.toml"))
    }
}

/// `[api]`: the control socket.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// File mode of the socket, octal as a string ("0660").
    #[serde(default = "default_socket_mode")]
    pub socket_mode: String,
    /// Optional loopback TCP listener ("127.0.0.1:8127"); off when absent.
    #[serde(default)]
    pub tcp_listen: Option<String>,
    /// File holding the Bearer token the TCP listener requires (mode 0600).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// `[codes]`: how patient the engine is with locks.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CodesConfig {
    /// Slots zwlock never uses, on every lock (e.g. [1] for the owner's master code).
    #[serde(default)]
    pub reserved_slots: Vec<u16>,
    /// A code not yet on (or off) its lock after this long gets a delay warning.
    #[serde(default = "default_delay_warning")]
    pub delay_warning_after_seconds: u64,
    /// ... and a failure error after this long, or after `failure_attempts` failed tries.
    #[serde(default = "default_failure_after")]
    pub failure_after_seconds: u64,
    #[serde(default = "default_failure_attempts")]
    pub failure_attempts: u32,
    /// Wait between tries of one code: first and longest (doubling in between).
    #[serde(default = "default_retry_initial")]
    pub retry_initial_seconds: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_seconds: u64,
    /// Slot reads an hour, per lock, to verify managed codes on locks without a checksum.
    #[serde(default = "default_poll_reads")]
    pub poll_reads_per_hour: u32,
    /// Time between checksum polls on User Code v2 locks that have one.
    #[serde(default = "default_checksum_interval")]
    pub checksum_interval_seconds: u64,
    /// Read every slot once when a lock is first seen (to learn keypad codes).
    #[serde(default = "yes")]
    pub full_read_on_first_sight: bool,
    /// Slot reads a lock without a checksum may spend verifying its codes after a start.
    #[serde(default = "default_startup_verify_reads")]
    pub startup_verify_reads: u32,
    /// After a lock refused a code, try it again only this much later.
    #[serde(default = "default_refusal_retry")]
    pub refusal_retry_seconds: u64,
    /// How long a code keeps `code_modified_external_to_seam` after it was put back.
    #[serde(default = "default_external_hold")]
    pub external_modification_error_hold_seconds: u64,
    /// Longest one write or read on a lock may take before it counts as failed.
    #[serde(default = "default_operation_timeout")]
    pub operation_timeout_seconds: u64,
}

fn default_startup_verify_reads() -> u32 {
    30
}
fn default_refusal_retry() -> u64 {
    3600
}
fn default_external_hold() -> u64 {
    86400
}
fn default_operation_timeout() -> u64 {
    120
}

fn default_poll_reads() -> u32 {
    12
}
fn default_checksum_interval() -> u64 {
    900
}

fn default_delay_warning() -> u64 {
    300
}
fn default_failure_after() -> u64 {
    1800
}
fn default_failure_attempts() -> u32 {
    5
}
fn default_retry_initial() -> u64 {
    10
}
fn default_retry_max() -> u64 {
    600
}

impl Default for CodesConfig {
    fn default() -> Self {
        CodesConfig {
            reserved_slots: Vec::new(),
            delay_warning_after_seconds: default_delay_warning(),
            failure_after_seconds: default_failure_after(),
            failure_attempts: default_failure_attempts(),
            retry_initial_seconds: default_retry_initial(),
            retry_max_seconds: default_retry_max(),
            poll_reads_per_hour: default_poll_reads(),
            checksum_interval_seconds: default_checksum_interval(),
            full_read_on_first_sight: true,
            startup_verify_reads: default_startup_verify_reads(),
            refusal_retry_seconds: default_refusal_retry(),
            external_modification_error_hold_seconds: default_external_hold(),
            operation_timeout_seconds: default_operation_timeout(),
        }
    }
}

impl CodesConfig {
    pub fn engine_config(&self) -> crate::codes::EngineConfig {
        self.engine_config_named(Default::default())
    }

    /// The engine's configuration, with names for the locks (see [`Config::lock_names`]).
    pub fn engine_config_named(
        &self,
        lock_names: std::collections::BTreeMap<u16, String>,
    ) -> crate::codes::EngineConfig {
        use std::time::Duration;
        crate::codes::EngineConfig {
            delay_warning_after: Duration::from_secs(self.delay_warning_after_seconds),
            failure_after: Duration::from_secs(self.failure_after_seconds),
            failure_attempts: self.failure_attempts,
            retry_initial: Duration::from_secs(self.retry_initial_seconds),
            retry_max: Duration::from_secs(self.retry_max_seconds),
            reserved_slots: self.reserved_slots.clone(),
            lock_names,
            refusal_retry: Duration::from_secs(self.refusal_retry_seconds),
            external_modification_error_hold: Duration::from_secs(
                self.external_modification_error_hold_seconds,
            ),
            operation_timeout: Duration::from_secs(self.operation_timeout_seconds),
            watch: crate::codes::watch::WatchConfig {
                poll_frames_per_hour: self.poll_reads_per_hour,
                checksum_interval: Duration::from_secs(self.checksum_interval_seconds),
                full_read_on_first_sight: self.full_read_on_first_sight,
                startup_verify_reads: self.startup_verify_reads,
            },
            ..Default::default()
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// error, warn, info, debug or trace (aliases: err, warning, notice, …), or a filter such
    /// as "info,zwlock::driver=debug"; checked by `logging::parse_filter`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

/// `[sim]`: simulated networks and the socket to act on them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimSection {
    /// Unix socket for `zwlock sim control` (none when absent).
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
    #[serde(default)]
    pub network: Vec<crate::sim::NetworkModel>,
}

fn default_report_timeout() -> u64 {
    5000
}
fn default_reconnect_initial() -> u64 {
    1000
}
fn default_reconnect_max() -> u64 {
    60_000
}
fn default_queue_depth() -> usize {
    64
}
fn default_db() -> PathBuf {
    "/var/lib/zwlock/zwlock.db".into()
}
fn default_socket() -> PathBuf {
    "/run/zwlock/api.sock".into()
}
fn default_socket_mode() -> String {
    "0660".into()
}
fn default_log_level() -> String {
    "info".into()
}
fn yes() -> bool {
    true
}

impl Default for SerialConfig {
    fn default() -> Self {
        SerialConfig {
            port: None,
            report_timeout_ms: default_report_timeout(),
            soft_reset: true,
            reconnect_initial_ms: default_reconnect_initial(),
            reconnect_max_ms: default_reconnect_max(),
            queue_depth: default_queue_depth(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_db(),
            keys: None,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            socket: default_socket(),
            socket_mode: default_socket_mode(),
            tcp_listen: None,
            token_file: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}:{column}: {reason}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{path}: {key}: {reason}")]
    Value {
        path: String,
        key: &'static str,
        reason: String,
    },
}

impl Config {
    /// Read and check a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parse and check configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            ConfigError::Syntax {
                path: origin.to_string(),
                line,
                column,
                reason: e.message().to_string(),
            }
        })?;
        config.check(origin)?;
        Ok(config)
    }

    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key, reason: String| ConfigError::Value {
            path: origin.to_string(),
            key,
            reason,
        };
        let port = self
            .port()
            .transpose()
            .map_err(|e| bad("serial.port", e.to_string()))?;
        if let Some(PortUrl::Sim(name)) = &port {
            if !self.sim.network.iter().any(|n| &n.name == name) {
                return Err(bad(
                    "serial.port",
                    format!("sim://{name} needs a [[sim.network]] named \"{name}\""),
                ));
            }
        }
        if self.serial.report_timeout_ms < 100 || self.serial.report_timeout_ms > 60_000 {
            return Err(bad("serial.report_timeout_ms", "expected 100-60000".into()));
        }
        if self.serial.reconnect_initial_ms == 0
            || self.serial.reconnect_initial_ms > self.serial.reconnect_max_ms
        {
            return Err(bad(
                "serial.reconnect_initial_ms",
                "expected 1 or more, and at most reconnect_max_ms".into(),
            ));
        }
        if self.serial.queue_depth == 0 || self.serial.queue_depth > 10_000 {
            return Err(bad("serial.queue_depth", "expected 1-10000".into()));
        }
        if self.codes.startup_verify_reads > 10_000 {
            return Err(bad("codes.startup_verify_reads", "expected 0-10000".into()));
        }
        if !(10..=7 * 86400).contains(&self.codes.refusal_retry_seconds) {
            return Err(bad(
                "codes.refusal_retry_seconds",
                "expected 10-604800".into(),
            ));
        }
        if self.codes.external_modification_error_hold_seconds > 30 * 86400 {
            return Err(bad(
                "codes.external_modification_error_hold_seconds",
                "expected 0-2592000".into(),
            ));
        }
        if !(5..=3600).contains(&self.codes.operation_timeout_seconds) {
            return Err(bad(
                "codes.operation_timeout_seconds",
                "expected 5-3600".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for l in &self.locks {
            if !(1..=4000).contains(&l.node_id) {
                return Err(bad(
                    "lock.node_id",
                    format!("{}: expected 1-4000", l.node_id),
                ));
            }
            if !seen.insert(l.node_id) {
                return Err(bad(
                    "lock.node_id",
                    format!("node {} is named twice", l.node_id),
                ));
            }
            let n = l.name.trim().chars().count();
            if n == 0 || n > crate::codes::validate::MAX_NAME_CHARS {
                return Err(bad(
                    "lock.name",
                    format!(
                        "node {}: 1-{} characters",
                        l.node_id,
                        crate::codes::validate::MAX_NAME_CHARS
                    ),
                ));
            }
        }
        if !(1..=3600).contains(&self.codes.poll_reads_per_hour) {
            return Err(bad("codes.poll_reads_per_hour", "expected 1-3600".into()));
        }
        if !(60..=7 * 86_400).contains(&self.codes.checksum_interval_seconds) {
            return Err(bad(
                "codes.checksum_interval_seconds",
                "expected 60-604800".into(),
            ));
        }
        self.socket_mode().map_err(|e| bad("api.socket_mode", e))?;
        self.mqtt
            .check()
            .map_err(|(key, reason)| bad(key, reason))?;
        crate::logging::parse_filter(&self.log.level)
            .map_err(|e| bad("log.level", e.to_string()))?;
        self.sim_config()
            .validate()
            .map_err(|e| bad("sim.network", e.to_string()))?;
        Ok(())
    }

    /// The stick's port; None when the configuration names none yet.
    pub fn port(&self) -> Option<Result<PortUrl, crate::serial::transport::InvalidPortUrl>> {
        self.serial.port.as_deref().map(str::parse)
    }

    pub fn socket_mode(&self) -> Result<u32, String> {
        let m = u32::from_str_radix(self.api.socket_mode.trim_start_matches("0o"), 8)
            .map_err(|_| format!("'{}' is not an octal file mode", self.api.socket_mode))?;
        if m > 0o777 || m & 0o600 != 0o600 {
            return Err(format!(
                "'{}' must be at most 0777 and let the owner read and write",
                self.api.socket_mode
            ));
        }
        Ok(m)
    }

    /// Names for the locks: `[[lock]]` entries, and for a `sim://` port, the simulated locks'
    /// own names where no entry gives one.
    pub fn lock_names(&self) -> std::collections::BTreeMap<u16, String> {
        let mut names = std::collections::BTreeMap::new();
        if let Some(Ok(PortUrl::Sim(net))) = self.port() {
            if let Some(n) = self.sim.network.iter().find(|n| n.name == net) {
                for l in &n.locks {
                    if !l.name.is_empty() {
                        names.insert(u16::from(l.node_id), l.name.clone());
                    }
                }
            }
        }
        for l in &self.locks {
            names.insert(l.node_id, l.name.clone());
        }
        names
    }

    pub fn sim_config(&self) -> SimConfig {
        SimConfig {
            network: self.sim.network.clone(),
        }
    }

    pub fn report_timeout(&self) -> Duration {
        Duration::from_millis(self.serial.report_timeout_ms)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |p| before.len() - p - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sane() {
        let c = Config::parse("", "empty").unwrap();
        assert_eq!(c.serial.port, None, "no stick is taken by surprise");
        assert!(c.port().is_none());
        assert_eq!(c.socket_mode().unwrap(), 0o660);
        assert_eq!(c.report_timeout(), Duration::from_secs(5));
        let w = c.codes.engine_config().watch;
        assert_eq!(w.poll_frames_per_hour, 12);
        assert_eq!(w.checksum_interval, Duration::from_secs(900));
        assert!(w.full_read_on_first_sight);
    }

    #[test]
    fn unknown_keys_name_file_and_line() {
        let e = Config::parse("[serial]\nport = \"/dev/ttyACM0\"\nbaud = 9600\n", "z.toml")
            .unwrap_err();
        let ConfigError::Syntax { line, reason, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*line, 3);
        assert!(reason.contains("baud"), "{reason}");
        assert!(e.to_string().starts_with("z.toml:3:"), "{e}");
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        for (text, key) in [
            ("[serial]\nport = \"ftp://x\"", "serial.port"),
            ("[serial]\nport = \"sim://nope\"", "serial.port"),
            (
                "[serial]\nreport_timeout_ms = 5",
                "serial.report_timeout_ms",
            ),
            ("[api]\nsocket_mode = \"0999\"", "api.socket_mode"),
            ("[api]\nsocket_mode = \"0040\"", "api.socket_mode"),
            ("[log]\nlevel = \"loud[\"", "log.level"),
            ("[log]\nlevel = \"warnings\"", "log.level"),
            ("[log]\nlevel = \"zwlock=verbose\"", "log.level"),
            (
                "[codes]\npoll_reads_per_hour = 0",
                "codes.poll_reads_per_hour",
            ),
            (
                "[[lock]]\nnode_id = 5\nname = \"a\"\n[[lock]]\nnode_id = 5\nname = \"b\"",
                "lock.node_id",
            ),
            ("[[lock]]\nnode_id = 5\nname = \" \"", "lock.name"),
            (
                "[codes]\noperation_timeout_seconds = 1",
                "codes.operation_timeout_seconds",
            ),
            (
                "[codes]\nrefusal_retry_seconds = 1",
                "codes.refusal_retry_seconds",
            ),
            (
                "[codes]\nchecksum_interval_seconds = 5",
                "codes.checksum_interval_seconds",
            ),
            ("[mqtt]\nurl = \"http://x\"", "mqtt.url"),
            (
                "[mqtt]\nurl = \"mqtt://127.0.0.1\"\nhub_id = \"a b\"",
                "mqtt.hub_id",
            ),
        ] {
            let e = Config::parse(text, "c").unwrap_err();
            assert!(
                matches!(&e, ConfigError::Value { key: k, .. } if *k == key),
                "{text}: {e}"
            );
        }
        let e = Config::parse("[serial]\nreport_timeout_ms = \"soon\"", "c").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { line: 2, .. }), "{e}");
    }
}
