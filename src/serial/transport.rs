//! Byte transports to the stick, chosen by a port URL.
//!
//! * a tty path (`/dev/ttyACM0`, `/dev/serial/by-id/…`, or `serial:///dev/ttyACM0`): a USB
//!   stick, 115200 baud 8N1, no flow control;
//! * `tcp://host:port`: a stick behind ser2net, or the zwave-js mock server;
//! * `sim://NAME`: an in-process simulated network, supplied by a [`SimConnector`].

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncWrite};

/// Serial line speed of every Z-Wave stick.
pub const BAUD_RATE: u32 = 115_200;

/// Where the stick is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortUrl {
    Tty(PathBuf),
    Tcp { host: String, port: u16 },
    Sim(String),
}

impl fmt::Display for PortUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortUrl::Tty(p) => write!(f, "{}", p.display()),
            PortUrl::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            PortUrl::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            PortUrl::Sim(name) => write!(f, "sim://{name}"),
        }
    }
}

/// A port URL that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port URL '{url}': {reason}")]
pub struct InvalidPortUrl {
    pub url: String,
    pub reason: &'static str,
}

impl FromStr for PortUrl {
    type Err = InvalidPortUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| InvalidPortUrl {
            url: s.to_string(),
            reason,
        };
        let s_trim = s.trim();
        if s_trim.is_empty() {
            return Err(bad("empty"));
        }
        if let Some(rest) = s_trim.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = if let Some(r) = rest.strip_prefix('[') {
                let (h, p) = r
                    .split_once("]:")
                    .ok_or_else(|| bad("expected tcp://[v6addr]:port"))?;
                (h, p)
            } else {
                rest.rsplit_once(':')
                    .ok_or_else(|| bad("expected tcp://host:port"))?
            };
            if host.is_empty() {
                return Err(bad("missing host"));
            }
            let port: u16 = port
                .parse()
                .map_err(|_| bad("port is not a number 1-65535"))?;
            if port == 0 {
                return Err(bad("port is not a number 1-65535"));
            }
            return Ok(PortUrl::Tcp {
                host: host.to_string(),
                port,
            });
        }
        if let Some(name) = s_trim.strip_prefix("sim://") {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(bad("expected sim://NAME (letters, digits, - _ .)"));
            }
            return Ok(PortUrl::Sim(name.to_string()));
        }
        if let Some(path) = s_trim.strip_prefix("serial://") {
            if !path.starts_with('/') {
                return Err(bad("expected serial:///dev/…"));
            }
            return Ok(PortUrl::Tty(PathBuf::from(path)));
        }
        if s_trim.contains("://") {
            return Err(bad(
                "unknown scheme (use a tty path, tcp://host:port or sim://NAME)",
            ));
        }
        Ok(PortUrl::Tty(PathBuf::from(s_trim)))
    }
}

/// A bidirectional byte stream to a stick.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// A boxed [`ByteStream`].
pub type BoxedStream = Box<dyn ByteStream>;

/// Provides in-process simulated sticks for `sim://NAME` URLs.
pub trait SimConnector: Send + Sync {
    /// Connect to the simulated network `name`.
    fn connect(&self, name: &str) -> Result<BoxedStream, TransportError>;
}

/// Why the byte link to the stick could not be opened or was lost.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{url}: no such device (is the stick plugged in?)")]
    DeviceNotFound { url: String },
    #[error("{url}: permission denied (is the user in the dialout group?)")]
    PermissionDenied { url: String },
    #[error("{url}: device busy (another program holds the port)")]
    Busy { url: String },
    #[error("{url}: connection refused")]
    ConnectionRefused { url: String },
    #[error("{url}: cannot resolve host")]
    UnresolvableHost { url: String },
    #[error("sim://{name}: no simulated network of that name{hint}")]
    UnknownSimulation { name: String, hint: String },
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: io::Error,
    },
}

impl TransportError {
    /// Whether trying again later can help (a stick may be plugged back, a server restarted).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, TransportError::UnknownSimulation { .. })
    }

    fn from_io(url: &PortUrl, e: io::Error) -> Self {
        let url = url.to_string();
        match e.kind() {
            io::ErrorKind::NotFound => TransportError::DeviceNotFound { url },
            io::ErrorKind::PermissionDenied => TransportError::PermissionDenied { url },
            io::ErrorKind::ConnectionRefused => TransportError::ConnectionRefused { url },
            io::ErrorKind::ResourceBusy => TransportError::Busy { url },
            _ => TransportError::Io { url, source: e },
        }
    }
}

