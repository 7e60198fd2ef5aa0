//! The HTTP client of the daemon's Unix socket (the CLI and tests use it): hyper's HTTP/1.1
//! client on a tokio UnixStream, behind a blocking interface (each call runs on a small
//! runtime of its own). Query strings are encoded by serde_urlencoded ([`with_query`]).
//!
//! [`Client::broker`] reaches a hub through an MQTT broker instead ([`crate::mqtt::client`]):
//! the same calls, sent as requests on `<prefix>/<hub>/api/<route>` (a query string becomes
//! the JSON body), and `follow` reads the hub's events topic.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Why a call failed before the daemon could answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {path}: {source} (is zwlock running? is --socket right?)")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the daemon: {0}")]
    Io(#[from] std::io::Error),
    #[error("talking to the daemon: {0}")]
    Http(#[from] hyper::Error),
    #[error("no answer from the daemon within {0:?}")]
    Timeout(Duration),
    #[error("cannot make the request: {0}")]
    Request(String),
    #[error("the daemon sent something unexpected: {0}")]
    Protocol(String),
    #[error(transparent)]
    Broker(#[from] crate::mqtt::client::ClientError),
    #[error("{0}")]
    BrokerSetup(String),
}

impl ClientError {
    /// The daemon is not there to answer (no socket, nobody listening, no permission; no
    /// broker).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Broker(crate::mqtt::client::ClientError::Connect { .. })
        )
    }
}

/// An answer: status code and JSON body (Null when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The API's error message, for a failed call.
    pub fn error_message(&self) -> String {
        let e = &self.body["error"];
        match (e["type"].as_str(), e["message"].as_str()) {
            (Some(t), Some(m)) => format!("{m} ({t})"),
            _ => format!("HTTP {}", self.status),
        }
    }
}

/// `path?query`, the query encoded from `query` (pairs, a map or a struct).
pub fn with_query(path: &str, query: &impl serde::Serialize) -> String {
    match serde_urlencoded::to_string(query) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

/// Client of one socket, or of one hub through a broker.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
    broker: Option<std::sync::Arc<BrokerLink>>,
}

/// Where a hub is reached through a broker.
#[derive(Debug, Clone)]
pub struct Remote {
    pub connection: crate::mqtt::Connection,
    pub topic_prefix: String,
    pub hub: String,
    pub timeout: Duration,
}

/// A broker connection, made at the first call and kept for the next ones.
#[derive(Debug)]
pub struct BrokerLink {
    remote: Remote,
    live: std::sync::Mutex<
        Option<(
            tokio::runtime::Runtime,
            std::sync::Arc<crate::mqtt::client::ApiClient>,
        )>,
    >,
}

impl BrokerLink {
    fn run<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        T: Send,
        F: FnOnce(std::sync::Arc<crate::mqtt::client::ApiClient>) -> Fut + Send,
        Fut: Future<Output = T> + Send,
    {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.is_none() {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            let r = &self.remote;
            let mut api = on_own_thread(|| {
                rt.block_on(crate::mqtt::client::ApiClient::connect(
                    &r.connection,
                    &r.topic_prefix,
                    &r.hub,
                    r.timeout,
                ))
            })??;
            api.timeout = r.timeout;
            *live = Some((rt, std::sync::Arc::new(api)));
        }
        let (rt, api) = live.as_ref().expect("connected");
        let api = api.clone();
        on_own_thread(|| rt.block_on(f(api)))
    }
}

/// Run `f` here, or on a thread of its own when the caller is inside a tokio runtime
/// (which cannot block).
fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, ClientError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .map_err(|_| ClientError::Request("the client thread failed".into()))
        })
    } else {
        Ok(f())
    }
}

/// A request path as a broker request: the route and the JSON body (the query string's
/// parameters added to it).
fn broker_request(path: &str, body: Option<&[u8]>) -> Result<(String, Bytes), ClientError> {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let mut obj = match body.filter(|b| !b.is_empty()) {
        Some(b) => match serde_json::from_slice::<Value>(b) {
            Ok(Value::Object(o)) => o,
            // Not an object: sent as it is (the hub answers as the socket would).
            _ => return Ok((route.to_string(), Bytes::copy_from_slice(b))),
        },
        None => serde_json::Map::new(),
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ClientError::Request(format!("bad query string: {e}")))?;
    for (k, v) in pairs {
        match obj.get_mut(&k) {
            Some(Value::Array(a)) => a.push(Value::String(v)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v)]);
            }
            None => {
                obj.insert(k, Value::String(v));
            }
        }
    }
    Ok((
        route.to_string(),
        Bytes::from(Value::Object(obj).to_string()),
    ))
}

