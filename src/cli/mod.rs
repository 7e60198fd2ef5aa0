//! The `zwlock` command line: its arguments, the client subcommands and their output, the
//! frame decoder. The daemon itself is `crate::daemon`.

pub mod args;
pub mod client;
pub mod commands;
pub mod decode;
pub mod describe;
pub mod network;
pub mod output;
pub mod progress;
