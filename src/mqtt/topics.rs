//! The topics of one hub, and what an incoming topic is. Pure.
//!
//! Under `<prefix>/<hub>/`:
//!
//! | topic | what | retained |
//! |---|---|---|
//! | `status` | `online` / `offline` (the will) | yes |
//! | `devices/<device_id>` | the device, as `devices/get` has it | yes |
//! | `access_codes/<access_code_id>` | the code, as `access_codes/get` has it (empty: gone) | yes |
//! | `events` | every event, as `events/list` has it | no |
//! | `api/<route>` | requests (the hub subscribes) | never acted on when retained |
//! | `ha/<device_id>/state` | what Home Assistant's entities read | yes |
//! | `ha/<device_id>/set` | Home Assistant's `LOCK` / `UNLOCK` (the hub subscribes) | no |
//! | `sweep` | the hub's own marker while it looks for stale retained state | no |
//!
//! Home Assistant's discovery configs go to
//! `<discovery_prefix>/<lock|sensor>/zwlock_<hub>/<device_id>[_what]/config`.
//! The hub subscribes only below `<prefix>/<hub>/`.

use uuid::Uuid;

/// The topics of one hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
    hub: String,
    discovery: String,
}

/// What a topic the hub receives on is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A request for this route (`access_codes/create`, …).
    Api(&'a str),
    /// Home Assistant's command for a lock.
    HaCommand(Uuid),
    /// Retained state seen while sweeping.
    Device(Uuid),
    AccessCode(Uuid),
    /// The hub's sweep marker came back.
    SweepMarker,
    /// Anything else (never acted on).
    Other,
}

/// The Home Assistant entities of one lock: (component, object id suffix).
pub const HA_ENTITIES: &[(&str, &str)] = &[
    ("lock", ""),
    ("sensor", "_battery"),
    ("sensor", "_managed_codes"),
    ("sensor", "_codes_not_set"),
];

impl Topics {
    pub fn new(prefix: &str, hub: &str, discovery_prefix: &str) -> Topics {
        Topics {
            base: format!("{prefix}/{hub}"),
            hub: hub.to_string(),
            discovery: discovery_prefix.to_string(),
        }
    }

    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// `<prefix>/<hub>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    pub fn device(&self, id: &Uuid) -> String {
        format!("{}/devices/{id}", self.base)
    }

    pub fn access_code(&self, id: &Uuid) -> String {
        format!("{}/access_codes/{id}", self.base)
    }

    pub fn events(&self) -> String {
        format!("{}/events", self.base)
    }

    pub fn api(&self, route: &str) -> String {
        format!("{}/api/{}", self.base, route.trim_start_matches('/'))
    }

    pub fn ha_state(&self, id: &Uuid) -> String {
        format!("{}/ha/{id}/state", self.base)
    }

    pub fn ha_command(&self, id: &Uuid) -> String {
        format!("{}/ha/{id}/set", self.base)
    }

    pub fn sweep_marker(&self) -> String {
        format!("{}/sweep", self.base)
    }

    /// What the hub subscribes to for as long as it is connected.
    pub fn request_filters(&self) -> [String; 2] {
        [
            format!("{}/api/#", self.base),
            format!("{}/ha/+/set", self.base),
        ]
    }

    /// What it subscribes to while sweeping stale retained state.
    pub fn sweep_filters(&self) -> [String; 3] {
        [
            format!("{}/devices/+", self.base),
            format!("{}/access_codes/+", self.base),
            self.sweep_marker(),
        ]
    }

    /// A Home Assistant object id of a lock's entity.
    pub fn ha_object_id(&self, id: &Uuid, suffix: &str) -> String {
        format!("{id}{suffix}")
    }

    /// A Home Assistant discovery config topic.
    pub fn ha_config(&self, component: &str, id: &Uuid, suffix: &str) -> String {
        format!(
            "{}/{component}/zwlock_{}/{}/config",
            self.discovery,
            self.hub,
            self.ha_object_id(id, suffix)
        )
    }

    /// Every retained topic that belongs to a device (to clear them when it is gone).
    pub fn device_topics(&self, id: &Uuid, discovery: bool) -> Vec<String> {
        let mut v = vec![self.device(id), self.ha_state(id)];
        if discovery {
            v.extend(
                HA_ENTITIES
                    .iter()
                    .map(|(component, suffix)| self.ha_config(component, id, suffix)),
            );
        }
        v
    }

    /// What `topic` is, for this hub.
    pub fn parse<'a>(&self, topic: &'a str) -> Incoming<'a> {
        let Some(rest) = topic
            .strip_prefix(self.base.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return Incoming::Other;
        };
        if let Some(route) = rest.strip_prefix("api/") {
            return if route.is_empty() {
                Incoming::Other
            } else {
                Incoming::Api(route)
            };
        }
        if rest == "sweep" {
            return Incoming::SweepMarker;
        }
        let id = |s: &str| s.parse::<Uuid>().ok();
        if let Some(r) = rest.strip_prefix("ha/") {
            if let Some(d) = r.strip_suffix("/set").and_then(id) {
                return Incoming::HaCommand(d);
            }
        } else if let Some(d) = rest.strip_prefix("devices/").and_then(id) {
            return Incoming::Device(d);
        } else if let Some(c) = rest.strip_prefix("access_codes/").and_then(id) {
            return Incoming::AccessCode(c);
        }
        Incoming::Other
    }
}

