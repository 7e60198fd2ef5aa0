//! Home Assistant MQTT discovery: for each lock a `lock` entity (state from the lock's Door
//! Lock reports, commands to `locks/lock_door` / `locks/unlock_door`), a battery `sensor`, a
//! `sensor` with the number of managed codes and one with how many are not `set`; all
//! available while the hub's status topic says `online`, grouped under one device with the
//! manufacturer and model the interview found. Pure: configs and states from the API's
//! objects.

use serde_json::{json, Value};
use uuid::Uuid;

use super::topics::Topics;

/// The payloads Home Assistant sends and reads.
pub const LOCK: &str = "LOCK";
pub const UNLOCK: &str = "UNLOCK";
pub const LOCKED: &str = "LOCKED";
pub const UNLOCKED: &str = "UNLOCKED";

/// The route a command payload asks for.
pub fn command_route(payload: &[u8]) -> Option<&'static str> {
    match std::str::from_utf8(payload).ok()?.trim() {
        LOCK => Some("locks/lock_door"),
        UNLOCK => Some("locks/unlock_door"),
        _ => None,
    }
}

/// What the entities of one lock read (`<p>/<hub>/ha/<device_id>/state`), from the device
/// object and its managed codes.
pub fn state(device: &Value, codes: &[Value]) -> Value {
    let p = &device["properties"];
    let lock = match p["locked"].as_bool() {
        Some(true) => json!(LOCKED),
        Some(false) => json!(UNLOCKED),
        None => Value::Null,
    };
    let battery = p["battery_level"]
        .as_f64()
        .map(|b| (b * 100.0).round() as i64);
    let not_set = codes.iter().filter(|c| c["status"] != "set").count();
    json!({
        "lock": lock,
        "battery": battery,
        "managed_codes": codes.len(),
        "codes_not_set": not_set,
    })
}

/// The discovery configs of one lock: (topic, config).
pub fn discovery(topics: &Topics, device: &Value, sw_version: &str) -> Vec<(String, Value)> {
    let Some(id) = device["device_id"]
        .as_str()
        .and_then(|s| s.parse::<Uuid>().ok())
    else {
        return Vec::new();
    };
    let p = &device["properties"];
    let name = device["display_name"].as_str().unwrap_or("Z-Wave lock");
    let mut dev = json!({
        "identifiers": [format!("zwlock_{}_{id}", topics.hub())],
        "name": name,
        "manufacturer": p["model"]["manufacturer_display_name"].as_str().unwrap_or("Z-Wave"),
        "model": p["model"]["display_name"].as_str().unwrap_or("Z-Wave keypad lock"),
        "sw_version": sw_version,
    });
    if let Some(node) = p["zwave"]["node_id"].as_u64() {
        dev["serial_number"] = json!(format!("node {node}"));
    }
    let origin = json!({ "name": "zwlock", "sw_version": sw_version });
    let state_topic = topics.ha_state(&id);
    let common = |suffix: &str, entity: &str| {
        json!({
            "unique_id": format!("zwlock_{}_{}", topics.hub(), topics.ha_object_id(&id, suffix)),
            "name": entity,
            "state_topic": state_topic,
            "availability_topic": topics.status(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": 1,
            "device": dev,
            "origin": origin,
        })
    };
    let with = |mut base: Value, extra: Value| {
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    };
    let mut out = Vec::new();
    out.push((
        topics.ha_config("lock", &id, ""),
        with(
            common("", "Door"),
            json!({
                "command_topic": topics.ha_command(&id),
                "payload_lock": LOCK,
                "payload_unlock": UNLOCK,
                "state_locked": LOCKED,
                "state_unlocked": UNLOCKED,
                "value_template": "{{ value_json.lock }}",
                "optimistic": false,
                "retain": false,
            }),
        ),
    ));
    out.push((
        topics.ha_config("sensor", &id, "_battery"),
        with(
            common("_battery", "Battery"),
            json!({
                "device_class": "battery",
                "state_class": "measurement",
                "unit_of_measurement": "%",
                "entity_category": "diagnostic",
                "value_template": "{{ value_json.battery }}",
            }),
        ),
    ));
    out.push((
        topics.ha_config("sensor", &id, "_managed_codes"),
        with(
            common("_managed_codes", "Managed codes"),
            json!({
                "state_class": "measurement",
                "icon": "mdi:dialpad",
                "value_template": "{{ value_json.managed_codes }}",
            }),
        ),
    ));
    out.push((
        topics.ha_config("sensor", &id, "_codes_not_set"),
        with(
            common("_codes_not_set", "Codes not set"),
            json!({
                "state_class": "measurement",
                "icon": "mdi:alert-circle-outline",
                "value_template": "{{ value_json.codes_not_set }}",
            }),
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Value {
        json!({
            "device_id": Uuid::from_u128(9),
            "display_name": "Front door",
            "properties": {
                "locked": true,
                "battery_level": 0.87,
                "model": { "display_name": "0x0003/0x0339", "manufacturer_display_name": "Schlage" },
                "zwave": { "node_id": 5 },
            },
        })
    }

    #[test]
    fn state_from_the_device_and_its_codes() {
        let codes = [
            json!({ "status": "set" }),
            json!({ "status": "setting" }),
            json!({ "status": "unset" }),
        ];
        let s = state(&device(), &codes);
        assert_eq!(
            s,
            json!({ "lock": "LOCKED", "battery": 87, "managed_codes": 3, "codes_not_set": 2 })
        );
        let mut d = device();
        d["properties"]["locked"] = Value::Null;
        d["properties"]["battery_level"] = Value::Null;
        let s = state(&d, &[]);
        assert!(s["lock"].is_null() && s["battery"].is_null());
    }

    #[test]
    fn commands() {
        assert_eq!(command_route(b"LOCK"), Some("locks/lock_door"));
        assert_eq!(command_route(b"UNLOCK\n"), Some("locks/unlock_door"));
        assert_eq!(command_route(b"OPEN"), None);
        assert_eq!(command_route(&[0xff, 0xfe]), None);
    }

    #[test]
    fn one_lock_four_entities_one_device() {
        let t = Topics::new("zwlock", "h1", "homeassistant");
        let configs = discovery(&t, &device(), "0.1.0");
        assert_eq!(configs.len(), 4);
        let id = Uuid::from_u128(9);
        assert_eq!(configs[0].0, t.ha_config("lock", &id, ""));
        assert_eq!(configs[0].1["command_topic"], t.ha_command(&id));
        let ids: std::collections::BTreeSet<_> = configs
            .iter()
            .map(|(_, c)| c["unique_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 4, "unique ids are unique");
        for (_, c) in &configs {
            assert_eq!(c["device"]["manufacturer"], "Schlage");
            assert_eq!(c["availability_topic"], "zwlock/h1/status");
        }
        assert!(discovery(&t, &json!({}), "0.1.0").is_empty());
    }
}
