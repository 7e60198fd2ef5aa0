//! What users ask for: the bodies of create and update, as the API deserializes them.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

/// A request to create an access code.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateRequest {
    pub device_id: Uuid,
    pub code: Option<String>,
    pub name: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub preferred_code_length: Option<u8>,
    pub common_code_key: Option<String>,
    pub allow_external_modification: Option<bool>,
    pub is_external_modification_allowed: Option<bool>,
    pub is_one_time_use: Option<bool>,
    pub is_offline_access_code: Option<bool>,
    pub prefer_native_scheduling: Option<bool>,
    pub use_backup_access_code_pool: Option<bool>,
    /// Answer only once the lock has the code (or the wait runs out): Seam's `sync`.
    pub sync: Option<bool>,
    /// The request's idempotency key (a header, not a parameter).
    #[serde(skip)]
    pub idempotency: Option<IdempotencyKey>,
}

/// A create's idempotency key: the route it came on, the key, and a fingerprint of the
/// request's parameters (the same key with other parameters is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub route: String,
    pub key: String,
    pub fingerprint: String,
}

/// A request to change an access code; absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpdateRequest {
    pub access_code_id: Uuid,
    pub code: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub starts_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "double_option")]
    pub ends_at: Option<Option<DateTime<Utc>>>,
    #[serde(rename = "type")]
    pub code_type: Option<String>,
    pub allow_external_modification: Option<bool>,
    pub is_external_modification_allowed: Option<bool>,
    pub is_one_time_use: Option<bool>,
    pub is_offline_access_code: Option<bool>,
    pub prefer_native_scheduling: Option<bool>,
    /// Answer only once the lock has the change (or the wait runs out): Seam's `sync`.
    pub sync: Option<bool>,
}

/// `"field": null` means "unset it"; an absent field means "keep it".
fn double_option<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
