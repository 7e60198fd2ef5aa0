//! Errors of the Serial API message layer, and the nom glue that produces them.

use nom::IResult;

/// Why a data frame is not the message its function id says.
///
/// The frame itself was fine (its checksum matched and the link ACKed it); these errors are
/// final for that frame: parsing it again gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialApiError {
    /// The payload ended before a required field.
    #[error("{message}: payload truncated")]
    Truncated { message: &'static str },
    /// A field holds a value the message cannot have.
    #[error("{message}: {reason}")]
    Invalid {
        message: &'static str,
        reason: String,
    },
    /// A node id above 255 cannot be written while the stick uses 8-bit node ids.
    #[error("node id {node_id} needs 16-bit node ids")]
    NodeIdTooLarge { node_id: u16 },
    /// A command class payload longer than a frame can carry.
    #[error("{message}: command of {len} bytes is too long")]
    CommandTooLong { message: &'static str, len: usize },
}

/// Run a nom parser over a whole payload, mapping nom's errors to [`SerialApiError`].
///
/// Trailing bytes are allowed: firmware adds fields over the years.
pub(crate) fn parse_with<'a, T>(
    message: &'static str,
    input: &'a [u8],
    mut parser: impl FnMut(&'a [u8]) -> IResult<&'a [u8], T>,
) -> Result<T, SerialApiError> {
    match parser(input) {
        Ok((_, v)) => Ok(v),
        Err(nom::Err::Incomplete(_)) => Err(SerialApiError::Truncated { message }),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => match e.code {
            nom::error::ErrorKind::Eof => Err(SerialApiError::Truncated { message }),
            other => Err(SerialApiError::Invalid {
                message,
                reason: format!("unexpected bytes ({other:?})"),
            }),
        },
    }
}
