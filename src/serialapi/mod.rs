//! Typed Serial API messages: function ids, requests, responses and callbacks.
//!
//! Knows nothing of what command classes mean: node commands are opaque bytes here.

pub mod application;
pub mod controller;
pub mod error;
pub mod function;
pub mod message;
pub mod network;
pub mod node_id;
pub mod session;
pub mod transmit;

pub use error::SerialApiError;
pub use function::FunctionId;
pub use message::{HostRequest, Message, Origin, StickRequest, StickResponse};
pub use node_id::{NodeId, NodeIdType};
pub use transmit::{SendDataCallback, SendDataRequest, TransmitStatus, TxReport};
