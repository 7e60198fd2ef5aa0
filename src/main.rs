//! The `zwlock` binary.

use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use anyhow::Context;
use serde_json::json;
use zwlock::cli::args::{Cli, Command, ConfigAction, KeysAction, SimAction};
use zwlock::cli::commands::{self, CliError};
use zwlock::cli::decode::{self, DecodeOptions};
use zwlock::cli::describe::DescribeOptions;
use zwlock::cli::network;
use zwlock::cli::output::{self, exit};
use zwlock::config::Config;
use zwlock::daemon;
use zwlock::serialapi::NodeIdType;
use zwlock::sim::control::{self, ControlRequest};
use zwlock::sim::{SimConfig, Simulator};

/// `zwlock keys import`: parse, then write the keys file the configuration names (owned like
/// its directory: the service's user, when run as root).
fn keys_import(
    config: &Path,
    force: bool,
    file: Option<&Path>,
) -> anyhow::Result<(PathBuf, Vec<&'static str>)> {
    use std::io::Read;
    use zwlock::security::keys::NetworkKeys;
    let config = Config::load(config)?;
    let path = config.store.keys_path();
    if path.exists() && !force {
        anyhow::bail!(
            "{} exists; --force replaces it (locks included with those keys then stop answering)",
            path.display()
        );
    }
    let mut text = String::new();
    match file {
        Some(f) => std::fs::File::open(f)
            .and_then(|mut r| r.read_to_string(&mut text))
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?,
        None => std::io::stdin().read_to_string(&mut text)?,
    };
    let parsed = NetworkKeys::import(&text);
    zeroize::Zeroize::zeroize(&mut text);
    let (keys, given) = parsed?;
    keys.save(&path)?;
    Ok((path, given.iter().map(|c| c.zwave_js_name()).collect()))
}

/// `zwlock setup`: find the sticks, pick one (asked on a terminal, --port otherwise), write
/// serial.port into the configuration.
fn setup(
    config: &Path,
    port: Option<String>,
    list: bool,
    by_id: &Path,
    json: bool,
) -> anyhow::Result<()> {
    use zwlock::setup::{find_sticks, set_port, Stick};
    let sticks = find_sticks(by_id).with_context(|| format!("listing {}", by_id.display()))?;
    let describe = |s: &Stick| {
        let held: Vec<String> = s
            .held_by
            .iter()
            .map(|(pid, name)| format!("open by {name} (pid {pid})"))
            .collect();
        format!(
            "{} -> {}{}",
            s.path.display(),
            s.device.display(),
            if held.is_empty() {
                String::new()
            } else {
                format!("  [{}]", held.join(", "))
            }
        )
    };
    if list {
        if json {
            output::line(serde_json::to_string_pretty(&json!({ "sticks": sticks }))?)?;
        } else if sticks.is_empty() {
            output::line(format!("no stick under {}", by_id.display()))?;
        } else {
            for s in &sticks {
                output::line(describe(s))?;
            }
        }
        return Ok(());
    }
    let chosen = match port {
        Some(p) => p,
        None if sticks.is_empty() => anyhow::bail!(
            "no stick under {}: plug one in, or give --port (a tty, or tcp://HOST:PORT)",
            by_id.display()
        ),
        None if std::io::stdin().is_terminal() => {
            use std::io::{BufRead, Write};
            eprintln!("sticks found:");
            for (i, s) in sticks.iter().enumerate() {
                eprintln!("  {}. {}", i + 1, describe(s));
            }
            eprint!("use which one? [1] ");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            let n: usize = match answer.trim() {
                "" => 1,
                a => a
                    .parse()
                    .ok()
                    .filter(|n| (1..=sticks.len()).contains(n))
                    .with_context(|| format!("expected a number from 1 to {}", sticks.len()))?,
            };
            sticks[n - 1].path.display().to_string()
        }
        None => {
            let found: Vec<String> = sticks.iter().map(describe).collect();
            anyhow::bail!(
                "found {}; say which with --port PATH (nothing is chosen without asking)",
                found.join("; ")
            )
        }
    };
    if let Some(s) = sticks
        .iter()
        .find(|s| s.path.as_os_str() == chosen.as_str() || s.device.as_os_str() == chosen.as_str())
    {
        if !s.held_by.is_empty() {
            eprintln!(
                "zwlock setup: warning: {}; zwlock needs the stick to itself: stop that program (Z-Wave JS, say) before zwlock starts",
                describe(s)
            );
        }
    }
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let new = set_port(&text, &chosen, &config.display().to_string())?;
    write_like(config, &new)?;
    if json {
        output::line(serde_json::to_string_pretty(&json!({
            "config": config, "port": chosen, "sticks": sticks,
        }))?)?;
    } else {
        output::line(format!(
            "serial.port = {chosen:?} written to {}; `systemctl reload zwlock` starts using it",
            config.display()
        ))?;
    }
    Ok(())
}

