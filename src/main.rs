//! The `zwlock` binary.

use std::io::{BufReader, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::path::PathBuf;

use anyhow::Context;
use zwlock::cli::commands::{
    self, CliError, ClientOpts, CodesCommand, DevicesCommand, UnmanagedCommand,
};
use zwlock::cli::decode::{self, DecodeOptions};
use zwlock::cli::describe::DescribeOptions;
use zwlock::config::Config;
use zwlock::daemon;
use zwlock::serialapi::NodeIdType;
use zwlock::sim::control::{self, ControlRequest};
use zwlock::sim::{SimConfig, Simulator};

#[derive(Parser)]
#[command(
    name = "zwlock",
    version,
    about = "Local access-code gateway for Z-Wave keypad locks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Managed access codes.
    Codes {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        cmd: CodesCommand,
    },
    /// Codes on the locks that zwlock does not manage.
    Unmanaged {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        cmd: UnmanagedCommand,
    },
    /// The locks.
    Devices {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        cmd: DevicesCommand,
    },
    /// Events (the last day; --follow for new ones as they happen).
    Events {
        #[command(flatten)]
        opts: ClientOpts,
        /// RFC 3339 time to list from.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        follow: bool,
    },
    /// Add a lock to the network: learn mode opens, press the lock's inclusion button. Locks
    /// with S2 security need the 5-digit PIN printed on them (asked for when not given).
    Include {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        pin: Option<String>,
        /// Seconds to wait for the lock's button (10-600).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Accept a lock that does not ask for S2 Access Control.
        #[arg(long)]
        any_security: bool,
    },
    /// Remove a lock from the network: learn mode opens, press the lock's button.
    Exclude {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Forget a lock that is gone for good (the stick checks it no longer answers).
    RemoveFailed {
        #[command(flatten)]
        opts: ClientOpts,
        device_id: String,
    },
    /// Lock a door.
    Lock {
        #[command(flatten)]
        opts: ClientOpts,
        device_id: String,
    },
    /// Unlock a door.
    Unlock {
        #[command(flatten)]
        opts: ClientOpts,
        device_id: String,
    },
    /// Run the daemon.
    Daemon {
        /// Configuration file.
        #[arg(long, default_value = "/etc/zwlock/zwlock.toml")]
        config: PathBuf,
    },
    /// Check a configuration file without starting anything.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// The Z-Wave network keys (S0, S2).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The built-in simulator: serve it to other programs, or act on a running one.
    Sim {
        #[command(subcommand)]
        action: SimAction,
    },
    /// Decode Serial API frames given as hex (arguments, or stdin one per line).
    Decode {
        /// Print one JSON object per frame.
        #[arg(long)]
        json: bool,
        /// Show PINs instead of ****.
        #[arg(long)]
        show_codes: bool,
        /// Node id width of the stick that wrote the frames (16 after SetNodeIdType).
        #[arg(long, default_value_t = 8, value_parser = parse_node_id_bits)]
        node_id_bits: u8,
        /// Input lines are bare command class payloads (e.g. `63 03 05 01 31 32 33 34`).
        #[arg(long)]
        payload: bool,
        /// Frames as hex; read stdin when none are given.
        frames: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Check PATH: exit 0 when it is usable, else print what is wrong.
    Check { path: PathBuf },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Take over the keys of the software that included the locks (e.g. zwave-js's
    /// securityKeys: S0_Legacy, S2_Unauthenticated, S2_Authenticated, S2_AccessControl, 16
    /// bytes hex each), so they keep working without re-inclusion. Reads FILE, or stdin.
    Import {
        #[arg(long, default_value = "/etc/zwlock/zwlock.toml")]
        config: PathBuf,
        /// Replace existing keys (locks included with them stop answering).
        #[arg(long)]
        force: bool,
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SimAction {
    /// Expose a simulated network on a TCP port (as ser2net would expose a stick).
    Serve {
        /// File with [[network]] tables, or a daemon config with [[sim.network]] tables.
        #[arg(long)]
        config: PathBuf,
        /// Network to serve (the first one when omitted).
        #[arg(long)]
        network: Option<String>,
        /// tcp://127.0.0.1:PORT
        #[arg(long, default_value = "tcp://127.0.0.1:5555")]
        listen: String,
        /// Also open a control socket here.
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// Act on a running simulation through its control socket.
    Control {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long, default_value = "demo")]
        network: String,
        #[arg(long)]
        node: Option<u8>,
        /// enter, program, delete, factory_reset, power_cycle, button (inclusion), external_write, out_of_range, in_range,
        /// battery, unplug, plug, faults, show
        action: String,
        #[arg(long)]
        pin: Option<String>,
        #[arg(long)]
        slot: Option<u16>,
        #[arg(long)]
        level: Option<u8>,
        /// For `faults`: link faults as JSON, e.g. '{"nak_host_frame":0.1}' ('{}' stops them).
        #[arg(long)]
        faults: Option<String>,
    },
}

fn parse_node_id_bits(s: &str) -> Result<u8, String> {
    match s {
        "8" => Ok(8),
        "16" => Ok(16),
        _ => Err("expected 8 or 16".into()),
    }
}

/// `zwlock keys import`: parse, then write the keys file the configuration names.
fn keys_import(
    config: &std::path::Path,
    force: bool,
    file: Option<&std::path::Path>,
) -> anyhow::Result<String> {
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
    let names: Vec<&str> = given.iter().map(|c| c.zwave_js_name()).collect();
    Ok(format!(
        "imported {} into {} (other classes got new random keys); restart zwlock to use them",
        names.join(", "),
        path.display()
    ))
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client_result = |r: Result<(), CliError>| match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zwlock: {e}");
            ExitCode::from(e.exit_code())
        }
    };
    match cli.command {
        Command::Codes { opts, cmd } => client_result(commands::codes(opts, cmd)),
        Command::Unmanaged { opts, cmd } => client_result(commands::unmanaged(opts, cmd)),
        Command::Devices { opts, cmd } => client_result(commands::devices(opts, cmd)),
        Command::Events {
            opts,
            since,
            follow,
        } => client_result(commands::events(opts, since, follow)),
        Command::Include {
            opts,
            pin,
            timeout,
            any_security,
        } => client_result(commands::include(opts, pin, timeout, any_security)),
        Command::Exclude { opts, timeout } => client_result(commands::exclude(opts, timeout)),
        Command::RemoveFailed { opts, device_id } => {
            client_result(commands::remove_failed(opts, &device_id))
        }
        Command::Lock { opts, device_id } => client_result(commands::door(opts, &device_id, true)),
        Command::Unlock { opts, device_id } => {
            client_result(commands::door(opts, &device_id, false))
        }
        Command::Daemon {
            config: config_path,
        } => {
            let config = match Config::load(&config_path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("zwlock: {e}");
                    return ExitCode::from(2);
                }
            };
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
        Command::Config {
            action: ConfigAction::Check { path },
        } => match Config::load(&path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Keys {
            action:
                KeysAction::Import {
                    config,
                    force,
                    file,
                },
        } => match keys_import(&config, force, file.as_deref()) {
            Ok(msg) => {
                println!("{msg}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("zwlock keys: {e}");
                ExitCode::from(2)
            }
        },
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
                Ok(_) => ExitCode::from(1),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("zwlock decode: {e}");
                    ExitCode::from(2)
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
            println!("{answer}");
            Ok(if answer["ok"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