/// Whether a client-given response topic can be published to: not empty, no wildcards, no
/// NUL, at most 1024 bytes.
pub fn valid_response_topic(t: &str) -> bool {
    !t.is_empty() && t.len() <= 1024 && !t.contains(['+', '#', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_their_parse() {
        let t = Topics::new("zwlock", "front-office", "homeassistant");
        let id = Uuid::from_u128(7);
        assert_eq!(t.status(), "zwlock/front-office/status");
        assert_eq!(
            t.parse("zwlock/front-office/api/access_codes/create"),
            Incoming::Api("access_codes/create")
        );
        assert_eq!(
            t.parse("zwlock/front-office/api/access_codes/unmanaged/list"),
            Incoming::Api("access_codes/unmanaged/list")
        );
        assert_eq!(t.parse("zwlock/front-office/api/"), Incoming::Other);
        assert_eq!(t.parse(&t.ha_command(&id)), Incoming::HaCommand(id));
        assert_eq!(t.parse(&t.device(&id)), Incoming::Device(id));
        assert_eq!(t.parse(&t.access_code(&id)), Incoming::AccessCode(id));
        assert_eq!(t.parse(&t.sweep_marker()), Incoming::SweepMarker);
        // Another hub's topics, and look-alikes, are nothing to this one.
        assert_eq!(
            t.parse("zwlock/front-office-2/api/access_codes/create"),
            Incoming::Other
        );
        assert_eq!(t.parse("zwlock/other/api/health"), Incoming::Other);
        assert_eq!(t.parse("zwlock/front-office/devices/nope"), Incoming::Other);
        assert_eq!(t.parse(&t.ha_state(&id)), Incoming::Other);
        assert_eq!(
            t.ha_config("sensor", &id, "_battery"),
            format!("homeassistant/sensor/zwlock_front-office/{id}_battery/config")
        );
    }

    #[test]
    fn every_subscription_is_below_the_hub() {
        let t = Topics::new("acme/zwlock", "h1", "homeassistant");
        for f in t.request_filters().iter().chain(t.sweep_filters().iter()) {
            assert!(f.starts_with("acme/zwlock/h1/"), "{f}");
        }
    }

    #[test]
    fn response_topics() {
        assert!(valid_response_topic("zwlock/h1/reply/cli-1"));
        for bad in ["", "a/+", "a/#", "a\0b"] {
            assert!(!valid_response_topic(bad), "{bad:?}");
        }
    }
}
