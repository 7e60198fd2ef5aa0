//! The `zwlock` command line: subcommands other than the daemon itself.

pub mod client;
pub mod commands;
pub mod decode;
pub mod describe;