/// Replace `path` with `text` atomically, keeping its mode, owner and group.
fn write_like(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    let tmp = path.with_extension("zwlock-setup.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing beside {}", path.display()))?;
    let done = f
        .write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        })
        .and_then(|_| {
            if std::fs::metadata(&tmp)?.uid() != meta.uid()
                || meta.gid() != std::fs::metadata(&tmp)?.gid()
            {
                std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()))?;
            }
            Ok(())
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::anyhow!("{}: {e}", path.display()));
    }
    Ok(())
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// A command's end: its error (unless the reader went away), and the exit code.
fn finish(r: Result<(), CliError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.is_quiet() {
                eprintln!("zwlock: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// Same for the commands that report with anyhow: a closed pipe is quiet, the rest exit `code`.
fn finish_any(r: anyhow::Result<()>, prefix: &str, code: u8) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if matches!(e.downcast_ref::<CliError>(), Some(CliError::ClosedPipe)) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{prefix}: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // --broker/--hub: the client commands go through the broker instead of the socket.
    let r = &cli.remote;
    match cli.command {
        Command::Codes { opts, cmd } => finish(commands::codes(opts.through(r), cmd)),
        Command::Unmanaged { opts, cmd } => finish(commands::unmanaged(opts.through(r), cmd)),
        Command::Devices { opts, cmd } => finish(commands::devices(opts.through(r), cmd)),
        Command::Events {
            opts,
            since,
            follow,
        } => finish(commands::events(opts.through(r), since, follow)),
        Command::Include {
            opts,
            pin,
            timeout,
            any_security,
        } => finish(network::include(opts.through(r), pin, timeout, any_security)),
        Command::Exclude { opts, timeout } => finish(network::exclude(opts.through(r), timeout)),
        Command::RemoveFailed { opts, device_id } => {
            finish(network::remove_failed(opts.through(r), &device_id))
        }
        Command::Lock { opts, device_id } => {
            finish(network::door(opts.through(r), &device_id, true))
        }
        Command::Unlock { opts, device_id } => {
            finish(network::door(opts.through(r), &device_id, false))
        }
        Command::Daemon {
            config: config_path,
        } => {
            let config = match Config::load(&config_path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("zwlock: {e}");
                    return ExitCode::from(exit::USAGE);
                }
            };
            // Files root would create in the service's state directory are unusable by it.
            let state = config.store.path.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(Err(e)) = state.map(zwlock::util::owner::refuse_root_in) {
                eprintln!("zwlock: {e}; or start the service: systemctl start zwlock");
                return ExitCode::from(exit::FAILED);
            }
            daemon::limit_malloc_arenas();
            let log = zwlock::logging::init(&config.log.level);
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("zwlock: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(daemon::run(config, config_path, log)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "daemon failed");
                    eprintln!("zwlock: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Setup {
            config,
            port,
            list,
            by_id,
            json,
        } => finish_any(
            setup(&config, port, list, &by_id, json),
            "zwlock setup",
            exit::FAILED,
        ),
        Command::Config {
            action: ConfigAction::Check { path, json },
        } => {
            let result = Config::load(&path);
            let printed = if json {
                output::line(
                    serde_json::to_string_pretty(&json!({
                        "path": path,
                        "ok": result.is_ok(),
                        "error": result.as_ref().err().map(|e| e.to_string()),
                    }))
                    .unwrap_or_default(),
                )
            } else {
                match &result {
                    Ok(_) => output::line(format!("{}: ok", path.display())),
                    Err(e) => {
                        eprintln!("{e}");
                        Ok(())
                    }
                }
            };
            match (result, printed) {
                (Err(_), _) => ExitCode::from(exit::USAGE),
                (Ok(_), r) => finish(r),
            }
        }
        Command::Keys {
            action:
                KeysAction::Import {
                    config,
                    force,
                    file,
                    json,
                },
        } => finish_any(
            keys_import(&config, force, file.as_deref()).and_then(|(path, names)| {
                let said = if json {
                    output::line(serde_json::to_string_pretty(&json!({
                        "keys_file": path, "imported": names,
                    }))?)
                } else {
                    output::line(format!(
                        "imported {} into {} (other classes got new random keys); restart zwlock to use them",
                        names.join(", "),
                        path.display()
                    ))
                };
                said.map_err(anyhow::Error::from)
            }),
            "zwlock keys",
            exit::USAGE,
        ),
        Command::Sim { action } => match runtime()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(sim_command(action)))
        {
            Ok(code) => code,
            Err(e) => {
                eprintln!("zwlock sim: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Decode {
            json,
            show_codes,
            node_id_bits,
            payload,
            frames,
        } => {
            let opts = DecodeOptions {
                json,
                payload_mode: payload,
                describe: DescribeOptions {
                    show_codes,
                    node_id_type: if node_id_bits == 16 {
                        NodeIdType::Bits16
                    } else {
                        NodeIdType::Bits8
                    },
                },
            };
            let stdin = std::io::stdin();
            if frames.is_empty() && stdin.is_terminal() {
                eprintln!("zwlock decode: reading frames from stdin, one per line (Ctrl-D ends)");
            }
            let stdout = std::io::stdout();
            match decode::run(&frames, BufReader::new(stdin.lock()), stdout.lock(), &opts) {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(exit::FAILED),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("zwlock decode: {e}");
                    ExitCode::from(exit::USAGE)
                }
            }
        }
    }
}

async fn sim_command(action: SimAction) -> anyhow::Result<ExitCode> {
    match action {
        SimAction::Serve {
            config,
            network,
            listen,
            control: control_path,
        } => {
            let _ = zwlock::logging::init("info");
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            // Either a simulator file ([[network]]) or a daemon config ([[sim.network]]).
            let sim_config = match SimConfig::from_toml(&text) {
                Ok(c) if !c.network.is_empty() => c,
                _ => Config::parse(&text, &config.display().to_string())?.sim_config(),
            };
            let name = match network {
                Some(n) => n,
                None => sim_config
                    .network
                    .first()
                    .map(|n| n.name.clone())
                    .context("the file defines no simulated network")?,
            };
            let sim = Simulator::new(sim_config);
            let net = sim
                .network(&name)
                .with_context(|| format!("no simulated network '{name}'"))?;
            let addr = listen
                .strip_prefix("tcp://")
                .with_context(|| format!("{listen}: expected tcp://HOST:PORT"))?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            if let Some(p) = control_path {
                let s = sim.clone();
                tokio::spawn(async move {
                    if let Err(e) = control::serve(s, &p).await {
                        tracing::error!(error = %e, "control socket failed");
                    }
                });
            }
            tracing::info!(network = %name, %listen, "simulator serving");
            loop {
                let (mut tcp, peer) = listener.accept().await?;
                let _ = tcp.set_nodelay(true);
                let mut stick = match net.connect() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "connection refused");
                        continue;
                    }
                };
                tracing::info!(%peer, "client connected");
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut stick).await;
                    tracing::info!(%peer, "client disconnected");
                });
            }
        }
        SimAction::Control {
            socket,
            network,
            node,
            action,
            pin,
            slot,
            level,
            faults,
        } => {
            let faults = faults
                .map(|f| serde_json::from_str(&f))
                .transpose()
                .context("--faults: not JSON")?;
            let req = ControlRequest {
                network,
                node,
                action,
                pin,
                slot,
                level,
                faults,
            };
            let answer = control::request(&socket, &req)
                .await
                .with_context(|| format!("control socket {}", socket.display()))?;
            if let Err(e) = output::line(&answer) {
                if !matches!(e, CliError::ClosedPipe) {
                    return Err(e.into());
                }
            }
            Ok(if answer["ok"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
