//! `zwlock daemon`: the store, the driver, the engine and the API, and one loop over signals.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::api::{Api, ListenConfig};
use crate::codes::{Engine, SystemClock};
use crate::config::Config;
use crate::driver::{Driver, DriverConfig};
use crate::sim::Simulator;
use crate::store::Store;

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
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn driver_config(config: &Config, simulator: &Simulator) -> Result<DriverConfig, DaemonError> {
    let port = config
        .port()
        .map_err(|e| crate::config::ConfigError::Value {
            path: "config".into(),
            key: "serial.port",
            reason: e.to_string(),
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

/// Run until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let simulator = Simulator::new(config.sim_config());
    let driver_config = driver_config(&config, &simulator)?;
    let port = driver_config.port.clone();
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;

    let store = Store::open(&config.store.path)?;
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
    let api = Api::bind(&ListenConfig {
        socket: config.api.socket.clone(),
        socket_mode: config.socket_mode().unwrap_or(0o660),
        tcp,
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

    tracing::info!(%port, store = %config.store.path.display(), socket = %config.api.socket.display(), "zwlock starting");
    let (driver, driver_events) = Driver::spawn(driver_config);
    let engine = Engine::start(
        store,
        driver,
        driver_events,
        Arc::new(SystemClock),
        config.codes.engine_config(),
    )?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let api_task = tokio::spawn(api.serve(engine.clone(), async move {
        let _ = stop_rx.await;
    }));
    tracing::info!("zwlock ready");

    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => tracing::info!("SIGHUP: nothing to reload yet; restart to apply a new configuration"),
        }
    }
    // Stop taking requests, then let in-flight ones finish (bounded).
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(3), api_task).await;
    if let Some((path, task)) = sim_control {
        task.abort();
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(&config.api.socket);
    engine.shutdown();
    tracing::info!("zwlock stopped");
    Ok(())
}
