//! Helpers shared by integration tests: a minimal host on top of the link and session layers.
#![allow(dead_code)]

pub mod world;

use std::time::Duration;

use tokio::sync::mpsc;
use zwlock::cc::Command;
use zwlock::serial::link::{self, LinkConfig, LinkHandle};
use zwlock::serial::transport::BoxedStream;
use zwlock::serialapi::session::{
    self, Exchange, SessionConfig, SessionError, SessionEvent, SessionHandle,
};
use zwlock::serialapi::transmit::TX_OPTIONS_DEFAULT;
use zwlock::serialapi::{HostRequest, NodeId, SendDataCallback, SendDataRequest, StickRequest};

pub struct TestHost {
    pub link: LinkHandle,
    pub session: SessionHandle,
    pub events: mpsc::Receiver<SessionEvent>,
    next_callback: u8,
}

impl TestHost {
    pub fn new(stream: BoxedStream) -> Self {
        let (link, link_events, _task) = link::spawn(stream, LinkConfig::default());
        let (session, events) = session::spawn(link.clone(), link_events, SessionConfig::default());
        TestHost {
            link,
            session,
            events,
            next_callback: 0,
        }
    }

    pub async fn request(&self, req: HostRequest) -> Result<Exchange, SessionError> {
        self.session.request(req).await
    }

    pub fn callback_id(&mut self) -> u8 {
        self.next_callback = self.next_callback % 255 + 1;
        self.next_callback
    }

    /// SendData `cmd` to `node`; returns the callback (None when the RES refused it).
    pub async fn send(&mut self, node: u8, cmd: &Command) -> Option<SendDataCallback> {
        self.send_raw(node, cmd.encode()).await
    }

    /// SendData command bytes as they are (e.g. an S2 encapsulation).
    pub async fn send_raw(&mut self, node: u8, command: Vec<u8>) -> Option<SendDataCallback> {
        let callback_id = self.callback_id();
        let ex = self
            .request(HostRequest::SendData(SendDataRequest {
                node_id: NodeId::from(node),
                command,
                tx_options: TX_OPTIONS_DEFAULT,
                callback_id,
            }))
            .await
            .expect("SendData");
        match ex.callback {
            Some(StickRequest::SendDataCallback(c)) => Some(c),
            _ => None,
        }
    }

    /// Commands nodes send within `window` (on a paused clock this costs no real time).
    pub async fn node_commands(&mut self, window: Duration) -> Vec<(u8, Command)> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            if let SessionEvent::Unsolicited(m) = ev {
                if let Some((src, bytes)) = m.node_command() {
                    out.push((
                        src.0 as u8,
                        Command::parse(bytes).expect("node command parses"),
                    ));
                }
            }
        }
        out
    }

    /// Command bytes nodes send within `window`, as they arrived.
    pub async fn node_frames(&mut self, window: Duration) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            if let SessionEvent::Unsolicited(m) = ev {
                if let Some((src, bytes)) = m.node_command() {
                    out.push((src.0 as u8, bytes.to_vec()));
                }
            }
        }
        out
    }

    /// SendData and collect what the node answers within 3 s.
    pub async fn ask(&mut self, node: u8, cmd: &Command) -> Vec<Command> {
        let cb = self.send(node, cmd).await.expect("callback");
        assert_eq!(cb.transmit_status, zwlock::serialapi::TransmitStatus::Ok);
        self.node_commands(Duration::from_secs(3))
            .await
            .into_iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, c)| c)
            .collect()
    }
}

/// A child process stopped (by its PID) when the test ends, even when it fails.
pub struct Reaped(pub std::process::Child);

