//! The lock port: what the access-code engine asks of a lock, and what it hears from locks,
//! in the engine's terms (slots, PINs, windows), never in command classes.
//!
//! [`LockPort`] is the narrow trait the engine talks to: set a code in a slot, clear a slot,
//! read one slot or a page of slots, read the checksum, work the bolt. Every answer is typed
//! in the manner of tokio-modbus: `Ok(Ok(_))` the lock did it (confirmed, or done without a way
//! to check); `Ok(Err(Refusal))` the lock heard and said no, so sending the same again soon will
//! not help; `Err(PortError)` the request did not get through, with an [`ErrorClass`] that says
//! whether and when retrying can help. [`PortEvent`]s are what locks say on their own.
//!
//! [`zwave::ZwavePort`] implements it over the driver and owns every command-class choice:
//! User Code Set or Extended Set, Extended Get paging, the read-back that verifies a write the
//! lock cannot supervise, the year-day schedule programmed before a code, and the alarm tables
//! that turn a lock's notifications into events.

pub mod alarms;
pub mod proof;
pub mod schedule;
pub mod zwave;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::driver::DriverError;
pub use crate::driver::ErrorClass;

/// What the port needs to know of a lock to choose its commands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockCaps {
    pub node: u16,
    pub slots: u16,
    pub user_code_version: u8,
    /// Extended User Code Get answers with several codes per report.
    pub bulk_reports: bool,
    pub checksum: bool,
    /// Schedule Entry Lock and Time Parameters.
    pub schedule: bool,
}

/// What a slot holds, as read from the lock.
#[derive(Clone, PartialEq, Eq)]
pub enum SlotContent {
    Empty,
    /// A readable code.
    Code(String),
    /// A code the lock will not show (masked or unreadable).
    Hidden,
    /// The lock says this user id does not exist.
    Unavailable,
}

impl std::fmt::Debug for SlotContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotContent::Empty => f.write_str("Empty"),
            SlotContent::Code(_) => f.write_str("Code(****)"),
            SlotContent::Hidden => f.write_str("Hidden"),
            SlotContent::Unavailable => f.write_str("Unavailable"),
        }
    }
}

/// One slot as the lock reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotReading {
    pub slot: u16,
    pub content: SlotContent,
    /// The code is there but disabled (User ID status 2): it does not open the door.
    pub disabled: bool,
}

/// A page of a whole-lock read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub readings: Vec<SlotReading>,
    /// Where the next page starts; `None` when the read is complete.
    pub next: Option<u16>,
}

/// A window the lock enforces itself (a year-day schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// Put a code in a slot.
#[derive(Clone)]
pub struct SetCode<'a> {
    pub slot: u16,
    pub pin: &'a str,
    /// Program this window first, so the code never works outside it.
    pub schedule: Option<Window>,
    /// The slot carries a schedule an earlier code left: switch it off first.
    pub clear_schedule: bool,
    /// The time to set the lock's clock to, with a schedule.
    pub now: DateTime<Utc>,
}

impl std::fmt::Debug for SetCode<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetCode")
            .field("slot", &self.slot)
            .field("schedule", &self.schedule)
            .field("clear_schedule", &self.clear_schedule)
            .finish_non_exhaustive()
    }
}

/// A write the lock did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The lock confirmed it (Supervision), or a read-back shows exactly what was written.
    Confirmed,
    /// Done as far as the lock lets anyone see: the read-back shows an occupied slot whose code
    /// it hides.
    Unverified,
}

/// The lock heard the request and did not do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Supervision FAIL: the lock would not take it (a PIN it dislikes, no room, a duplicate).
    #[error("the lock refused it (Supervision FAIL)")]
    Rejected,
    /// Supervision NO_SUPPORT: the lock does not do this at all.
    #[error("the lock does not support it")]
    NotSupported,
    /// The lock acknowledged the code but the slot reads back empty.
    #[error("the lock acknowledged the code but did not keep it")]
    NotKept,
    /// The slot reads back holding another code.
    #[error("the slot reads back a different code")]
    Different,
    /// The slot still holds a code after it was cleared.
    #[error("the slot still holds a code")]
    StillThere,
}

/// A request that did not get through.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{during}: {source}")]
pub struct PortError {
    pub class: ErrorClass,
    pub during: &'static str,
    #[source]
    pub source: DriverError,
}

impl PortError {
    pub fn new(during: &'static str, source: DriverError) -> Self {
        PortError {
            class: source.class(),
            during,
            source,
        }
    }
}

