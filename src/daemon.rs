//! `zwlock daemon`: one loop over signals and the driver's events.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::driver::{Driver, DriverConfig, DriverEvent};
use crate::sim::Simulator;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("simulator control socket {path}: {source}")]
    SimControl {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Run until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let port = config
        .port()
        .map_err(|e| crate::config::ConfigError::Value {
            path: "config".into(),
            key: "serial.port",
            reason: e.to_string(),
        })?;
    let simulator = Simulator::new(config.sim_config());
    let mut driver_config = DriverConfig::new(port.clone());
    driver_config.simulator = Some(Arc::new(simulator.clone()));
    driver_config.report_timeout = config.report_timeout();
    driver_config.startup.soft_reset = config.serial.soft_reset;
    driver_config.reconnect_initial =
        std::time::Duration::from_millis(config.serial.reconnect_initial_ms);
    driver_config.reconnect_max = std::time::Duration::from_millis(config.serial.reconnect_max_ms);
    driver_config.queue_depth = config.serial.queue_depth;

    let mut sim_control = None;
    if let Some(path) = config.sim.control_socket.clone() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DaemonError::SimControl {
                path: path.clone(),
                source,
            })?;
        }
        let sim = simulator.clone();
        let p = path.clone();
        sim_control = Some((
            path,
            tokio::spawn(async move { crate::sim::control::serve(sim, &p).await }),
        ));
    }

    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    tracing::info!(%port, "zwlock starting");
    let (_driver, mut events) = Driver::spawn(driver_config);
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            ev = events.recv() => match ev {
                Some(ev) => log_event(&ev),
                None => break,
            },
        }
    }
    if let Some((path, task)) = sim_control {
        task.abort();
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("zwlock stopped");
    Ok(())
}

fn log_event(ev: &DriverEvent) {
    match ev {
        DriverEvent::Connected(c) => tracing::info!(
            home_id = format_args!("{:08x}", c.home_id),
            nodes = c.nodes.len(),
            "controller ready"
        ),
        DriverEvent::Disconnected { reason } => tracing::warn!(%reason, "controller lost"),
        DriverEvent::NodeUpdated(n) if n.interviewed => tracing::info!(
            node = %n.node_id,
            slots = n.user_code.as_ref().map(|u| u.slots),
            user_code_version = n.user_code.as_ref().map(|u| u.version),
            battery = n.battery_level,
            "lock interviewed"
        ),
        DriverEvent::NodeUpdated(_) => {}
        DriverEvent::NodeReachability { node, reachable } => {
            tracing::info!(%node, reachable, "lock reachability changed")
        }
        DriverEvent::Report { node, command, .. } => tracing::info!(
            %node,
            class = command.class_name(),
            command = command.command_name(),
            "lock report"
        ),
    }
}
