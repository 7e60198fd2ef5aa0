//! The zwlock API over an MQTT v5 broker, for fleets of hubs: each hub connects out to the
//! broker (through NAT, no port opened), publishes its state there, and answers requests
//! sent to it there; the broker's authentication and ACLs decide who may talk to which hub.
//!
//! * [`topics`]: the topics of a hub (a table in its header); a hub subscribes only below
//!   `<prefix>/<hub>/`.
//! * [`bridge`]: the bridge's owner tasks: the connection (reconnects with backoff, the
//!   `offline` will, an explicit [`Bridge::shutdown`] that says `offline` too), requests
//!   (run by [`crate::api::call`]: the HTTP API's handlers, validation and errors), and
//!   [`state`]: the retained state, kept equal to what the API shows.
//! * [`idempotency`]: the `idempotency-key` user property. [`ha`]: Home Assistant discovery.
//!   [`redact`]: no PIN in a published message unless `publish_codes`.
//! * [`client`]: the other end, for the CLI (`zwlock --broker … --hub …`), tests and the
//!   fleet benchmark.
//!
//! Faults: with the broker away the hub works as before (socket API, engine); nothing waits
//! on the broker, the outbound queue is capped (`queue_capacity`) and what is dropped from it
//! is healed by the republish after the next connect. Credentials come from files no one
//! else may read and are never logged.

pub mod bridge;
pub mod client;
pub mod config;
pub mod ha;
pub mod idempotency;
pub mod redact;
pub mod state;
pub mod topics;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};
use zeroize::Zeroizing;

pub use bridge::Bridge;
pub use config::{BrokerUrl, MqttConfig};
pub use topics::Topics;

/// Largest packet this side accepts from the broker (a request body is capped lower, at
/// [`crate::api::MAX_BODY`], and a larger one gets a 413; the broker drops ones beyond this).
pub const MAX_INCOMING_PACKET: u32 = 256 * 1024;

/// Messages sent and not yet acknowledged, at most (per connection).
pub const MAX_INFLIGHT: u16 = 32;

/// Why the bridge (or a client) cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("mqtt.{key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error(transparent)]
    Secret(#[from] config::SecretFileError),
    #[error("TLS: {path}: {reason}")]
    Tls { path: String, reason: String },
}

/// Where and how to connect (secrets read): what both the bridge and clients need.
#[derive(Clone)]
pub struct Connection {
    pub broker: BrokerUrl,
    pub username: Option<String>,
    password: Option<Arc<Zeroizing<String>>>,
    tls: Option<Arc<rustls::ClientConfig>>,
    pub keep_alive: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.broker.to_string())
            .field("username", &self.username)
            .field(
                "password",
                &self.password.as_ref().map(|_| "(from its file)"),
            )
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The TLS files of a connection.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles<'a> {
    pub ca_file: Option<&'a Path>,
    pub client_cert: Option<&'a Path>,
    pub client_key: Option<&'a Path>,
}

impl Connection {
    /// Read the password file and the TLS files.
    pub fn new(
        broker: BrokerUrl,
        username: Option<String>,
        password_file: Option<&Path>,
        tls: TlsFiles<'_>,
        keep_alive: Duration,
    ) -> Result<Connection, MqttError> {
        let password = password_file
            .map(config::read_password)
            .transpose()?
            .map(|p| Arc::new(Zeroizing::new(p)));
        let tls = if broker.tls {
            Some(tls_config(&tls)?)
        } else {
            None
        };
        Ok(Connection {
            broker,
            username,
            password,
            tls,
            keep_alive,
        })
    }

    /// rumqttc's options for `client_id`.
    pub fn options(&self, client_id: &str) -> MqttOptions {
        let mut o = MqttOptions::new(client_id, self.broker.host.clone(), self.broker.port);
        o.set_keep_alive(self.keep_alive);
        o.set_max_packet_size(Some(MAX_INCOMING_PACKET));
        o.set_connection_timeout(10);
        // rumqttc keeps a slot per possible in-flight message: without a limit that is 65536
        // of them, 13 MB per connection. The broker's receive maximum bounds it further.
        o.set_outgoing_inflight_upper_limit(MAX_INFLIGHT);
        // Requests and answers are small and latency matters: no Nagle delay.
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        if let Some(user) = &self.username {
            let pw = self.password.as_ref().map(|p| p.as_str()).unwrap_or("");
            o.set_credentials(user.clone(), pw.to_string());
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls.clone())));
        }
        o
    }
}