/// How a write went.
pub type Outcome<T> = Result<Result<T, Refusal>, PortError>;

/// Facts of a lock, learnt by its interview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub node: u16,
    pub caps: LockCaps,
    pub manufacturer: Option<(u16, u16, u16)>,
    /// Characters allowed in a code.
    pub characters: String,
    /// Notification v3+ Access Control events, or legacy alarms, or neither.
    pub notifications: Notifications,
    pub battery_level: Option<u8>,
    pub locked: Option<bool>,
    /// The security class the lock was granted (its codes travel inside it).
    pub security_class: Option<crate::security::SecurityClass>,
    /// The lock must be reached securely and cannot be (its key exchange failed, or it was
    /// included with keys this hub does not hold): nothing that carries a PIN or works the
    /// door goes to it, and every such request fails with a permanent error. Show it as a
    /// device error (the failure's text: "secure inclusion failed: exclude and include
    /// again") and program no codes. Its caps may then be empty (slots 0).
    pub security_failure: Option<crate::driver::SecurityFailure>,
    /// The driver's own record, to hand back at the next start (opaque to the engine).
    pub cache: Option<String>,
}

/// How a lock tells about its keypad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notifications {
    AccessControl,
    LegacyAlarm,
    None,
}

/// What the port tells the engine on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum PortEvent {
    /// The stick is up (after startup, a reconnection or a recovery).
    Connected,
    /// The stick is gone or being recovered: nothing reaches any lock.
    Disconnected {
        reason: String,
    },
    /// A lock's facts (interviewed, or handed back from the cache).
    Lock(Box<LockInfo>),
    /// A lock stopped or started answering.
    Reachable {
        node: u16,
        reachable: bool,
    },
    /// A lock sent something, at this time (it is alive).
    Contact {
        node: u16,
        at: DateTime<Utc>,
    },
    /// A lock reported slots on its own.
    Slots {
        node: u16,
        readings: Vec<SlotReading>,
        at: DateTime<Utc>,
    },
    /// Keypad use: unlocked (or locked) with the code in `slot` when known.
    Keypad {
        node: u16,
        unlocked: bool,
        slot: Option<u16>,
        at: DateTime<Utc>,
    },
    /// A code was added, changed or deleted at the lock in `slot`: read it to know.
    SlotChanged {
        node: u16,
        slot: u16,
    },
    /// Every code on the lock is gone (a factory reset, "all user codes deleted").
    AllCleared {
        node: u16,
        at: DateTime<Utc>,
    },
    /// The lock refused the code for `slot`: the same PIN is already on it.
    Duplicate {
        node: u16,
        slot: u16,
    },
    Battery {
        node: u16,
        level: u8,
    },
    Bolt {
        node: u16,
        locked: bool,
    },
    /// The lock left the network.
    Removed {
        node: u16,
    },
}

/// The engine's view of the locks.
pub trait LockPort: Send + Sync + 'static {
    /// Put a code in a slot (its schedule first when it has one).
    fn set_code<'a>(
        &'a self,
        lock: &'a LockCaps,
        req: SetCode<'a>,
    ) -> BoxFuture<'a, Outcome<Written>>;

    /// Empty a slot.
    fn clear_slot<'a>(&'a self, lock: &'a LockCaps, slot: u16) -> BoxFuture<'a, Outcome<Written>>;

    /// Switch off and erase the schedule of a slot's user.
    fn clear_schedule<'a>(
        &'a self,
        lock: &'a LockCaps,
        slot: u16,
    ) -> BoxFuture<'a, Outcome<Written>>;

    /// Read one slot.
    fn read_slot<'a>(
        &'a self,
        lock: &'a LockCaps,
        slot: u16,
    ) -> BoxFuture<'a, Result<SlotReading, PortError>>;

    /// Read the slots from `from` on, as many as one request gives.
    fn read_page<'a>(
        &'a self,
        lock: &'a LockCaps,
        from: u16,
    ) -> BoxFuture<'a, Result<Page, PortError>>;

    /// The lock's User Code checksum (`None` when it has none).
    fn checksum<'a>(&'a self, lock: &'a LockCaps) -> BoxFuture<'a, Result<Option<u16>, PortError>>;

    /// Lock or unlock the door.
    fn set_bolt<'a>(&'a self, lock: &'a LockCaps, locked: bool) -> BoxFuture<'a, Outcome<Written>>;

    /// Hand back what an earlier interview learnt (the `cache` of a [`LockInfo`]).
    fn restore(&self, cache: &str);

    /// Stop: nothing more goes to any lock. Returns once the radio is closed.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}
