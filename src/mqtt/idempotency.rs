//! The `idempotency-key` user property: a request delivered twice (QoS 1 may) or sent again
//! after a lost answer is answered with the first answer instead of being acted on twice.
//!
//! Kept in memory, bounded ([`Store::new`]'s capacity, oldest first out, and a time to live),
//! per (route, key), with a fingerprint of the parameters: the same key with other parameters
//! is a 422 naming the property. A copy that arrives while the first is still being answered
//! waits for that answer (a bounded wait) and gets it too, so every delivery is answered and
//! the action happens once. Every answer is kept, errors too: the first result is the answer.
//!
//! Nothing here knows MQTT: the HTTP API's `Idempotency-Key` can share a [`Store`] (the
//! answer is a status and a JSON body).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::Value;
use tokio::sync::watch;

/// The user property (and header) name.
pub const PROPERTY: &str = "idempotency-key";

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A kept answer.
pub type Answer = (StatusCode, Arc<Value>);

#[derive(Debug)]
enum Entry {
    InFlight {
        fingerprint: u64,
        done: watch::Receiver<Option<Answer>>,
    },
    Done {
        fingerprint: u64,
        answer: Answer,
    },
}

type Key = (String, String);

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, (Instant, Entry)>,
    order: VecDeque<(Instant, Key)>,
}

/// The kept answers of one daemon.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
    ttl: Duration,
}

/// What to do with a request that has a key.
#[derive(Debug)]
pub enum Claim {
    /// Act, then [`Store::finish`] the ticket.
    New(Ticket),
    /// Answer this, as the first time.
    Replay(Answer),
    /// The first copy is being answered: wait for its answer ([`wait`]).
    Wait(watch::Receiver<Option<Answer>>),
    /// The key was used with other parameters.
    Reused,
}

/// A request with a key, under way. Dropped unfinished (a panic), the key is free again.
#[derive(Debug)]
pub struct Ticket {
    store: Store,
    key: Key,
    at: Instant,
    tx: Option<watch::Sender<Option<Answer>>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.tx.is_some() {
            let mut inner = self.store.lock();
            if inner
                .entries
                .get(&self.key)
                .is_some_and(|(t, _)| *t == self.at)
            {
                inner.entries.remove(&self.key);
            }
        }
    }
}

/// The fingerprint of a request body: of its JSON (keys in order) when it is JSON, else of
/// its bytes.
pub fn fingerprint(body: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => v.to_string().hash(&mut h),
        Err(_) => body.hash(&mut h),
    }
    h.finish()
}

/// Whether `key` is usable: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Wait (at most `within`) for the answer of the copy under way; None when it never came
/// (it failed without an answer, or took too long).
pub async fn wait(mut rx: watch::Receiver<Option<Answer>>, within: Duration) -> Option<Answer> {
    match tokio::time::timeout(within, rx.wait_for(Option::is_some)).await {
        Ok(Ok(a)) => a.clone(),
        _ => None,
    }
}

