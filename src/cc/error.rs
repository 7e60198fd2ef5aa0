//! Errors of the command class layer and the nom glue that produces them.

use nom::IResult;

/// Why bytes are not the command their class and command ids say.
///
/// Final: the same bytes always give the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CcError {
    #[error("empty command")]
    Empty,
    #[error("{class} {command}: truncated")]
    Truncated {
        class: &'static str,
        command: &'static str,
    },
    #[error("{class} {command}: {reason}")]
    Invalid {
        class: &'static str,
        command: &'static str,
        reason: String,
    },
}

/// Run a nom parser over a command payload (the bytes after class and command).
pub(crate) fn parse_cc<'a, T>(
    class: &'static str,
    command: &'static str,
    input: &'a [u8],
    mut parser: impl FnMut(&'a [u8]) -> IResult<&'a [u8], T>,
) -> Result<T, CcError> {
    match parser(input) {
        Ok((_, v)) => Ok(v),
        Err(nom::Err::Incomplete(_)) => Err(CcError::Truncated { class, command }),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => match e.code {
            nom::error::ErrorKind::Eof => Err(CcError::Truncated { class, command }),
            nom::error::ErrorKind::Verify => Err(CcError::Invalid {
                class,
                command,
                reason: "field out of range".into(),
            }),
            other => Err(CcError::Invalid {
                class,
                command,
                reason: format!("unexpected bytes ({other:?})"),
            }),
        },
    }
}
