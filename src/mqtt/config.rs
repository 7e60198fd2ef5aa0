//! `[mqtt]`: where the broker is, who this hub is, and how patient to be with the broker.
//! Checked when the configuration is read; the secrets it names (the password file, the
//! client key) are read when the bridge starts, and only from files no one else may read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[mqtt]` as the configuration file has it. The bridge is off unless `url` is set.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (1883) or `mqtts://host[:port]` (8883, TLS).
    #[serde(default)]
    pub url: Option<String>,
    /// This hub's name in the topics; default: the host name.
    #[serde(default)]
    pub hub_id: Option<String>,
    /// Topics are `<topic_prefix>/<hub_id>/…`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the broker password (mode 0600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) for mqtts://; the system's when not given.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) and its key (PEM, mode 0600), for brokers that ask for one.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Home Assistant MQTT discovery configs for every lock.
    #[serde(default = "yes")]
    pub home_assistant_discovery: bool,
    /// Home Assistant's discovery prefix.
    #[serde(default = "default_discovery_prefix")]
    pub discovery_prefix: String,
    /// Publish PINs (in retained access codes, events and answers). Off: never.
    #[serde(default)]
    pub publish_codes: bool,
    /// How long the broker keeps this hub's session (and the requests sent to it) while the
    /// hub is away, in seconds (3600 or more).
    #[serde(default = "default_session_expiry")]
    pub session_expiry_seconds: u32,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_seconds: u64,
    /// Wait between attempts to reach the broker: first and longest (doubling, with jitter).
    #[serde(default = "default_reconnect_initial")]
    pub reconnect_initial_ms: u64,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Messages waiting to go to the broker before more are dropped (state messages dropped
    /// are published again at the next reconnect or resync).
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// Requests handled at once; more wait (up to `queue_capacity`), then get a 503.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_requests: usize,
    /// Every this many seconds the retained state is compared with the database and what
    /// differs is published (changes without an event: battery levels, the stick coming back).
    #[serde(default = "default_resync")]
    pub resync_seconds: u64,
}

fn default_prefix() -> String {
    "zwlock".into()
}
fn default_discovery_prefix() -> String {
    "homeassistant".into()
}
fn yes() -> bool {
    true
}
fn default_session_expiry() -> u32 {
    86_400
}
fn default_keep_alive() -> u64 {
    30
}
fn default_reconnect_initial() -> u64 {
    1000
}
fn default_reconnect_max() -> u64 {
    60_000
}
fn default_queue() -> usize {
    256
}
fn default_concurrency() -> usize {
    8
}
fn default_resync() -> u64 {
    300
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: None,
            hub_id: None,
            topic_prefix: default_prefix(),
            username: None,
            password_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            home_assistant_discovery: true,
            discovery_prefix: default_discovery_prefix(),
            publish_codes: false,
            session_expiry_seconds: default_session_expiry(),
            keep_alive_seconds: default_keep_alive(),
            reconnect_initial_ms: default_reconnect_initial(),
            reconnect_max_ms: default_reconnect_max(),
            queue_capacity: default_queue(),
            max_concurrent_requests: default_concurrency(),
            resync_seconds: default_resync(),
        }
    }
}

/// A broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for BrokerUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "'{s}': expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err("the URL must not hold credentials: set username and password_file".into());
        }
        if rest.contains(['/', '?', '#']) {
            return Err(format!("'{s}': no path or query after the host and port"));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("'{s}': unclosed [ in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("'{s}': expected :PORT after ]")),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("'{s}': no host"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("'{s}': the port must be 1-65535"))?,
        };
        Ok(BrokerUrl { tls, host, port })
    }
}