/// Open the byte stream named by `url`.
pub async fn open(
    url: &PortUrl,
    sim: Option<&dyn SimConnector>,
) -> Result<BoxedStream, TransportError> {
    match url {
        PortUrl::Tty(path) => open_tty(url, path),
        PortUrl::Tcp { host, port } => {
            let mut addrs = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|_| TransportError::UnresolvableHost {
                    url: url.to_string(),
                })?;
            let mut last = None;
            for addr in addrs.by_ref() {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(Box::new(s));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(match last {
                Some(e) => TransportError::from_io(url, e),
                None => TransportError::UnresolvableHost {
                    url: url.to_string(),
                },
            })
        }
        PortUrl::Sim(name) => match sim {
            Some(c) => c.connect(name),
            None => Err(TransportError::UnknownSimulation {
                name: name.clone(),
                hint: " (no simulator is configured)".into(),
            }),
        },
    }
}

fn open_tty(url: &PortUrl, path: &std::path::Path) -> Result<BoxedStream, TransportError> {
    use tokio_serial::{DataBits, FlowControl, Parity, SerialPortBuilderExt, StopBits};
    if !path.exists() {
        return Err(TransportError::DeviceNotFound {
            url: url.to_string(),
        });
    }
    let builder = tokio_serial::new(path.to_string_lossy(), BAUD_RATE)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None);
    match builder.open_native_async() {
        Ok(port) => Ok(Box::new(port)),
        Err(e) => Err(TransportError::from_io(url, io::Error::from(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            "/dev/ttyACM0".parse::<PortUrl>().unwrap(),
            PortUrl::Tty("/dev/ttyACM0".into())
        );
        assert_eq!(
            "serial:///dev/ttyUSB1".parse::<PortUrl>().unwrap(),
            PortUrl::Tty("/dev/ttyUSB1".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:5555".parse::<PortUrl>().unwrap(),
            PortUrl::Tcp {
                host: "127.0.0.1".into(),
                port: 5555
            }
        );
        assert_eq!(
            "tcp://[::1]:5555".parse::<PortUrl>().unwrap(),
            PortUrl::Tcp {
                host: "::1".into(),
                port: 5555
            }
        );
        assert_eq!(
            "sim://demo".parse::<PortUrl>().unwrap(),
            PortUrl::Sim("demo".into())
        );
        for url in [
            "/dev/ttyACM0",
            "tcp://127.0.0.1:5555",
            "tcp://[::1]:1",
            "sim://demo",
        ] {
            assert_eq!(url.parse::<PortUrl>().unwrap().to_string(), url);
        }
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "",
            "tcp://",
            "tcp://host",
            "tcp://host:0",
            "tcp://host:99999",
            "tcp://:5555",
            "sim://",
            "sim://a b",
            "ftp://x",
            "serial://relative",
        ] {
            assert!(url.parse::<PortUrl>().is_err(), "{url}");
        }
    }

    #[tokio::test]
    async fn missing_tty_is_a_typed_error() {
        let url: PortUrl = "/dev/zwlock-no-such-stick".parse().unwrap();
        let err = open(&url, None).await.err().unwrap();
        assert!(
            matches!(err, TransportError::DeviceNotFound { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("/dev/zwlock-no-such-stick"));
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn refused_tcp_is_a_typed_error() {
        // Bind then drop to find a port with nobody listening.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url: PortUrl = format!("tcp://127.0.0.1:{port}").parse().unwrap();
        let err = open(&url, None).await.err().unwrap();
        assert!(
            matches!(err, TransportError::ConnectionRefused { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&port.to_string()));
    }

    #[tokio::test]
    async fn sim_without_simulator_is_a_typed_error() {
        let url: PortUrl = "sim://demo".parse().unwrap();
        let err = open(&url, None).await.err().unwrap();
        assert!(matches!(err, TransportError::UnknownSimulation { .. }));
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn non_tty_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("not-a-tty");
        std::fs::write(&p, b"x").unwrap();
        let url = PortUrl::Tty(p.clone());
        let err = open(&url, None).await.err().unwrap();
        assert!(err.to_string().contains(&p.display().to_string()), "{err}");
    }
}