/// Run `f` to completion on a runtime of its own (on a thread of its own when the caller is
/// already inside a tokio runtime, which cannot block).
fn block_on<F>(f: F) -> Result<F::Output, ClientError>
where
    F: Future + Send,
    F::Output: Send,
{
    let run = move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(f))
            .map_err(ClientError::Io)
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(run)
                .join()
                .unwrap_or_else(|_| Err(ClientError::Request("the client thread failed".into())))
        })
    } else {
        run()
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl Client {
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Client {
            socket: socket.as_ref().to_path_buf(),
            timeout: Duration::from_secs(30),
            broker: None,
        }
    }

    /// A client of a hub through a broker (connected at the first call).
    pub fn broker(remote: Remote) -> Self {
        Client {
            socket: PathBuf::new(),
            timeout: remote.timeout,
            broker: Some(std::sync::Arc::new(BrokerLink {
                remote,
                live: std::sync::Mutex::new(None),
            })),
        }
    }

    /// Connect and hand the connection to a task; the request sender.
    async fn connect(&self) -> Result<Sender, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Connect {
                path: self.socket.clone(),
                source,
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends with the response (or the stream); its error, if any, reaches the caller
            // through the request.
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn request(
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| ClientError::Request(format!("bad method {method:?}")))?;
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "localhost")
            .header(AUTHORIZATION, "Bearer seam_zwlock_local");
        if body.is_some() {
            b = b.header(CONTENT_TYPE, "application/json");
        }
        b.body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .map_err(|e| ClientError::Request(e.to_string()))
    }

    /// One request; `body` is sent as JSON.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ClientError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.call_raw(method, path, bytes.as_deref())
    }

    /// One request with a raw body (tests send broken ones).
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, ClientError> {
        if let Some(link) = &self.broker {
            let (route, payload) = broker_request(path, body)?;
            let route = route.trim_start_matches('/').to_string();
            let reply =
                link.run(move |api| async move { api.request_raw(&route, payload, &[]).await })??;
            let raw = serde_json::to_vec(&reply.body).unwrap_or_default();
            return Ok(Reply {
                status: reply.status,
                body: reply.body,
                raw,
            });
        }
        let req = Client::request(method, path, body)?;
        let timeout = self.timeout;
        block_on(async move {
            let exchange = async {
                let mut sender = self.connect().await?;
                let resp = sender.send_request(req).await?;
                let status = resp.status().as_u16();
                let raw = resp.into_body().collect().await?.to_bytes().to_vec();
                Ok::<_, ClientError>((status, raw))
            };
            let (status, raw) = tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| ClientError::Timeout(timeout))??;
            let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
            Ok(Reply { status, body, raw })
        })?
    }

    /// Follow a server-sent event stream, calling `on_event(type, data)` for each event until
    /// it returns false or the stream ends.
    pub fn follow(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> bool + Send,
    ) -> Result<(), ClientError> {
        if let Some(link) = &self.broker {
            // The hub's events topic carries what /events/stream does.
            return link.run(move |api| async move {
                let mut rx = api.events().await?;
                loop {
                    match rx.recv().await {
                        Ok(e) => {
                            let t = e["event_type"].as_str().unwrap_or("").to_string();
                            if !on_event(&t, &e.to_string()) {
                                return Ok(());
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return Ok(()),
                    }
                }
            })?;
        }
        let req = Client::request("GET", path, None)?;
        let timeout = self.timeout;
        block_on(async move {
            let mut sender = self.connect().await?;
            let resp = tokio::time::timeout(timeout, sender.send_request(req))
                .await
                .map_err(|_| ClientError::Timeout(timeout))??;
            if resp.status() != 200 {
                return Err(ClientError::Protocol(format!(
                    "HTTP {} from the event stream",
                    resp.status()
                )));
            }
            let mut body = resp.into_body();
            let mut sse = SseParser::default();
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                for (event, data) in sse.push(&data) {
                    if !on_event(&event, &data) {
                        return Ok(());
                    }
                }
            }
            Ok(())
        })?
    }
}

/// Server-sent events from a byte stream: `event:` and `data:` lines, an empty line ends one.
#[derive(Debug, Default)]
struct SseParser {
    pending: Vec<u8>,
    event: String,
    data: String,
}

/// The longest line kept while waiting for its end (a stream is never buffered unbounded).
const MAX_LINE: usize = 1 << 20;

impl SseParser {
    /// Feed bytes; the events they complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push((
                        std::mem::take(&mut self.event),
                        std::mem::take(&mut self.data),
                    ));
                }
                self.event.clear();
                self.data.clear();
            } else if let Some(v) = line.strip_prefix("event:") {
                self.event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(v.trim_start());
            }
        }
        if self.pending.len() > MAX_LINE {
            self.pending.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            with_query("/x", &[("device_id", "a b&c=d/é")]),
            "/x?device_id=a+b%26c%3Dd%2F%C3%A9"
        );
        assert_eq!(with_query("/x", &[("a", "1"), ("b", "2")]), "/x?a=1&b=2");
        let none: [(&str, &str); 0] = [];
        assert_eq!(with_query("/x", &none), "/x");
    }

    #[test]
    fn events_are_cut_from_any_chunking() {
        let stream = b"event: a\ndata: {\"x\":1}\n\n: keep-alive\n\nevent: b\r\ndata: 2\r\n\r\n";
        for split in 1..stream.len() {
            let mut p = SseParser::default();
            let mut got = p.push(&stream[..split]);
            got.extend(p.push(&stream[split..]));
            assert_eq!(
                got,
                vec![
                    ("a".to_string(), "{\"x\":1}".to_string()),
                    ("b".to_string(), "2".to_string())
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn socket_paths_become_broker_requests() {
        let (route, body) =
            broker_request("/access_codes/get?access_code_id=a%20b&x=1&x=2", None).unwrap();
        assert_eq!(route, "/access_codes/get");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "access_code_id": "a b", "x": ["1", "2"] })
        );
        let (_, body) = broker_request("/x?b=2", Some(br#"{"a":1}"#)).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({ "a": 1, "b": "2" }));
        let (_, body) = broker_request("/x", Some(b"{broken")).unwrap();
        assert_eq!(&body[..], b"{broken");
    }

    #[test]
    fn an_absent_daemon_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let e = Client::new(dir.path().join("none.sock"))
            .call("GET", "/health", None)
            .unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        assert!(e.to_string().contains("is zwlock running"), "{e}");
    }
}
