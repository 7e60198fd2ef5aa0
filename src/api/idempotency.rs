//! `Idempotency-Key` on creates: a create retried after a lost answer gets the first answer
//! again instead of making a second code.
//!
//! The first successful answer to a key is kept (in memory, bounded: [`TTL`] and
//! [`CAPACITY`] entries, oldest first out) with a fingerprint of the request's parameters.
//! The same key with the same parameters replays it; with other parameters it is a 422
//! naming the header; while the first request is still being answered, a 409. An answer
//! that is an error is not kept: nothing was created, so a retry is simply tried again.
//!
//! This is the fast path, for one run of the daemon. The engine also keeps each key with the
//! code it made, in that code's transaction ([`crate::codes::IdempotencyKey`], the store's
//! `idempotency_keys`): a retry after a restart, or after this map let the answer go, gets
//! that code as it is now.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::error::ApiError;

/// The header, as Seam and others name it.
pub const HEADER: &str = "idempotency-key";

/// How long an answer is kept.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// Answers kept at most (a create's answer is about 1.5 kB: 15 MB at the very most).
pub const CAPACITY: usize = 10_000;

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

#[derive(Debug, Clone)]
enum Entry {
    InFlight {
        fingerprint: u64,
    },
    Done {
        fingerprint: u64,
        status: StatusCode,
        body: Bytes,
    },
}

#[derive(Default)]
struct Inner {
    entries: HashMap<(String, String), (Instant, Entry)>,
    /// Keys in the order they were first seen (for expiry and the capacity bound).
    order: VecDeque<(Instant, (String, String))>,
}

/// The kept answers of one daemon (both listeners share them).
#[derive(Clone, Default)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
}

/// What to do with a request that has a key.
#[derive(Debug)]
pub enum Claim {
    /// Go ahead; report the answer with [`Store::finish`].
    New(Ticket),
    /// Answer this, as the first time.
    Replay(StatusCode, Bytes),
}

/// A request with a key, under way. Dropped without [`Store::finish`] (a panic), the key is
/// free again.
#[derive(Debug)]
pub struct Ticket {
    store: Store,
    key: (String, String),
    done: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            self.store.lock().entries.remove(&self.key);
        }
    }
}