fn tls_config(files: &TlsFiles<'_>) -> Result<Arc<rustls::ClientConfig>, MqttError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &Path, reason: String| MqttError::Tls {
        path: path.display().to_string(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    match files.ca_file {
        Some(p) => {
            let certs = CertificateDer::pem_file_iter(p)
                .map_err(|e| bad(p, e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(p, e.to_string()))?;
            for c in certs {
                roots.add(c).map_err(|e| bad(p, e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad(p, "no certificate in the file".into()));
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(bad(
                    Path::new("(system certificates)"),
                    "none found: set mqtt.ca_file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(Path::new("rustls"), e.to_string()))?
        .with_root_certificates(roots);
    let config = match (files.client_cert, files.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad(cert, e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(cert, e.to_string()))?;
            let key_pem = Zeroizing::new(config::read_secret(key)?);
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|_| bad(key, "no private key in the file".into()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| bad(cert, e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Everything the bridge runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connection: Connection,
    pub topics: Topics,
    pub client_id: String,
    pub discovery: bool,
    pub publish_codes: bool,
    pub session_expiry: u32,
    pub reconnect: (Duration, Duration),
    pub queue_capacity: usize,
    pub max_concurrent: usize,
    pub resync: Duration,
}

impl Settings {
    /// From `[mqtt]` (checked), reading its files. None when the bridge is off.
    pub fn from_config(c: &MqttConfig) -> Result<Option<Settings>, MqttError> {
        let Some(broker) = c.broker() else {
            return Ok(None);
        };
        c.check().map_err(|(key, reason)| MqttError::Config {
            key: key.trim_start_matches("mqtt."),
            reason,
        })?;
        let broker = broker.map_err(|reason| MqttError::Config { key: "url", reason })?;
        let hub = c.hub_id().map_err(|reason| MqttError::Config {
            key: "hub_id",
            reason,
        })?;
        let connection = Connection::new(
            broker,
            c.username.clone(),
            c.password_file.as_deref(),
            TlsFiles {
                ca_file: c.ca_file.as_deref(),
                client_cert: c.client_cert.as_deref(),
                client_key: c.client_key.as_deref(),
            },
            Duration::from_secs(c.keep_alive_seconds),
        )?;
        Ok(Some(Settings {
            connection,
            topics: Topics::new(&c.topic_prefix, &hub, &c.discovery_prefix),
            client_id: format!("zwlock-{hub}"),
            discovery: c.home_assistant_discovery,
            publish_codes: c.publish_codes,
            session_expiry: c.session_expiry_seconds,
            reconnect: c.reconnect(),
            queue_capacity: c.queue_capacity,
            max_concurrent: c.max_concurrent_requests,
            resync: Duration::from_secs(c.resync_seconds),
        }))
    }
}

/// The next wait before reconnecting: doubling from `initial` up to `max`, and a random
/// part of up to a quarter on top (so a fleet does not come back at the same instant).
pub fn backoff(failures: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let base = initial.saturating_mul(1u32 << failures.min(20)).min(max);
    base + base.mul_f64(jitter.clamp(0.0, 1.0) / 4.0)
}

/// Resolves once `stop` says true (or its sender is gone); holds no borrow of it.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let (i, m) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(0, i, m, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(3, i, m, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(30, i, m, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(30, i, m, 1.0), Duration::from_secs(75));
    }

    #[test]
    fn connections_never_show_their_password() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret-pass\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Connection::new(
            "mqtt://127.0.0.1".parse().unwrap(),
            Some("hub".into()),
            Some(&p),
            TlsFiles::default(),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        let o = c.options("zwlock-h1");
        let login = o.credentials().unwrap();
        assert_eq!(login.password, "s3cret-pass");
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let e = Connection::new(
            "mqtts://127.0.0.1".parse().unwrap(),
            None,
            None,
            TlsFiles {
                ca_file: Some(Path::new("/nonexistent/ca.pem")),
                ..Default::default()
            },
            Duration::from_secs(30),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
