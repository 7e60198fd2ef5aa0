//! The `zwlock` binary.

use std::io::{BufReader, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use zwlock::cli::decode::{self, DecodeOptions};

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
        /// Frames as hex; read stdin when none are given.
        frames: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode { json, frames } => {
            let opts = DecodeOptions { json };
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