/// Whether `s` is a hub id: 1-64 of `[A-Za-z0-9_-]`.
pub fn valid_hub_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` can start topics: levels of printable characters without wildcards, none
/// empty, none starting with `$` (the broker's own topics).
pub fn valid_prefix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split('/').all(|level| {
            !level.is_empty()
                && !level.starts_with('$')
                && level
                    .chars()
                    .all(|c| !c.is_control() && !c.is_whitespace() && c != '+' && c != '#')
        })
}

/// The host name as a hub id: its first label, when that is a valid id.
pub fn host_name_hub_id() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let first = name.trim().split('.').next()?.to_string();
    valid_hub_id(&first).then_some(first)
}

impl MqttConfig {
    /// Whether the bridge runs.
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// The broker, when one is set.
    pub fn broker(&self) -> Option<Result<BrokerUrl, String>> {
        self.url.as_deref().map(str::parse)
    }

    /// This hub's id: `hub_id`, or the host name.
    pub fn hub_id(&self) -> Result<String, String> {
        match &self.hub_id {
            Some(h) if valid_hub_id(h) => Ok(h.clone()),
            Some(h) => Err(format!("'{h}': expected 1-64 of A-Z a-z 0-9 _ -")),
            None => host_name_hub_id().ok_or_else(|| {
                "the host name is not a valid hub id (A-Z a-z 0-9 _ -): set mqtt.hub_id".into()
            }),
        }
    }

    pub fn reconnect(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.reconnect_initial_ms),
            Duration::from_millis(self.reconnect_max_ms),
        )
    }

    /// The checks of `zwlock config check`: (key, what is wrong). Files are not read here.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.enabled() {
            return Ok(());
        }
        let broker = self
            .broker()
            .expect("enabled")
            .map_err(|e| ("mqtt.url", e))?;
        self.hub_id().map_err(|e| ("mqtt.hub_id", e))?;
        if !valid_prefix(&self.topic_prefix) {
            return Err((
                "mqtt.topic_prefix",
                format!(
                    "'{}': levels of printable characters, no + # or leading $",
                    self.topic_prefix
                ),
            ));
        }
        if !valid_prefix(&self.discovery_prefix) {
            return Err((
                "mqtt.discovery_prefix",
                format!("'{}': not a topic prefix", self.discovery_prefix),
            ));
        }
        if self.password_file.is_some() && self.username.is_none() {
            return Err((
                "mqtt.password_file",
                "a password needs a username (mqtt.username)".into(),
            ));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err((
                "mqtt.client_cert",
                "client_cert and client_key go together".into(),
            ));
        }
        if !broker.tls
            && (self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some())
        {
            return Err((
                "mqtt.url",
                "ca_file, client_cert and client_key need an mqtts:// URL".into(),
            ));
        }
        if self.session_expiry_seconds < 3600 {
            return Err((
                "mqtt.session_expiry_seconds",
                "expected 3600 or more".into(),
            ));
        }
        if !(5..=3600).contains(&self.keep_alive_seconds) {
            return Err(("mqtt.keep_alive_seconds", "expected 5-3600".into()));
        }
        if self.reconnect_initial_ms == 0 || self.reconnect_initial_ms > self.reconnect_max_ms {
            return Err((
                "mqtt.reconnect_initial_ms",
                "expected 1 or more, and at most reconnect_max_ms".into(),
            ));
        }
        if !(16..=100_000).contains(&self.queue_capacity) {
            return Err(("mqtt.queue_capacity", "expected 16-100000".into()));
        }
        if !(1..=256).contains(&self.max_concurrent_requests) {
            return Err(("mqtt.max_concurrent_requests", "expected 1-256".into()));
        }
        if !(10..=86_400).contains(&self.resync_seconds) {
            return Err(("mqtt.resync_seconds", "expected 10-86400".into()));
        }
        Ok(())
    }
}

/// A secret file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SecretFileError {
    pub path: PathBuf,
    pub reason: String,
}

/// Read a file that holds a secret: it must exist and not be readable by group or others.
/// The error never carries the content.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, SecretFileError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |reason: String| SecretFileError {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err(
            "must not be readable by group or others (chmod 600)".into()
        ));
    }
    std::fs::read(path).map_err(|e| err(e.to_string()))
}

/// The password in a password file: its first line.
pub fn read_password(path: &Path) -> Result<String, SecretFileError> {
    let bytes = read_secret(path)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretFileError {
        path: path.to_path_buf(),
        reason: "the password is not UTF-8".into(),
    })?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(SecretFileError {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_their_default_ports() {
        let u: BrokerUrl = "mqtt://127.0.0.1".parse().unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 1883));
        let u: BrokerUrl = "mqtts://broker.example:9000/".parse().unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "broker.example", 9000)
        );
        let u: BrokerUrl = "mqtts://[::1]".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8883));
        assert_eq!(u.to_string(), "mqtts://[::1]:8883");
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:99999",
            "mqtt://u:p@x",
            "mqtt://x/path",
            "mqtt://[::1",
        ] {
            assert!(bad.parse::<BrokerUrl>().is_err(), "{bad}");
        }
        let e = "mqtt://u:secret@x".parse::<BrokerUrl>().unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn ids_and_prefixes() {
        assert!(valid_hub_id("front-office_2"));
        for bad in ["", "a/b", "a+b", "a#", "a b", "é", &"x".repeat(65)] {
            assert!(!valid_hub_id(bad), "{bad}");
        }
        assert!(valid_prefix("zwlock"));
        assert!(valid_prefix("acme/locks"));
        for bad in ["", "/x", "x/", "a//b", "$SYS", "a/+", "#", "a b"] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }

    fn on(extra: &str) -> MqttConfig {
        toml::from_str(&format!(
            "url = \"mqtt://127.0.0.1\"\nhub_id = \"h1\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn checks_name_the_key() {
        assert!(MqttConfig::default().check().is_ok(), "off is fine");
        assert!(on("").check().is_ok());
        for (extra, key) in [
            ("topic_prefix = \"a/#\"", "mqtt.topic_prefix"),
            ("session_expiry_seconds = 60", "mqtt.session_expiry_seconds"),
            ("password_file = \"/p\"", "mqtt.password_file"),
            ("ca_file = \"/ca.pem\"", "mqtt.url"),
            ("queue_capacity = 1", "mqtt.queue_capacity"),
            ("resync_seconds = 1", "mqtt.resync_seconds"),
        ] {
            assert_eq!(on(extra).check().unwrap_err().0, key, "{extra}");
        }
        let mut c = on("");
        c.hub_id = Some("a/b".into());
        assert_eq!(c.check().unwrap_err().0, "mqtt.hub_id");
    }

    #[test]
    fn secrets_only_from_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter22\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_password(&p).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(!e.to_string().contains("hunter22"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password(&p).unwrap(), "hunter22");
        assert!(read_password(&dir.path().join("none")).is_err());
    }
}
