//! The `zwlock` command line as clap reads it: every subcommand and option with its help
//! text (a test walks the tree to keep it so), and the exit codes in `zwlock --help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::commands::{ClientOpts, CodesCommand, DevicesCommand, RemoteOpts, UnmanagedCommand};
use super::output::EXIT_CODES_HELP;

#[derive(Debug, Parser)]
#[command(
    name = "zwlock",
    version,
    about = "Local access-code gateway for Z-Wave keypad locks",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// --broker and --hub: the client commands reach a hub through an MQTT broker.
    #[command(flatten)]
    pub remote: RemoteOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Managed access codes.
    #[command(after_help = EXIT_CODES_HELP)]
    Codes {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        cmd: CodesCommand,
    },
    /// Codes on the locks that zwlock does not manage.
    #[command(after_help = EXIT_CODES_HELP)]
    Unmanaged {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        cmd: UnmanagedCommand,
    },
    /// The locks.
    #[command(after_help = EXIT_CODES_HELP)]
    Devices {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        cmd: DevicesCommand,
    },
    /// Events (the last day; --follow for new ones as they happen).
    #[command(after_help = EXIT_CODES_HELP)]
    Events {
        #[command(flatten)]
        opts: ClientOpts,
        /// RFC 3339 time to list from (default: a day ago).
        #[arg(long)]
        since: Option<String>,
        /// Keep printing new events as they happen (until interrupted).
        #[arg(long)]
        follow: bool,
    },
    /// Add a lock to the network: learn mode opens, press the lock's inclusion button. Locks
    /// with S2 security need the 5-digit PIN printed on them (asked for when not given).
    #[command(after_help = EXIT_CODES_HELP)]
    Include {
        #[command(flatten)]
        opts: ClientOpts,
        /// The 5-digit PIN printed on the lock (its DSK), for S2.
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
    #[command(after_help = EXIT_CODES_HELP)]
    Exclude {
        #[command(flatten)]
        opts: ClientOpts,
        /// Seconds to wait for the lock's button (10-600).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Forget a lock that is gone for good (the stick checks it no longer answers).
    #[command(after_help = EXIT_CODES_HELP)]
    RemoveFailed {
        #[command(flatten)]
        opts: ClientOpts,
        /// The lock's device id.
        device_id: String,
    },
    /// Lock a door.
    #[command(after_help = EXIT_CODES_HELP)]
    Lock {
        #[command(flatten)]
        opts: ClientOpts,
        /// The lock's device id.
        device_id: String,
    },
    /// Unlock a door.
    #[command(after_help = EXIT_CODES_HELP)]
    Unlock {
        #[command(flatten)]
        opts: ClientOpts,
        /// The lock's device id.
        device_id: String,
    },
    /// Run the daemon (as the service does; see systemd/zwlock.service).
    Daemon {
        /// Configuration file.
        #[arg(long, default_value = "/etc/zwlock/zwlock.toml")]
        config: PathBuf,
    },
    /// Choose the stick: list the ones under /dev/serial/by-id/ and set serial.port.
    #[command(after_help = EXIT_CODES_HELP)]
    Setup {
        /// Configuration file to write serial.port into.
        #[arg(long, default_value = "/etc/zwlock/zwlock.toml")]
        config: PathBuf,
        /// Use this port (a /dev/serial/by-id/ path, a tty, tcp://HOST:PORT) without asking.
        #[arg(long)]
        port: Option<String>,
        /// Only list the sticks found; change nothing.
        #[arg(long)]
        list: bool,
        /// Where to look for sticks.
        #[arg(long, default_value = crate::setup::BY_ID, hide = true)]
        by_id: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Check PATH: exit 0 when it is usable, else print what is wrong (exit 2).
    Check {
        /// The configuration file.
        path: PathBuf,
        /// Print JSON ({"path", "ok", "error"}).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Take over the keys of the software that included the locks, so they keep working
    /// without re-inclusion: zwave-js's securityKeys (S0_Legacy, S2_Unauthenticated,
    /// S2_Authenticated, S2_AccessControl, 16 bytes hex each) as NAME = hex lines, or
    /// zwave-js's JSON (Z-Wave JS UI's whole settings.json works). Reads FILE, or stdin.
    Import {
        /// The daemon's configuration (it names the keys file).
        #[arg(long, default_value = "/etc/zwlock/zwlock.toml")]
        config: PathBuf,
        /// Replace existing keys (locks included with them stop answering).
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The keys (stdin when not given).
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SimAction {
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
    /// Act on a running simulation through its control socket (prints its JSON answer).
    Control {
        /// The simulation's control socket.
        #[arg(long)]
        socket: PathBuf,
        /// The simulated network.
        #[arg(long, default_value = "demo")]
        network: String,
        /// The lock's node id.
        #[arg(long)]
        node: Option<u8>,
        /// enter, program, delete, factory_reset, power_cycle, button (inclusion),
        /// external_write, out_of_range, in_range, battery, unplug, plug, faults, show
        action: String,
        /// The PIN, for enter, program and external_write.
        #[arg(long)]
        pin: Option<String>,
        /// The slot, for program, delete and external_write.
        #[arg(long)]
        slot: Option<u16>,
        /// The battery level in percent, for battery.
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand and option, at every depth, says what it is for.
    #[test]
    fn every_subcommand_and_option_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let p = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(p.clone());
                }
                walk(sub, &p, missing);
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if ["help", "version"].contains(&id) {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "zwlock", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
        Cli::command().debug_assert();
    }

    #[test]
    fn help_names_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("3 the daemon is not reachable"), "{help}");
    }
}
