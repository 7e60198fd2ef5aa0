//! Plays the stick's side of a fixture and checks the host's side byte for byte.
//!
//! `<` lines are written to the host (after any `@+N` delay); `>` lines are read from the host
//! and compared, with `??` matching any byte. A `@+N` before a `>` line asserts that the host
//! wrote those bytes N after the previous step (within a tolerance). Run it on a paused tokio
//! clock and the timing checks are exact and instant.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::fixture::{matches, pattern_bytes, pattern_to_string, Direction, Fixture, Step};
use crate::serial::transport::BoxedStream;
use crate::util::hex;

/// How strict the player is.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// How long to wait for the host's bytes of a `>` line.
    pub host_timeout: Duration,
    /// Allowed difference between a `@+N` line and the host's actual timing.
    pub timing_tolerance: Duration,
    /// After the last step, the host must stay silent this long.
    pub quiet_after: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            host_timeout: Duration::from_secs(30),
            timing_tolerance: Duration::from_millis(10),
            quiet_after: Duration::from_millis(100),
        }
    }
}

/// Where a replay went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("line {line}: host wrote [{actual}], fixture expects [{expected}]")]
    Mismatch {
        line: usize,
        expected: String,
        actual: String,
    },
    #[error("line {line}: host wrote nothing for {waited:?}, fixture expects [{expected}] (got [{partial}] so far)")]
    HostSilent {
        line: usize,
        expected: String,
        partial: String,
        waited: Duration,
    },
    #[error("line {line}: host wrote after {actual:?}, fixture expects {expected:?}")]
    Timing {
        line: usize,
        expected: Duration,
        actual: Duration,
    },
    #[error("host wrote [{bytes}] after the end of the fixture")]
    ExtraBytes { bytes: String },
    #[error("line {line}: stream closed ({reason})")]
    Closed { line: usize, reason: String },
}

/// Play `fixture` as the stick over `stream` (the stick's end of a connection to the host).
pub async fn play_stick<S>(
    fixture: &Fixture,
    mut stream: S,
    opts: &ReplayOptions,
) -> Result<(), ReplayError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut pending_delay: Option<Duration> = None;
    let mut last = Instant::now();
    for step in &fixture.steps {
        match step {
            Step::Delay { after, .. } => {
                *pending_delay.get_or_insert(Duration::ZERO) += *after;
            }
            Step::Bytes {
                line,
                direction: Direction::StickToHost,
                bytes,
            } => {
                if let Some(d) = pending_delay.take() {
                    tokio::time::sleep_until(last + d).await;
                }
                let data = pattern_bytes(bytes);
                let write = async {
                    stream.write_all(&data).await?;
                    stream.flush().await
                };
                write.await.map_err(|e| ReplayError::Closed {
                    line: *line,
                    reason: e.to_string(),
                })?;
                last = Instant::now();
            }
            Step::Bytes {
                line,
                direction: Direction::HostToStick,
                bytes,
            } => {
                let mut got = vec![0u8; bytes.len()];
                let mut filled = 0;
                let deadline = Instant::now() + opts.host_timeout;
                while filled < got.len() {
                    match tokio::time::timeout_at(deadline, stream.read(&mut got[filled..])).await {
                        Err(_) => {
                            return Err(ReplayError::HostSilent {
                                line: *line,
                                expected: pattern_to_string(bytes),
                                partial: hex::encode_spaced(&got[..filled]),
                                waited: opts.host_timeout,
                            })
                        }
                        Ok(Ok(0)) => {
                            return Err(ReplayError::Closed {
                                line: *line,
                                reason: format!(
                                    "host closed the stream (got [{}])",
                                    hex::encode_spaced(&got[..filled])
                                ),
                            })
                        }
                        Ok(Ok(n)) => filled += n,
                        Ok(Err(e)) => {
                            return Err(ReplayError::Closed {
                                line: *line,
                                reason: e.to_string(),
                            })
                        }
                    }
                }
                if !matches(bytes, &got) {
                    return Err(ReplayError::Mismatch {
                        line: *line,
                        expected: pattern_to_string(bytes),
                        actual: hex::encode_spaced(&got),
                    });
                }
                let now = Instant::now();
                if let Some(expected) = pending_delay.take() {
                    let actual = now - last;
                    let diff = actual.abs_diff(expected);
                    if diff > opts.timing_tolerance {
                        return Err(ReplayError::Timing {
                            line: *line,
                            expected,
                            actual,
                        });
                    }
                }
                last = now;
            }
        }
    }
    if let Some(d) = pending_delay {
        tokio::time::sleep_until(last + d).await;
    }
    // The host must have nothing more to say.
    let mut extra = [0u8; 64];
    match tokio::time::timeout(opts.quiet_after, stream.read(&mut extra)).await {
        Ok(Ok(n)) if n > 0 => Err(ReplayError::ExtraBytes {
            bytes: hex::encode_spaced(&extra[..n]),
        }),
        _ => Ok(()),
    }
}

/// An in-memory connection whose far end plays `fixture` as the stick.
///
/// Returns the host's end (hand it to the link layer) and the player's task.
pub fn spawn_stick(
    fixture: Fixture,
    opts: ReplayOptions,
) -> (
    BoxedStream,
    tokio::task::JoinHandle<Result<(), ReplayError>>,
) {
    let (host, stick) = tokio::io::duplex(4096);
    let task = tokio::spawn(async move { play_stick(&fixture, stick, &opts).await });
    (Box::new(host), task)
}
