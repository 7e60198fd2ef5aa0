//! The `zwlock` binary.

use std::io::{BufReader, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use zwlock::cli::decode::{self, DecodeOptions};
use zwlock::cli::describe::DescribeOptions;
use zwlock::serialapi::NodeIdType;

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

fn parse_node_id_bits(s: &str) -> Result<u8, String> {
    match s {
        "8" => Ok(8),
        "16" => Ok(16),
        _ => Err("expected 8 or 16".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
