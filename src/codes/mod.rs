//! The access-code engine: the model users see, validation, slot allocation, scheduling, and
//! keeping the locks holding exactly the codes that were declared. Knows nothing of HTTP or
//! of bytes on the wire: it talks to locks through the lock port ([`crate::lock`]) and to the
//! database through the repository ([`crate::store::Repo`]).
//!
//! # Layout (data flows one way)
//!
//! * [`engine`]: the handle the API calls; intents ([`intents`], [`bulk`], [`backup`],
//!   [`unmanaged`], [`network`]) commit to the store and wake the engine task; reads
//!   ([`queries`], [`render`]) use the store's read-only connection.
//! * [`task`]: the engine task, the one owner of work on locks: it plans each lock with
//!   [`planner`] (a pure function), commits with [`apply`], acts through the lock port, and
//!   reads what the lock holds with [`watch`] (what to read, pure) and [`observe`] (what a
//!   reading means, pure where it decides).
//! * [`ctx`]: what they all share (repository, clock, configuration, events, wakes). No part
//!   below the handle knows the handle or the task.
//!
//! # Convergence rules
//!
//! 1. **Intent first.** A create, update or delete is committed before anything is sent; a
//!    write's intent (`setting`, `removing`) is committed before its frame goes out and its
//!    outcome when the lock answers. A crash anywhere loses nothing: the next start redoes
//!    what was under way.
//! 2. **Every declared intent is retried until it converges or its window ends**, with a
//!    backoff doubling from `retry_initial` and capped at `retry_max`. The delay warning
//!    (`delay_in_setting_on_device` / `delay_in_removing_from_device`) comes after
//!    `delay_warning_after`, the error (`failed_to_set_on_device` /
//!    `failed_to_remove_from_device`) after `failure_attempts` tries or `failure_after`, and
//!    both clear when the write lands.
//! 3. **A removal is never abandoned** and outranks every set on its lock: a deleted or ended
//!    code that may still open the door is the first thing done, retried on the same capped
//!    backoff for as long as it takes, refusals included. A code whose new PIN the lock refuses
//!    has its old PIN cleared from the slot: a replaced PIN never keeps working.
//! 4. **A refusal is not a lost frame.** A set the lock refuses (Supervision FAIL, or a
//!    read-back that does not hold the code) is tried again after `refusal_retry`, with the
//!    specific error where the lock said why (`duplicate_code_on_device` when it reports the
//!    PIN is already on it), `failed_to_set_on_device` otherwise. It never blocks the code
//!    silently, and a new PIN is tried at once.
//! 5. **Every code waiting for a slot says so**: each carries
//!    `no_space_for_access_code_on_device` until a slot frees, in creation order.
//! 6. **Outside changes** (see [`observe`]): without permission the code is put back and
//!    keeps `code_modified_external_to_seam` (with `change_type` and `modified_fields`) for
//!    `external_modification_error_hold` after, or until it is updated; with permission a new
//!    PIN stands and a removal releases the code (slot freed, not put back until updated).
//! 7. **Nothing is trusted after a start** until verified (see [`watch`]): a checksum where
//!    the lock has one, the managed slots read otherwise, within a start-up radio budget; a
//!    code missing from its lock is put back as any outside change is.
//! 8. **Failures are classed** ([`crate::lock::ErrorClass`]): a lock that does not answer is
//!    left alone for the time the driver says and the others go on; a stick that is not
//!    connected stops all sending until it is back (and is a 503 at the API); a permanent
//!    failure is retried on the longest backoff.
//! 9. **Nothing else is written**: only slots zwlock assigned to a managed code are written
//!    or cleared (and a slot is read before first use); unmanaged codes are never touched
//!    unless a user deletes one.

pub mod apply;
mod attempts;
mod backup;
mod bulk;
pub mod clock;
pub mod config;
pub mod ctx;
pub mod engine;
pub mod error;
mod inbox;
mod intents;
pub mod model;
pub mod network;
pub mod observe;
mod ops;
pub mod planner;
mod queries;
mod render;
pub mod requests;
pub mod schedule;
mod task;
mod unmanaged;
pub mod validate;
pub mod watch;

pub use bulk::WhenCannotShare;
pub use clock::{Clock, SystemClock, TestClock};
pub use engine::{CreateRequest, Engine, EngineConfig, EngineError, IdempotencyKey, UpdateRequest};
pub use model::AccessCode;
pub use queries::Page;