impl Reaped {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn signal(&self, sig: &str) {
        let _ = std::process::Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status();
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The zwlock binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_zwlock");

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start `zwlock sim serve` on a fresh port with a control socket; returns it once listening.
pub fn sim_serve(sim_file: &std::path::Path, control: &std::path::Path) -> (Reaped, u16) {
    let port = free_port();
    let child = std::process::Command::new(BIN)
        .args(["sim", "serve", "--config"])
        .arg(sim_file)
        .args(["--listen", &format!("tcp://127.0.0.1:{port}"), "--control"])
        .arg(control)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = Reaped(child);
    wait_until("sim serve control socket", Duration::from_secs(20), || {
        control.exists()
    });
    (child, port)
}

/// Start `zwlock daemon` with `config`; returns it once its API answers.
pub fn daemon(config: &std::path::Path, socket: &std::path::Path) -> Reaped {
    let child = std::process::Command::new(BIN)
        .args(["daemon", "--config"])
        .arg(config)
        .env("ZWLOCK_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = Reaped(child);
    let client = zwlock::cli::client::Client::new(socket);
    wait_until("daemon API", Duration::from_secs(30), || {
        client
            .call("GET", "/health", None)
            .is_ok_and(|r| r.status == 200)
    });
    child
}

pub fn wait_until(what: &str, max: Duration, mut pred: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < max {
        if pred() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {max:?}");
}

/// A daemon config talking to a stick at tcp://127.0.0.1:PORT, with state in `dir`.
pub fn tcp_config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let text = format!(
        "[serial]\nport = \"tcp://127.0.0.1:{port}\"\nreconnect_initial_ms = 200\nreconnect_max_ms = 1000\n\
         [store]\npath = \"{d}/zwlock.db\"\n[api]\nsocket = \"{d}/api.sock\"\n\
         [codes]\nretry_initial_seconds = 1\nretry_max_seconds = 5\n",
        d = dir.display()
    );
    let p = dir.join("zwlock.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A [`SimConnector`](zwlock::serial::transport::SimConnector) over a simulator that records
/// every byte the host writes to the stick.
pub struct Recording {
    pub sim: zwlock::sim::Simulator,
    pub sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Recording {
    pub fn new(sim: zwlock::sim::Simulator) -> Self {
        Recording {
            sim,
            sent: Default::default(),
        }
    }

    /// The command of every SendData the host sent to `node`, in order.
    pub fn send_data_to(&self, node: u8) -> Vec<Vec<u8>> {
        use zwlock::serial::frame::{parse_head, Head};
        let bytes = self.sent.lock().unwrap().clone();
        let mut rest = &bytes[..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            match parse_head(rest) {
                Ok((next, head)) => {
                    // REQ SendData: node, length, command, tx options, callback id.
                    if let Head::Data {
                        body: [0x00, 0x13, n, len, cmd @ ..],
                    } = head
                    {
                        if *n == node && cmd.len() >= usize::from(*len) {
                            out.push(cmd[..usize::from(*len)].to_vec());
                        }
                    }
                    rest = next;
                }
                Err(_) => rest = &rest[1..],
            }
        }
        out
    }
}

impl zwlock::serial::transport::SimConnector for Recording {
    fn connect(
        &self,
        name: &str,
    ) -> Result<BoxedStream, zwlock::serial::transport::TransportError> {
        let inner = self.sim.connect(name)?;
        Ok(Box::new(RecordingStream {
            inner,
            sent: self.sent.clone(),
        }))
    }
}

struct RecordingStream {
    inner: BoxedStream,
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl tokio::io::AsyncRead for RecordingStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for RecordingStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.sent.lock().unwrap().extend_from_slice(&data[..*n]);
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A daemon for Seam's SDKs: two simulated locks on an in-process `sim://` network, so that
/// Seam's simulate routes can play at them (lock A, node 5, holds the keypad code 2580 in
/// slot 1), the Unix socket, and the loopback TCP listener with a `seam_`-prefixed token (the
/// SDKs refuse other keys).
pub struct SdkDaemon {
    pub socket: std::path::PathBuf,
    pub tcp_port: u16,
    pub token: String,
    pub daemon: Reaped,
}

pub const SDK_SIM: &str = r#"
[[sim.network]]
name = "sdk"
radio_ms = 2
[[sim.network.lock]]
node_id = 5
listening = "always"
slots = 10
initial_codes = [{ slot = 1, code = "2580" }]
[[sim.network.lock]]
node_id = 6
listening = "always"
slots = 10
"#;

pub fn sdk_daemon(dir: &std::path::Path) -> SdkDaemon {
    use std::os::unix::fs::PermissionsExt;
    let config = dir.join("zwlock.toml");
    std::fs::write(
        &config,
        format!(
            "[serial]\nport = \"sim://sdk\"\n[store]\npath = \"{d}/zwlock.db\"\n\
             [api]\nsocket = \"{d}/api.sock\"\n\
             [codes]\nretry_initial_seconds = 1\nretry_max_seconds = 5\n{SDK_SIM}",
            d = dir.display()
        ),
    )
    .unwrap();
    let tcp_port = free_port();
    let token = "seam_zwlock_sdk_test_token".to_string();
    let token_file = dir.join("api.token");
    std::fs::write(&token_file, &token).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let socket = dir.join("api.sock");
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[api]\n",
        &format!(
            "[api]\ntcp_listen = \"127.0.0.1:{tcp_port}\"\ntoken_file = \"{}\"\n",
            token_file.display()
        ),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let daemon = daemon(&config, &socket);
    let client = zwlock::cli::client::Client::new(&socket);
    wait_until("both locks known", Duration::from_secs(30), || {
        client.call("GET", "/devices/list", None).is_ok_and(|r| {
            r.body["devices"].as_array().is_some_and(|d| {
                d.len() == 2 && d.iter().all(|x| x["properties"]["online"] == true)
            })
        })
    });
    SdkDaemon {
        socket,
        tcp_port,
        token,
        daemon,
    }
}

/// Whether `text` shows `pin`: as a whole number (not inside a longer one), once every UUID in
/// it is taken out (a UUID's hex can spell a PIN's digits: a plain substring check of an
/// answer full of ids failed about one run in ten thousand).
pub fn shows_pin(text: &str, pin: &str) -> bool {
    let mut rest = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let id = text
            .get(i..i + 36)
            .filter(|w| uuid::Uuid::try_parse(w).is_ok());
        if id.is_some() {
            rest.push(' ');
            i += 36;
        } else {
            rest.push(c);
            i += c.len_utf8();
        }
    }
    rest.split(|c: char| !c.is_ascii_digit())
        .any(|run| run == pin)
}
