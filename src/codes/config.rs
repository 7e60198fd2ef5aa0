//! How the engine is timed and bounded (from `[codes]` in the configuration).

use std::time::Duration;

/// Timing of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A code still not set (or removed) this long after the first try gets a delay warning.
    pub delay_warning_after: Duration,
    /// ... and a failure error after this long, or after `failure_attempts` failed tries.
    pub failure_after: Duration,
    pub failure_attempts: u32,
    /// Backoff between tries of one code: first, and longest.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// After the lock refused a code (Supervision FAIL), try again only this much later.
    pub refusal_retry: Duration,
    /// How long `code_modified_external_to_seam` stays on a code after it was put back.
    pub external_modification_error_hold: Duration,
    /// Longest any one operation on a lock may take before it counts as failed.
    pub operation_timeout: Duration,
    /// How long a `sync: true` request waits for its action attempt to finish.
    pub sync_wait: Duration,
    /// The names locks get when first seen, by node id (from the configuration).
    pub lock_names: std::collections::BTreeMap<u16, String>,
    /// Reconcilers look at their lock at least this often (also guards against clock jumps).
    pub tick: Duration,
    /// Slots never allocated to managed codes, on every lock (e.g. [1] for the owner's code).
    pub reserved_slots: Vec<u16>,
    /// How locks are watched for changes made outside zwlock.
    pub watch: super::watch::WatchConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            delay_warning_after: Duration::from_secs(5 * 60),
            failure_after: Duration::from_secs(30 * 60),
            failure_attempts: 5,
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(10 * 60),
            refusal_retry: Duration::from_secs(60 * 60),
            external_modification_error_hold: Duration::from_secs(24 * 3600),
            operation_timeout: Duration::from_secs(120),
            sync_wait: Duration::from_secs(30),
            lock_names: Default::default(),
            tick: Duration::from_secs(60),
            reserved_slots: Vec::new(),
            watch: Default::default(),
        }
    }
}
