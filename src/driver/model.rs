//! What does not change from one lock of a model to another: the versions of the command
//! classes zwlock reads, the User Code capabilities (slots, checksum, bulk reports,
//! characters) and how the lock notifies. The first interview of a model learns them and puts
//! them in a [`ModelCache`]; the next lock of the same model takes them from there and is
//! asked only what is its own (its battery, its bolt, its codes).
//!
//! The driver knows the cache only through the trait (the daemon backs it with the store).
//! Interviews of several locks of one model at once do not all learn it: the first learns,
//! the others wait for it ([`Models::lookup`], bounded by [`LEARN_WAIT`]) and then read the
//! cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::node::{NodeInfo, NotificationSupport, UserCodeSupport};
use crate::cc::{notification, user_code};

/// How long an interview waits for another one learning the same model before it learns the
/// model itself.
pub const LEARN_WAIT: Duration = Duration::from_secs(120);

/// A lock model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelKey {
    pub manufacturer_id: u16,
    pub product_type: u16,
    pub product_id: u16,
    /// The firmware version ("1.4"), when known. The interview does not spend a frame on it:
    /// the command class list stands in for it.
    pub firmware: Option<String>,
    /// The command classes the lock lists (plain and secure), sorted, without repeats.
    pub command_classes: Vec<u8>,
}

/// What every lock of a model can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFacts {
    /// The versions the interview asks for ([`version_wanted`]).
    pub versions: BTreeMap<u8, u8>,
    pub user_code: UserCodeSupport,
    pub notification: NotificationSupport,
}

/// Where model facts are kept. Errors are the implementation's to log: a cache that cannot
/// answer is a miss, one that cannot store loses nothing but frames.
pub trait ModelCache: Send + Sync {
    fn get(&self, key: &ModelKey) -> Option<ModelFacts>;
    fn put(&self, key: ModelKey, facts: ModelFacts);
}

/// The classes whose version changes what zwlock sends or how it reads what it hears: User
/// Code (v2 has capabilities, the checksum, Extended Get) and Notification (v1/v2 legacy
/// alarms, v3+ Access Control events). Every other version is never used, so never asked.
pub fn version_wanted(cc: u8) -> bool {
    cc == user_code::ID || cc == notification::ID
}

/// The model of `info`, once its manufacturer and command classes are known.
pub fn key_of(info: &NodeInfo) -> Option<ModelKey> {
    let m = info.manufacturer?;
    let mut classes = info.command_classes.clone()?;
    classes.sort_unstable();
    classes.dedup();
    Some(ModelKey {
        manufacturer_id: m.manufacturer_id,
        product_type: m.product_type,
        product_id: m.product_id,
        firmware: None,
        command_classes: classes,
    })
}

/// What `info`'s interview learnt that holds for its whole model: `None` until the versions,
/// User Code support and notifications are all known.
pub fn facts_of(info: &NodeInfo) -> Option<ModelFacts> {
    let classes = info.command_classes.as_ref()?;
    let mut versions = BTreeMap::new();
    for cc in classes.iter().copied().filter(|cc| version_wanted(*cc)) {
        versions.insert(cc, *info.versions.get(&cc)?);
    }
    Some(ModelFacts {
        versions,
        user_code: info.user_code.clone()?,
        notification: info.notification?,
    })
}

/// Take a model's facts into `info` (what the interview would have asked).
pub fn apply(info: &mut NodeInfo, facts: &ModelFacts) {
    for (cc, v) in &facts.versions {
        info.versions.entry(*cc).or_insert(*v);
    }
    info.user_code
        .get_or_insert_with(|| facts.user_code.clone());
    info.notification.get_or_insert(facts.notification);
}

/// The cache, and the models being learnt right now.
pub struct Models {
    cache: Arc<dyn ModelCache>,
    learning: Mutex<HashMap<ModelKey, watch::Receiver<()>>>,
    wait: Duration,
}

/// What [`Models::lookup`] found.
pub enum Lookup {
    Known(ModelFacts),
    /// Not known: learn it and [`Learning::done`] it. Others asking meanwhile wait.
    Learn(Learning),
}

/// The right to learn a model; dropping it lets the waiting interviews go on.
pub struct Learning {
    models: Arc<Models>,
    key: ModelKey,
    registered: bool,
    _done: Option<watch::Sender<()>>,
}

impl Learning {
    /// The model is learnt: store it (waiting interviews then read it).
    pub fn done(self, facts: ModelFacts) {
        self.models.cache.put(self.key.clone(), facts);
    }
}

impl Drop for Learning {
    fn drop(&mut self) {
        if self.registered {
            self.models
                .learning
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.key);
        }
    }
}

impl Models {
    pub fn new(cache: Arc<dyn ModelCache>) -> Arc<Models> {
        Models::with_wait(cache, LEARN_WAIT)
    }

    pub fn with_wait(cache: Arc<dyn ModelCache>, wait: Duration) -> Arc<Models> {
        Arc::new(Models {
            cache,
            learning: Mutex::new(HashMap::new()),
            wait,
        })
    }