impl Store {
    pub fn new(capacity: usize, ttl: Duration) -> Store {
        Store {
            inner: Arc::default(),
            capacity: capacity.max(1),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claim `key` on `route` for a request with `fingerprint`, at `now`.
    pub fn claim(&self, route: &str, key: &str, fingerprint: u64, now: Instant) -> Claim {
        let mut inner = self.lock();
        inner.expire(now, self.ttl, self.capacity);
        let k = (route.to_string(), key.to_string());
        match inner.entries.get(&k).map(|(_, e)| e) {
            Some(Entry::Done {
                fingerprint: f,
                answer,
            }) if *f == fingerprint => return Claim::Replay(answer.clone()),
            Some(Entry::InFlight {
                fingerprint: f,
                done,
            }) if *f == fingerprint => return Claim::Wait(done.clone()),
            Some(_) => return Claim::Reused,
            None => {}
        }
        while inner.entries.len() >= self.capacity {
            let Some((t, oldest)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&oldest).is_some_and(|(at, _)| *at == t) {
                inner.entries.remove(&oldest);
            }
        }
        let (tx, rx) = watch::channel(None);
        inner.entries.insert(
            k.clone(),
            (
                now,
                Entry::InFlight {
                    fingerprint,
                    done: rx,
                },
            ),
        );
        inner.order.push_back((now, k.clone()));
        Claim::New(Ticket {
            store: self.clone(),
            key: k,
            at: now,
            tx: Some(tx),
        })
    }

    /// The answer to a claimed request: kept, and given to the copies waiting for it.
    pub fn finish(&self, mut ticket: Ticket, answer: Answer) {
        let tx = ticket.tx.take();
        {
            let mut inner = self.lock();
            if let Some((at, entry)) = inner.entries.get_mut(&ticket.key) {
                if *at == ticket.at {
                    if let Entry::InFlight { fingerprint, .. } = *entry {
                        *entry = Entry::Done {
                            fingerprint,
                            answer: answer.clone(),
                        };
                    }
                }
            }
        }
        if let Some(tx) = tx {
            let _ = tx.send(Some(answer));
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
    fn expire(&mut self, now: Instant, ttl: Duration, capacity: usize) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < ttl {
                break;
            }
            let (t, k) = self.order.pop_front().expect("front exists");
            if self.entries.get(&k).is_some_and(|(at, _)| *at == t) {
                self.entries.remove(&k);
            }
        }
        if self.order.len() > 2 * capacity {
            let entries = &self.entries;
            self.order
                .retain(|(t, k)| entries.get(k).is_some_and(|(at, _)| at == t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const R: &str = "access_codes/create";

    fn ticket(c: Claim) -> Ticket {
        match c {
            Claim::New(t) => t,
            other => panic!("expected a new claim, got {other:?}"),
        }
    }

    fn answer(n: u64) -> Answer {
        (StatusCode::OK, Arc::new(json!({ "n": n })))
    }

    #[tokio::test]
    async fn a_copy_gets_the_first_answer_and_waits_for_it_while_under_way() {
        let s = Store::new(100, Duration::from_secs(3600));
        let t0 = Instant::now();
        let t = ticket(s.claim(R, "k", 1, t0));
        let Claim::Wait(rx) = s.claim(R, "k", 1, t0) else {
            panic!("a copy under way waits")
        };
        let waiter = tokio::spawn(wait(rx, Duration::from_secs(5)));
        s.finish(t, answer(1));
        assert_eq!(waiter.await.unwrap().unwrap().1["n"], 1);
        match s.claim(R, "k", 1, t0 + Duration::from_secs(10)) {
            Claim::Replay((status, body)) => {
                assert_eq!(status, StatusCode::OK);
                assert_eq!(body["n"], 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.claim(R, "k", 2, t0), Claim::Reused));
        // Keys are per route.
        ticket(s.claim("access_codes/delete", "k", 2, t0));
    }

    #[tokio::test]
    async fn an_unfinished_ticket_frees_its_key_and_its_waiters() {
        let s = Store::new(100, Duration::from_secs(3600));
        let t0 = Instant::now();
        let t = ticket(s.claim(R, "k", 1, t0));
        let Claim::Wait(rx) = s.claim(R, "k", 1, t0) else {
            panic!()
        };
        drop(t);
        assert!(wait(rx, Duration::from_secs(5)).await.is_none());
        ticket(s.claim(R, "k", 1, t0));
    }

    #[test]
    fn bounded_and_expiring() {
        let ttl = Duration::from_secs(60);
        let s = Store::new(10, ttl);
        let t0 = Instant::now();
        for i in 0..25 {
            let t = ticket(s.claim(R, &format!("k{i}"), 1, t0));
            s.finish(t, answer(i));
        }
        assert_eq!(s.len(), 10);
        ticket(s.claim(R, "k0", 1, t0));
        assert!(matches!(s.claim(R, "k24", 1, t0), Claim::Replay(_)));
        ticket(s.claim(R, "k24", 1, t0 + ttl));
    }

    #[test]
    fn fingerprints_and_keys() {
        assert_eq!(
            fingerprint(br#"{"a":1,"b":2}"#),
            fingerprint(br#"{"b":2, "a":1}"#)
        );
        assert_ne!(fingerprint(br#"{"a":1}"#), fingerprint(br#"{"a":2}"#));
        assert_ne!(fingerprint(b"not json"), fingerprint(b"not json!"));
        assert!(valid_key("retry-1"));
        assert!(!valid_key(""));
        assert!(!valid_key("a b"));
        assert!(!valid_key(&"x".repeat(256)));
    }
}
