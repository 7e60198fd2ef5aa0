//! Small helpers shared by several layers.

pub mod hex;
pub mod owner;
pub mod redact;
