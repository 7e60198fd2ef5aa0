//! A real mosquitto on 127.0.0.1 with a generated config, zwlock daemons (the real binary on
//! simulated networks) bridged to it, and MQTT helpers, for tests/mqtt.rs and the fleet
//! benchmark. Every process started here is stopped by its guard (killed and reaped by PID).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_zwlock");

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        .unwrap_or(false)
}

/// The mosquitto binary.
pub fn mosquitto_bin() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v mosquitto"])
        .output()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            return s.into();
        }
    }
    panic!("mosquitto is missing: apt-get install mosquitto\n(`tools/tier2 --setup-only --install-system` installs what the second tier needs)")
}

/// TLS files of the broker.
#[derive(Clone, Debug)]
pub struct BrokerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub require_certificate: bool,
}

/// How the broker is set up.
#[derive(Clone, Debug, Default)]
pub struct BrokerOpts {
    pub persistence: bool,
    pub tls: Option<BrokerTls>,
    /// A mosquitto password file (anonymous clients are refused then).
    pub password_file: Option<PathBuf>,
    pub acl: Option<String>,
}

/// A mosquitto this test started.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    pub tls_port: Option<u16>,
    pub dir: PathBuf,
    config: PathBuf,
}

impl Mosquitto {
    pub fn start(dir: &Path, opts: BrokerOpts) -> Mosquitto {
        let dir = dir.join("mosquitto");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let tls_port = opts.tls.as_ref().map(|_| free_port());
        let mut conf = String::new();
        if is_root() {
            // Stay root: the files are in a directory only root may enter.
            conf.push_str("user root\n");
        }
        conf.push_str(&format!(
            "per_listener_settings false\nlistener {port} 127.0.0.1\n\
             log_dest file {}\nlog_type all\nconnection_messages true\n\
             max_queued_messages 10000\nset_tcp_nodelay true\n",
            dir.join("mosquitto.log").display()
        ));
        match &opts.password_file {
            Some(p) => conf.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                p.display()
            )),
            None => conf.push_str("allow_anonymous true\n"),
        }
        if let Some(acl) = &opts.acl {
            let p = dir.join("acl");
            std::fs::write(&p, acl).unwrap();
            conf.push_str(&format!("acl_file {}\n", p.display()));
        }
        if opts.persistence {
            conf.push_str(&format!(
                "persistence true\npersistence_location {}/\nautosave_interval 1\n",
                dir.display()
            ));
        } else {
            conf.push_str("persistence false\n");
        }
        if let (Some(t), Some(tp)) = (&opts.tls, tls_port) {
            conf.push_str(&format!(
                "listener {tp} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display(),
                t.require_certificate
            ));
        }
        let config = dir.join("mosquitto.conf");
        std::fs::write(&config, conf).unwrap();
        let mut m = Mosquitto {
            child: None,
            port,
            tls_port,
            dir,
            config,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("mosquitto exited ({status}):\n{}", self.log());
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto does not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stop it (SIGTERM: it saves its persistence) and wait until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A simulated network for one hub: `locks` locks at node 5, 6, ….
pub fn network_toml(name: &str, locks: usize) -> String {
    let mut s = format!("[[sim.network]]\nname = \"{name}\"\nradio_ms = 1\n");
    for i in 0..locks {
        s.push_str(&format!(
            "[[sim.network.lock]]\nnode_id = {}\nname = \"Door {}\"\nlistening = \"always\"\nslots = 20\n",
            5 + i,
            i + 1
        ));
    }
    s
}

/// A zwlock daemon this test started.
pub struct Hub {
    child: Option<Child>,
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Hub {
    /// Write the hub's config: its own network of `locks` locks, and `mqtt` as the [mqtt]
    /// section (empty: no bridge).
    pub fn configure(root: &Path, name: &str, locks: usize, mqtt: &str) -> Hub {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("api.sock");
        let text = format!(
            "[serial]\nport = \"sim://{name}\"\n[store]\npath = \"{d}/zwlock.db\"\n[api]\nsocket = \"{s}\"\n\
             [log]\nlevel = \"info\"\n[sim]\ncontrol_socket = \"{d}/sim.sock\"\n{net}\n{mqtt}\n",
            d = dir.display(),
            s = socket.display(),
            net = network_toml(name, locks),
        );
        let config = dir.join("zwlock.toml");
        std::fs::write(&config, text).unwrap();
        Hub {
            child: None,
            name: name.to_string(),
            dir,
            config,
            socket,
            log: Arc::default(),
        }
    }

    /// The [mqtt] section for a hub on `url`, with quick reconnects.
    pub fn mqtt_section(url: &str, name: &str, extra: &str) -> String {
        format!(
            "[mqtt]\nurl = \"{url}\"\nhub_id = \"{name}\"\nreconnect_initial_ms = 200\nreconnect_max_ms = 1000\nresync_seconds = 10\n{extra}\n"
        )
    }

    /// Start the daemon and wait until its socket answers with `locks` locks.
    pub fn start(&mut self, locks: usize) {
        let mut child = Command::new(BIN)
            .args(["daemon", "--config"])
            .arg(&self.config)
            .env("ZWLOCK_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
        let t0 = Instant::now();
        loop {
            if let Ok(r) = self.http("GET", "/devices/list", None) {
                if r["devices"].as_array().map_or(0, Vec::len) == locks {
                    break;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("hub {} exited ({status}):\n{}", self.name, self.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "hub {} did not come up:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stop it with `signal` (TERM: a clean stop; KILL: it dies) and reap it.
    pub fn stop(&mut self, signal: &str) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// A request on the hub's own socket: the JSON body.
    pub fn http(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let client = zwlock::cli::client::Client::new(&self.socket);
        let r = client.call(method, path, body).map_err(|e| e.to_string())?;
        if r.is_ok() {
            Ok(r.body)
        } else {
            Err(format!("{}: {}", r.status, r.body))
        }
    }

    pub fn devices(&self) -> Vec<String> {
        self.http("GET", "/devices/list", None).unwrap()["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["device_id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Every managed code of the hub, as access_codes/list shows them.
    pub fn codes(&self) -> BTreeMap<String, Value> {
        let mut all = BTreeMap::new();
        for d in self.devices() {
            let r = self
                .http(
                    "POST",
                    "/access_codes/list",
                    Some(&serde_json::json!({ "device_id": d })),
                )
                .unwrap();
            for c in r["access_codes"].as_array().unwrap() {
                all.insert(c["access_code_id"].as_str().unwrap().to_string(), c.clone());
            }
        }
        all
    }

    pub fn sim(&self, node: u8, action: &str) {
        let out = Command::new(BIN)
            .args(["sim", "control", "--socket"])
            .arg(self.dir.join("sim.sock"))
            .args(["--network", &self.name, "--node", &node.to_string(), action])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sim {action}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// Resident memory in kB (Linux).
    pub fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A message as a subscriber saw it.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    pub user_properties: Vec<(String, String)>,
}

fn options(port: u16, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(Some(1 << 20));
    o.set_outgoing_inflight_upper_limit(32);
    o
}

/// A subscriber recording every message on `filter` (from when it is subscribed).
pub struct Recorder {
    pub messages: Arc<Mutex<Vec<Msg>>>,
    task: tokio::task::JoinHandle<()>,
    client: AsyncClient,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub async fn start(port: u16, filter: &str) -> Recorder {
        let id = format!("rec-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (client, mut el) = AsyncClient::new(options(port, &id), 1000);
        let messages: Arc<Mutex<Vec<Msg>>> = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let m = messages.clone();
        let c = client.clone();
        let f = filter.to_string();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = c.try_subscribe(f.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        m.lock().unwrap().push(Msg {
                            topic: String::from_utf8_lossy(&p.topic).to_string(),
                            payload: p.payload.clone(),
                            retain: p.retain,
                            user_properties: p
                                .properties
                                .map(|p| p.user_properties)
                                .unwrap_or_default(),
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("the recorder subscribes")
            .unwrap();
        Recorder {
            messages,
            task,
            client,
        }
    }

    pub fn all(&self) -> Vec<Msg> {
        self.messages.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    /// Publish (for HA commands and the like).
    pub async fn publish(&self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_string())
            .await
            .unwrap();
    }
}

/// What the broker keeps retained under `filter`, as a subscriber joining now sees it:
/// subscribe, then wait for a marker sent after the subscription (it comes after every
/// retained message).
pub async fn retained(port: u16, filter: &str) -> BTreeMap<String, Bytes> {
    let marker = format!("test/marker/{}", uuid::Uuid::new_v4().simple());
    let rec = Recorder::start(port, filter).await;
    let mark = Recorder::start(port, &marker).await;
    mark.publish(&marker, "m", false).await;
    let t0 = Instant::now();
    while mark.count() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no marker");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Retained messages were queued at the subscription, before the marker was published.
    tokio::time::sleep(Duration::from_millis(200)).await;
    rec.all()
        .into_iter()
        .filter(|m| m.retain && !m.payload.is_empty())
        .map(|m| (m.topic, m.payload))
        .collect()
}

/// Wait until `pred` holds (async), at most `max`.
pub async fn until<F, Fut>(what: &str, max: Duration, mut pred: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !pred().await {
        assert!(t0.elapsed() < max, "{what}: not within {max:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client of `hub` through the broker on `port`.
pub async fn client(port: u16, hub: &str) -> zwlock::mqtt::client::ApiClient {
    let conn = zwlock::mqtt::Connection::new(
        format!("mqtt://127.0.0.1:{port}").parse().unwrap(),
        None,
        None,
        Default::default(),
        Duration::from_secs(30),
    )
    .unwrap();
    zwlock::mqtt::client::ApiClient::connect(&conn, "zwlock", hub, Duration::from_secs(10))
        .await
        .unwrap()
}
