//! A small HTTP/1.1 client for the daemon's Unix socket (the CLI and tests use it).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    #[error("the daemon sent something that is not HTTP: {0}")]
    Protocol(String),
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

/// Client of one socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Client {
            socket: socket.as_ref().to_path_buf(),
            timeout: Duration::from_secs(30),
        }
    }

    fn connect(&self) -> Result<UnixStream, ClientError> {
        let s = UnixStream::connect(&self.socket).map_err(|source| ClientError::Connect {
            path: self.socket.clone(),
            source,
        })?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        Ok(s)
    }

    fn send(
        &self,
        s: &mut UnixStream,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(), ClientError> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer seam_zwlock_local\r\n"
        );
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        if let Some(b) = body {
            s.write_all(b)?;
        }
        s.flush()?;
        Ok(())
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
        let mut s = self.connect()?;
        self.send(&mut s, method, path, body)?;
        let mut r = BufReader::new(s);
        let (status, chunked, length) = read_head(&mut r)?;
        let mut raw = Vec::new();
        if chunked {
            while let Some(chunk) = read_chunk(&mut r)? {
                raw.extend(chunk);
            }
        } else if let Some(n) = length {
            raw.resize(n, 0);
            r.read_exact(&mut raw)?;
        } else {
            r.read_to_end(&mut raw)?;
        }
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Ok(Reply { status, body, raw })
    }

    /// Follow a server-sent event stream, calling `on_event(type, data)` for each event until
    /// it returns false or the stream ends.
    pub fn follow(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> bool,
    ) -> Result<(), ClientError> {
        let mut s = self.connect()?;
        s.set_read_timeout(None)?;
        self.send(&mut s, "GET", path, None)?;
        let mut r = BufReader::new(s);
        let (status, chunked, _) = read_head(&mut r)?;
        if status != 200 {
            return Err(ClientError::Protocol(format!(
                "HTTP {status} from the event stream"
            )));
        }
        let mut pending = String::new();
        let (mut event, mut data) = (String::new(), String::new());
        loop {
            let piece = if chunked {
                match read_chunk(&mut r)? {
                    Some(c) => String::from_utf8_lossy(&c).into_owned(),
                    None => return Ok(()),
                }
            } else {
                let mut line = String::new();
                if r.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                line
            };
            pending.push_str(&piece);
            while let Some(pos) = pending.find('\n') {
                let line: String = pending.drain(..=pos).collect();
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if !data.is_empty() && !on_event(&event, &data) {
                        return Ok(());
                    }
                    event.clear();
                    data.clear();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
        }
    }
}

fn read_head(r: &mut impl BufRead) -> Result<(u16, bool, Option<usize>), ClientError> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Protocol(line.trim().to_string()))?;
    let (mut chunked, mut length) = (false, None);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
            if k == "content-length" {
                length = v.parse().ok();
            }
        }
    }
    Ok((status, chunked, length))
}

fn read_chunk(r: &mut impl BufRead) -> Result<Option<Vec<u8>>, ClientError> {
    let mut size = String::new();
    if r.read_line(&mut size)? == 0 {
        return Ok(None);
    }
    let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
        .map_err(|_| ClientError::Protocol(format!("bad chunk size {size:?}")))?;
    if n == 0 {
        return Ok(None);
    }
    let mut buf = vec![0; n + 2];
    r.read_exact(&mut buf)?;
    buf.truncate(n);
    Ok(Some(buf))
}