    /// The facts of `key` from the cache; when another interview is learning them, after it
    /// is done (or [`LEARN_WAIT`] has passed).
    pub async fn lookup(self: &Arc<Self>, key: &ModelKey) -> Lookup {
        let mut waited = false;
        loop {
            if let Some(f) = self.cache.get(key) {
                return Lookup::Known(f);
            }
            let mut rx = {
                let mut learning = self.learning.lock().unwrap_or_else(|e| e.into_inner());
                match learning.get(key) {
                    Some(rx) if !waited => rx.clone(),
                    // Waited once already (the other learner failed or was slow): learn.
                    Some(_) => {
                        return Lookup::Learn(Learning {
                            models: self.clone(),
                            key: key.clone(),
                            registered: false,
                            _done: None,
                        })
                    }
                    None => {
                        let (tx, rx) = watch::channel(());
                        learning.insert(key.clone(), rx);
                        return Lookup::Learn(Learning {
                            models: self.clone(),
                            key: key.clone(),
                            registered: true,
                            _done: Some(tx),
                        });
                    }
                }
            };
            // Ends when the learner drops its sender (done or failed).
            let _ = tokio::time::timeout(self.wait, rx.changed()).await;
            waited = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::node::Manufacturer;
    use crate::serialapi::controller::NodeProtocolInfo;
    use crate::serialapi::NodeId;

    #[derive(Default)]
    struct MemCache(Mutex<HashMap<ModelKey, ModelFacts>>, Mutex<u32>);

    impl ModelCache for MemCache {
        fn get(&self, key: &ModelKey) -> Option<ModelFacts> {
            self.0.lock().unwrap().get(key).cloned()
        }
        fn put(&self, key: ModelKey, facts: ModelFacts) {
            *self.1.lock().unwrap() += 1;
            self.0.lock().unwrap().insert(key, facts);
        }
    }

    fn lock() -> NodeInfo {
        let p = NodeProtocolInfo {
            capability: 0x53,
            security: 0x1C,
            reserved: 0x01,
            basic: 0x04,
            generic: 0x40,
            specific: 0x03,
        };
        let mut info = NodeInfo::new(NodeId(5), &p);
        info.command_classes = Some(vec![0x86, 0x72, 0x63, 0x71, 0x62, 0x80, 0x6C]);
        info
    }

    #[test]
    fn only_user_code_and_notification_versions_are_wanted() {
        let wanted: Vec<u8> = (0..=255u8).filter(|cc| version_wanted(*cc)).collect();
        assert_eq!(wanted, vec![0x63, 0x71]);
    }

    #[test]
    fn a_model_is_known_once_its_ids_and_classes_are() {
        let mut info = lock();
        assert_eq!(key_of(&info), None, "no manufacturer yet");
        info.manufacturer = Some(Manufacturer {
            manufacturer_id: 0xFFFF,
            product_type: 1,
            product_id: 2,
        });
        let k = key_of(&info).unwrap();
        assert_eq!(
            k.command_classes,
            vec![0x62, 0x63, 0x6C, 0x71, 0x72, 0x80, 0x86]
        );
        assert_eq!(
            (k.manufacturer_id, k.product_id, &k.firmware),
            (0xFFFF, 2, &None)
        );
    }

    #[test]
    fn facts_need_every_wanted_version_and_go_back_whole() {
        let mut info = lock();
        info.versions.insert(0x63, 2);
        info.set_user_code(250, None);
        info.derive_notification();
        assert_eq!(facts_of(&info), None, "the Notification version is missing");
        info.versions.insert(0x71, 8);
        info.derive_notification();
        // Versions zwlock never asks for are no part of the model's facts.
        info.versions.insert(0x80, 1);
        let f = facts_of(&info).unwrap();
        assert_eq!(f.versions, BTreeMap::from([(0x63, 2), (0x71, 8)]));
        assert_eq!(f.notification, NotificationSupport::AccessControl);
        let mut other = lock();
        apply(&mut other, &f);
        assert_eq!(other.version(0x63), 2);
        assert_eq!(other.user_code.as_ref().unwrap().slots, 250);
        assert_eq!(facts_of(&other), Some(f));
    }

    #[tokio::test(start_paused = true)]
    async fn one_interview_learns_a_model_the_others_wait_for_it() {
        let cache = Arc::new(MemCache::default());
        let models = Models::new(cache.clone());
        let mut info = lock();
        info.manufacturer = Some(Manufacturer {
            manufacturer_id: 1,
            product_type: 1,
            product_id: 1,
        });
        let key = key_of(&info).unwrap();
        let Lookup::Learn(first) = models.lookup(&key).await else {
            panic!("nothing known yet");
        };
        let m = models.clone();
        let k = key.clone();
        let second = tokio::spawn(async move { matches!(m.lookup(&k).await, Lookup::Known(_)) });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!second.is_finished(), "waits for the first");
        info.versions.extend([(0x63, 1), (0x71, 8)]);
        info.set_user_code(30, None);
        info.derive_notification();
        first.done(facts_of(&info).unwrap());
        assert!(second.await.unwrap(), "then reads what the first learnt");
        assert_eq!(*cache.1.lock().unwrap(), 1, "learnt once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_learner_that_fails_lets_the_next_learn() {
        let models = Models::new(Arc::new(MemCache::default()));
        let mut info = lock();
        info.manufacturer = Some(Manufacturer {
            manufacturer_id: 1,
            product_type: 1,
            product_id: 1,
        });
        let key = key_of(&info).unwrap();
        let first = models.lookup(&key).await;
        let m = models.clone();
        let k = key.clone();
        let second = tokio::spawn(async move { matches!(m.lookup(&k).await, Lookup::Learn(_)) });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(first); // the interview was cut short
        assert!(second.await.unwrap());
        // A learner that hangs holds the others up for LEARN_WAIT at most.
        let _stuck = models.lookup(&key).await;
        let t0 = tokio::time::Instant::now();
        assert!(matches!(models.lookup(&key).await, Lookup::Learn(_)));
        assert_eq!(t0.elapsed(), LEARN_WAIT);
    }
}
