//! The byte layer: transports to the stick, Serial API framing, and the link rules.
//!
//! Knows nothing of function ids or command classes.

pub mod codec;
pub mod frame;
pub mod link;
pub mod transport;

pub use codec::{Received, SerialCodec};
pub use frame::{DataFrame, Frame, FrameType};
pub use link::{LinkConfig, LinkError, LinkEvent, LinkHandle};
pub use transport::{PortUrl, TransportError};
