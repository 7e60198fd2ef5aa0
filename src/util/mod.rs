//! Small helpers shared by several layers.

pub mod hex;
pub mod redact;