/// The fingerprint of a request's parameters: FNV-1a (64 bits) of their canonical JSON (keys
/// sorted). Stable across builds, as it must be: the store keeps it with the key, and a
/// retry after an upgrade must still match. (Not a secret: it tells a retry from a reuse.)
pub fn fingerprint(params: &Map<String, Value>) -> u64 {
    let text = Value::Object(params.clone()).to_string();
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The key of a request, if it has one; a malformed one is a 400 naming the header.
pub fn key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = |why: &str| ApiError::invalid_fields(vec![("Idempotency-Key".into(), why.into())]);
    let s = v.to_str().map_err(|_| bad("must be visible ASCII"))?;
    if s.is_empty() || s.len() > MAX_KEY_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(&format!(
            "must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(Some(s.to_string()))
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "idempotency::Store({} entries)", self.len())
    }
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claim `key` on `route` for a request with `fingerprint`, at `now`.
    pub fn claim(
        &self,
        route: &str,
        key: &str,
        fingerprint: u64,
        now: Instant,
    ) -> Result<Claim, ApiError> {
        let mut inner = self.lock();
        inner.expire(now);
        let k = (route.to_string(), key.to_string());
        match inner.entries.get(&k).map(|(_, e)| e.clone()) {
            Some(Entry::Done {
                fingerprint: f,
                status,
                body,
            }) if f == fingerprint => return Ok(Claim::Replay(status, body)),
            Some(Entry::InFlight { fingerprint: f }) if f == fingerprint => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_use",
                    "Idempotency-Key: a request with this key is still being answered; retry once it is",
                ))
            }
            Some(_) => return Err(ApiError::key_reused()),
            None => {}
        }
        while inner.entries.len() >= CAPACITY {
            let Some((t, oldest)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&oldest).is_some_and(|(at, _)| *at == t) {
                inner.entries.remove(&oldest);
            }
        }
        inner
            .entries
            .insert(k.clone(), (now, Entry::InFlight { fingerprint }));
        inner.order.push_back((now, k.clone()));
        Ok(Claim::New(Ticket {
            store: self.clone(),
            key: k,
            done: false,
        }))
    }

    /// The answer to a claimed request: kept when it is a success, forgotten otherwise.
    pub fn finish(&self, mut ticket: Ticket, status: StatusCode, body: &Bytes) {
        ticket.done = true;
        let mut inner = self.lock();
        if !status.is_success() {
            inner.entries.remove(&ticket.key);
            return;
        }
        if let Some((_, entry)) = inner.entries.get_mut(&ticket.key) {
            if let Entry::InFlight { fingerprint } = *entry {
                *entry = Entry::Done {
                    fingerprint,
                    status,
                    body: body.clone(),
                };
            }
        }
    }

    /// Answers kept (and requests under way).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < TTL {
                break;
            }
            let (t, k) = self.order.pop_front().expect("front exists");
            // Only if the entry is the one this order slot was made for.
            if self.entries.get(&k).is_some_and(|(at, _)| *at == t) {
                self.entries.remove(&k);
            }
        }
        // Order slots of entries removed early (failures) are dropped lazily above; keep
        // the deque from growing past the map by more than the capacity.
        if self.order.len() > 2 * CAPACITY {
            let entries = &self.entries;
            self.order
                .retain(|(t, k)| entries.get(k).is_some_and(|(at, _)| at == t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "/access_codes/create";

    fn new(c: Result<Claim, ApiError>) -> Ticket {
        match c {
            Ok(Claim::New(t)) => t,
            other => panic!("expected a new claim, got {other:?}"),
        }
    }

    #[test]
    fn a_retry_gets_the_first_answer_and_other_parameters_are_refused() {
        let s = Store::default();
        let t0 = Instant::now();
        let t = new(s.claim(R, "k1", 7, t0));
        // The same key while the first is under way.
        let e = s.claim(R, "k1", 7, t0).unwrap_err();
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert!(e.message.contains("Idempotency-Key"));
        s.finish(t, StatusCode::OK, &Bytes::from_static(b"first"));
        match s.claim(R, "k1", 7, t0 + Duration::from_secs(60)).unwrap() {
            Claim::Replay(status, body) => {
                assert_eq!(status, StatusCode::OK);
                assert_eq!(&body[..], b"first");
            }
            other => panic!("{other:?}"),
        }
        let e = s.claim(R, "k1", 8, t0).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.validation[0].0, "Idempotency-Key");
        // Keys are per route.
        new(s.claim("/access_codes/create_multiple", "k1", 8, t0));
    }

    #[test]
    fn failures_are_not_kept_and_answers_expire() {
        let s = Store::default();
        let t0 = Instant::now();
        let t = new(s.claim(R, "k", 1, t0));
        s.finish(t, StatusCode::SERVICE_UNAVAILABLE, &Bytes::new());
        let t = new(s.claim(R, "k", 1, t0));
        s.finish(t, StatusCode::OK, &Bytes::from_static(b"x"));
        assert!(matches!(
            s.claim(R, "k", 1, t0 + TTL - Duration::from_secs(1)),
            Ok(Claim::Replay(..))
        ));
        new(s.claim(R, "k", 1, t0 + TTL));
        // A ticket dropped unfinished frees its key.
        let t = new(s.claim(R, "p", 1, t0 + TTL));
        drop(t);
        new(s.claim(R, "p", 1, t0 + TTL));
    }

    #[test]
    fn the_store_is_bounded() {
        let s = Store::default();
        let t0 = Instant::now();
        for i in 0..CAPACITY + 50 {
            let t = new(s.claim(R, &format!("k{i}"), 1, t0));
            s.finish(t, StatusCode::OK, &Bytes::from_static(b"x"));
        }
        assert_eq!(s.len(), CAPACITY);
        // The oldest went first.
        new(s.claim(R, "k0", 1, t0));
        assert!(matches!(
            s.claim(R, &format!("k{}", CAPACITY + 49), 1, t0),
            Ok(Claim::Replay(..))
        ));
    }

    #[test]
    fn malformed_keys_name_the_header() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(key(&h).unwrap(), None);
        h.insert(HEADER, "retry-1".parse().unwrap());
        assert_eq!(key(&h).unwrap().as_deref(), Some("retry-1"));
        h.insert(HEADER, "a b".parse().unwrap());
        assert_eq!(key(&h).unwrap_err().validation[0].0, "Idempotency-Key");
        h.insert(HEADER, "x".repeat(300).parse().unwrap());
        assert!(key(&h).is_err());
    }

    #[test]
    fn fingerprints_ignore_key_order() {
        let a: Map<String, Value> = serde_json::from_str(r#"{"a":1,"b":"x"}"#).unwrap();
        let b: Map<String, Value> = serde_json::from_str(r#"{"b":"x","a":1}"#).unwrap();
        let c: Map<String, Value> = serde_json::from_str(r#"{"b":"y","a":1}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
