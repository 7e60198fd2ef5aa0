//! `zwlock daemon`: the store, the driver, the engine and the API, and one loop over signals
//! and status reports to systemd, beside a task that feeds systemd's watchdog. The driver's
//! lock-model cache is the store's `lock_models` table ([`StoreModels`]).
//!
//! The watchdog rule: it is fed only after the engine answered (its store is not wedged, the
//! driver actor replies) and a ping went from the engine through the driver to the stick and
//! back ([`crate::driver::DriverHandle::ping`], a GetControllerId). While the stick is
//! legitimately not there it is fed too: a port that cannot be opened (unplugged, no such
//! device), a stick being connected or taken through the recovery ladder (soft reset,
//! reopening its port) — a restart would not bring it back sooner. It is not fed after a
//! ping that failed on a connected stick, nor once the ladder is exhausted (the port opens but
//! the stick does not work after a soft reset and every reopen): then systemd restarts the
//! service. The decision is [`crate::driver::feeds_watchdog`]. A ping waits behind the stick
//! operation in flight (at most a SendData's callback timeout, 30 s), so `WatchdogSec` must be
//! longer than that; the unit says 60.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::api::{Api, ListenConfig};
use crate::codes::{Engine, SystemClock};
use crate::config::Config;
use crate::driver::node::{NotificationSupport, UserCodeSupport};
use crate::driver::{Driver, DriverConfig};
use crate::driver::{ModelCache, ModelFacts, ModelKey};
use crate::logging::LogLevel;
use crate::service::Notifier;
use crate::sim::Simulator;
use crate::store::{ModelKeyRow, ModelRow, Notifications, Store};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Engine(#[from] crate::codes::EngineError),
    #[error(transparent)]
    Api(#[from] crate::api::ServeError),
    #[error(transparent)]
    Keys(#[from] crate::security::keys::KeyError),
    #[error(transparent)]
    Mqtt(#[from] crate::mqtt::MqttError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn driver_config(config: &Config, simulator: &Simulator) -> Result<DriverConfig, DaemonError> {
    let port = config.port().unwrap_or_else(|| "".parse()).map_err(|e| {
        crate::config::ConfigError::Value {
            path: "config".into(),
            key: "serial.port",
            reason: e.to_string(),
        }
    })?;
    let mut d = DriverConfig::new(port);
    d.simulator = Some(Arc::new(simulator.clone()));
    d.report_timeout = config.report_timeout();
    d.startup.soft_reset = config.serial.soft_reset;
    d.reconnect_initial = Duration::from_millis(config.serial.reconnect_initial_ms);
    d.reconnect_max = Duration::from_millis(config.serial.reconnect_max_ms);
    d.queue_depth = config.serial.queue_depth;
    Ok(d)
}

fn read_token(path: &PathBuf) -> Result<String, DaemonError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |reason: String| DaemonError::File {
        path: path.clone(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err(
            "the token file must not be readable by group or others (chmod 600)".into(),
        ));
    }
    let token = std::fs::read_to_string(path)
        .map_err(|e| err(e.to_string()))?
        .trim()
        .to_string();
    if token.len() < 16 {
        return Err(err("the token must be at least 16 characters".into()));
    }
    Ok(token)
}

/// Keep glibc's malloc to two arenas (unless MALLOC_ARENA_MAX says otherwise). By default it
/// grows one per thread that contends for memory, and each keeps what it freed: the API
/// answers on a pool of blocking threads, so 50 clients listing a lock with 3,000 codes left
/// the daemon at 58 MB (64 MB at the peak) with the default, 30 MB (37 MB) with two
/// (tools/bench-api-load.py, release build). Call before any thread starts.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no thread has started yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Run until SIGTERM or SIGINT. `config_path` is read again on SIGHUP.
pub async fn run(config: Config, config_path: PathBuf, log: LogLevel) -> Result<(), DaemonError> {
    let notifier = Notifier::from_env();
    // No port configured: wait for one rather than take a stick by surprise.
    let Some(config) = crate::setup::until_a_stick_is_configured(config, &config_path, &notifier)
        .await
        .map_err(DaemonError::Signals)?
    else {
        return Ok(());
    };
    let simulator = Simulator::new(config.sim_config());
    let mut driver_config = driver_config(&config, &simulator)?;
    let port = driver_config.port.clone();
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;

    notifier.status("opening the store");
    let store = Store::open(&config.store.path)?;
    let keys_path = config.store.keys_path();
    let (keys, created) = crate::security::keys::NetworkKeys::load_or_create(&keys_path)?;
    if created {
        tracing::info!(path = %keys_path.display(), "new network keys generated");
    }
    driver_config.keys = Some(keys);
    // Its own connection to the same file (WAL): the driver's interviews read and write lock
    // models beside the engine's transactions.
    driver_config.model_cache = Some(Arc::new(StoreModels::open(&config.store.path)?));
    let tcp = match (&config.api.tcp_listen, &config.api.token_file) {
        (Some(addr), Some(token)) => Some((
            addr.parse()
                .map_err(|_| crate::config::ConfigError::Value {
                    path: "config".into(),
                    key: "api.tcp_listen",
                    reason: "not an address".into(),
                })?,
            read_token(token)?,
        )),
        _ => None,
    };
    notifier.status("opening the API socket");
    let api = Api::bind(&ListenConfig {
        socket: config.api.socket.clone(),
        socket_mode: config.socket_mode().unwrap_or(0o660),
        tcp,
        limits: Default::default(),
    })
    .await?;

    let mut sim_control = None;
    if let Some(path) = config.sim.control_socket.clone() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let sim = simulator.clone();
        let p = path.clone();
        sim_control = Some((
            path,
            tokio::spawn(async move {
                if let Err(e) = crate::sim::control::serve(sim, &p).await {
                    tracing::error!(error = %e, "simulator control socket failed");
                }
            }),
        ));
    }

    // The broker's secrets are read now, so a bad file stops the start.
    let mqtt = crate::mqtt::Settings::from_config(&config.mqtt)?;
    tracing::info!(%port, store = %config.store.path.display(), socket = %config.api.socket.display(), "zwlock starting");
    notifier.status("starting the driver");
    let (driver, driver_events) = Driver::spawn(driver_config);
    let mut engine = Engine::start(
        store,
        driver,
        driver_events,
        Arc::new(SystemClock),
        config.codes.engine_config_named(config.lock_names()),
    )?;
    // A simulated network's locks can be played at through the API (Seam's simulate routes).
    if let crate::serial::transport::PortUrl::Sim(name) = &port {
        if let Some(net) = simulator.network(name) {
            engine = engine.with_keypads(Arc::new(SimKeypads(net)));
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let api_task = tokio::spawn(api.serve(engine.clone(), async move {
        let _ = stop_rx.await;
    }));
    // The API over MQTT: connects in the background; the hub does not wait for the broker.
    let bridge = mqtt.map(|settings| crate::mqtt::Bridge::start(engine.clone(), settings));
    tracing::info!("zwlock ready");
    notifier.ready(&format!("ready; API on {}", config.api.socket.display()));

    // The rule is in the module header.
    let watchdog = notifier
        .watchdog_interval()
        .map(|interval| tokio::spawn(feed_watchdog(engine.clone(), notifier.clone(), interval)));
    let mut report = tokio::time::interval(Duration::from_secs(10));
    let mut last_status = String::new();
    let mut running = config;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => reload(&config_path, &mut running, &engine, &log, &notifier),
            _ = report.tick() => {
                let status = status_line(&engine);
                if status != last_status {
                    notifier.status(&status);
                    last_status = status;
                }
            }
        }
    }
    if let Some(task) = watchdog {
        task.abort();
    }
    notifier.stopping(Duration::from_millis(500));
    // Stop taking requests, then let in-flight ones finish (bounded).
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(3), api_task).await;
    // No more requests over MQTT; `offline` (retained), then a clean disconnect.
    if let Some(bridge) = bridge {
        bridge.shutdown().await;
    }
    if let Some((path, task)) = sim_control {
        task.abort();
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(&running.api.socket);
    engine.shutdown().await;
    tracing::info!("zwlock stopped");
    Ok(())
}

/// Feed systemd's watchdog after each check that passes (the rule in the module header).
/// `interval`: half of `WatchdogSec`. Each check takes at most half of that; the next one
/// starts a quarter of it later, so one slow check does not let the watchdog expire.
async fn feed_watchdog(engine: Engine, notifier: Notifier, interval: Duration) {
    let driver = engine.driver();
    let within = interval / 2;
    let pause = interval / 4;
    let mut failing = false;
    loop {
        let ping = async {
            match &driver {
                Some(d) => d.ping(within).await,
                None => Ok(()),
            }
        };
        let (responsive, ping) = tokio::join!(engine.responsive(within), ping);
        let fed = responsive && crate::driver::feeds_watchdog(&ping);
        if fed {
            notifier.watchdog();
            if std::mem::take(&mut failing) {
                tracing::info!("engine, driver and stick answer again: feeding the watchdog");
            }
        } else if !failing {
            failing = true;
            match &ping {
                Err(e) if responsive => {
                    tracing::error!(error = %e, "the stick does not answer: the watchdog is left to expire")
                }
                _ => tracing::error!(
                    "the engine or the driver is not answering: the watchdog is left to expire"
                ),
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// The driver's lock-model cache ([`crate::driver::model`]), kept in the store's
/// `lock_models` table. A store error is logged and taken as a miss (the interview then asks
/// the lock) or as nothing kept (the next lock of the model asks again).
pub struct StoreModels(std::sync::Mutex<Store>);

impl StoreModels {
    pub fn open(path: &std::path::Path) -> Result<StoreModels, crate::store::StoreError> {
        Ok(StoreModels(std::sync::Mutex::new(Store::open(path)?)))
    }

    fn row_key(key: &ModelKey) -> ModelKeyRow {
        ModelKeyRow {
            manufacturer_id: key.manufacturer_id,
            product_type: key.product_type,
            product_id: key.product_id,
            firmware: key.firmware.clone(),
            command_classes: key.command_classes.clone(),
        }
    }
}

impl ModelCache for StoreModels {
    fn get(&self, key: &ModelKey) -> Option<ModelFacts> {
        let store = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match Store::lock_model(store.conn(), &StoreModels::row_key(key)) {
            Ok(row) => row.map(|r| ModelFacts {
                versions: r.versions,
                user_code: UserCodeSupport {
                    version: r.user_code_version,
                    slots: r.slots,
                    checksum: r.supports_checksum,
                    bulk_reports: r.supports_bulk_reports,
                    characters: r.code_characters,
                    admin_code: r.supports_admin_code,
                },
                notification: match r.notifications {
                    Notifications::AccessControl => NotificationSupport::AccessControl,
                    Notifications::LegacyAlarm => NotificationSupport::LegacyAlarm,
                    Notifications::None => NotificationSupport::None,
                },
            }),
            Err(e) => {
                tracing::warn!(error = %e, "lock models: cannot read; the lock is asked");
                None
            }
        }
    }

    fn put(&self, key: ModelKey, facts: ModelFacts) {
        let row = ModelRow {
            key: StoreModels::row_key(&key),
            user_code_version: facts.user_code.version,
            slots: facts.user_code.slots,
            supports_checksum: facts.user_code.checksum,
            supports_bulk_reports: facts.user_code.bulk_reports,
            code_characters: facts.user_code.characters,
            supports_admin_code: facts.user_code.admin_code,
            notifications: match facts.notification {
                NotificationSupport::AccessControl => Notifications::AccessControl,
                NotificationSupport::LegacyAlarm => Notifications::LegacyAlarm,
                NotificationSupport::None => Notifications::None,
            },
            versions: facts.versions,
            learnt_at: chrono::Utc::now(),
        };
        let store = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = Store::put_lock_model(store.conn(), &row) {
            tracing::warn!(error = %e, "lock models: cannot keep what the interview learnt");
        }
    }
}

/// The keypads of a simulated network.
struct SimKeypads(crate::sim::SimHandle);

impl crate::codes::engine::Keypads for SimKeypads {
    fn enter<'a>(
        &'a self,
        node: u16,
        pin: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let node = u8::try_from(node).map_err(|_| format!("node {node}"))?;
            self.0
                .keypad(node, crate::sim::KeypadAction::Enter { pin: pin.into() })
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn program<'a>(
        &'a self,
        node: u16,
        slot: u16,
        pin: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let node = u8::try_from(node).map_err(|_| format!("node {node}"))?;
            self.0
                .keypad(
                    node,
                    crate::sim::KeypadAction::Program {
                        slot,
                        pin: pin.into(),
                    },
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// One line for `systemctl status`.
fn status_line(engine: &Engine) -> String {
    let stick = if engine.hub_connected() {
        "stick connected"
    } else {
        "waiting for the stick"
    };
    let locks = engine.devices().map(|d| d.len()).unwrap_or(0);
    let pending: u64 = engine
        .codes_by_status()
        .unwrap_or_default()
        .into_iter()
        .filter(|(s, _)| s.is_transitional())
        .map(|(_, n)| n)
        .sum();
    format!("ready; {stick}; {locks} locks; {pending} codes being written")
}

/// The sections of `new` that differ from the `running` configuration and take effect only
/// after a restart (what `reload` could apply has already been copied into `running`).
fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut restart = Vec::new();
    if new.serial != running.serial {
        restart.push("[serial]");
    }
    if new.store != running.store {
        restart.push("[store]");
    }
    if new.api != running.api {
        restart.push("[api]");
    }
    if new.codes != running.codes {
        restart.push("[codes] retry, warning and slot settings");
    }
    if new.sim != running.sim {
        restart.push("[sim]");
    }
    if new.mqtt != running.mqtt {
        restart.push("[mqtt]");
    }
    if new.locks != running.locks {
        restart.push("[[lock]] names (a known lock is renamed with devices/update)");
    }
    restart
}

/// SIGHUP: read the file again and apply what can change while running (log level, watch
/// budgets); say what needs a restart. A file with errors changes nothing.
fn reload(
    path: &std::path::Path,
    running: &mut Config,
    engine: &Engine,
    log: &LogLevel,
    notifier: &Notifier,
) {
    notifier.reloading();
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the configuration has errors; nothing changed");
            notifier.reloaded("ready; the last reload failed (configuration errors)");
            return;
        }
    };
    let mut applied: Vec<&str> = Vec::new();
    if new.log.level != running.log.level {
        match log.set(&new.log.level) {
            Ok(_) => {
                running.log = new.log.clone();
                applied.push("log.level");
            }
            Err(e) => tracing::error!(error = %e, "SIGHUP: cannot apply log.level"),
        }
    }
    let watch_keys = |c: &crate::config::CodesConfig| {
        (
            c.poll_reads_per_hour,
            c.checksum_interval_seconds,
            c.full_read_on_first_sight,
        )
    };
    if watch_keys(&new.codes) != watch_keys(&running.codes) {
        engine.set_watch_config(new.codes.engine_config().watch);
        running.codes.poll_reads_per_hour = new.codes.poll_reads_per_hour;
        running.codes.checksum_interval_seconds = new.codes.checksum_interval_seconds;
        running.codes.full_read_on_first_sight = new.codes.full_read_on_first_sight;
        applied.push("codes watch budgets");
    }
    let restart = needs_restart(running, &new);
    if applied.is_empty() {
        tracing::info!("SIGHUP: configuration read; nothing to apply");
    } else {
        tracing::info!(applied = %applied.join(", "), "SIGHUP: configuration reloaded");
    }
    if !restart.is_empty() {
        tracing::warn!(changed = %restart.join(", "), "SIGHUP: these changed and apply only after a restart");
    }
    notifier.reloaded("ready; configuration reloaded");
}

#[cfg(test)]
mod reload_tests {
    use super::*;

    fn parse(text: &str) -> Config {
        toml::from_str(text).expect("test config parses")
    }

    #[test]
    fn restart_list_names_each_changed_section() {
        let running = parse("[serial]\nport = \"sim://demo\"\n");
        assert!(needs_restart(&running, &running.clone()).is_empty());
        let new = parse(
            "[serial]\nport = \"sim://demo\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nhub_id = \"a\"\n",
        );
        assert_eq!(needs_restart(&running, &new), vec!["[mqtt]"]);
        let new =
            parse("[serial]\nport = \"sim://other\"\n[[lock]]\nnode_id = 2\nname = \"Front\"\n");
        assert_eq!(
            needs_restart(&running, &new),
            vec![
                "[serial]",
                "[[lock]] names (a known lock is renamed with devices/update)"
            ]
        );
    }
}
