//! Typed Serial API messages: function ids, requests, responses and callbacks.
//!
//! Knows nothing of what command classes mean.

pub mod function;

pub use function::FunctionId;
