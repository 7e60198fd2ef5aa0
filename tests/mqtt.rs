//! The API over MQTT against a real broker: Debian's mosquitto, started here on 127.0.0.1
//! with a generated config, and the real zwlock daemon on simulated networks (second tier:
//! tools/tier2 installs mosquitto).

mod broker;
mod tier2;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use broker::{client, retained, until, BrokerOpts, Hub, Mosquitto, Recorder};
use bytes::Bytes;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn hub_on(root: &std::path::Path, m: &Mosquitto, name: &str, locks: usize, extra: &str) -> Hub {
    let mut h = Hub::configure(root, name, locks, &Hub::mqtt_section(&m.url(), name, extra));
    h.start(locks);
    h
}

async fn online(m: &Mosquitto, hub: &str) {
    let topic = format!("zwlock/{hub}/status");
    until(&format!("{hub} online"), WAIT, || async {
        retained(m.port, &topic).await.get(&topic).map(|p| &p[..]) == Some(b"online")
    })
    .await;
}

fn json_of(b: &Bytes) -> Value {
    serde_json::from_slice(b).unwrap()
}

/// The retained access codes of a hub: id -> object.
async fn retained_codes(m: &Mosquitto, hub: &str) -> BTreeMap<String, Value> {
    retained(m.port, &format!("zwlock/{hub}/access_codes/+"))
        .await
        .into_iter()
        .map(|(t, p)| (t.rsplit('/').next().unwrap().to_string(), json_of(&p)))
        .collect()
}

/// access_codes/list with the PINs hidden, as the broker should have it.
fn without_pins(mut codes: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    for c in codes.values_mut() {
        zwlock::mqtt::redact::strip_pins(c);
    }
    codes
}

async fn state_matches_the_list(m: &Mosquitto, h: &Hub) {
    until(&format!("{}: retained = list", h.name), WAIT, || async {
        retained_codes(m, &h.name).await == without_pins(h.codes())
    })
    .await;
}

async fn wait_set(h: &Hub, id: &str) {
    until(&format!("{id} set"), WAIT, || async {
        h.http(
            "GET",
            &format!("/access_codes/get?access_code_id={id}"),
            None,
        )
        .map(|r| r["access_code"]["status"] == "set")
        .unwrap_or(false)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_list_update_delete_over_mqtt() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mosquitto::start(dir.path(), BrokerOpts::default());
    let h = hub_on(dir.path(), &m, "h1", 2, "");
    online(&m, "h1").await;
    let c = client(m.port, "h1").await;
    let device = h.devices()[0].clone();

    let r = c.request("devices/list", &json!({})).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["ok"], true);
    assert_eq!(r.body["devices"].as_array().unwrap().len(), 2);
    assert_eq!(
        r.body["devices"],
        h.http("GET", "/devices/list", None).unwrap()["devices"]
    );

    let r = c
        .request(
            "access_codes/create",
            &json!({ "device_id": device, "code": "4821", "name": "cleaner" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let code = &r.body["access_code"];
    let id = code["access_code_id"].as_str().unwrap().to_string();
    assert_eq!(code["name"], "cleaner");
    assert_eq!(code["device_id"], device);
    assert!(code["code"].is_null(), "no PIN in an answer: {code}");
    assert_eq!(
        r.body["action_attempt"]["action_type"],
        "CREATE_ACCESS_CODE"
    );
    wait_set(&h, &id).await;

    // get and list answer what the socket answers (PINs out).
    let r = c
        .request("access_codes/get", &json!({ "access_code_id": id }))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let mut via_socket = h
        .http(
            "GET",
            &format!("/access_codes/get?access_code_id={id}"),
            None,
        )
        .unwrap();
    zwlock::mqtt::redact::strip_pins(&mut via_socket);
    assert_eq!(r.body, via_socket);
    let r = c
        .request("access_codes/list", &json!({ "device_id": device }))
        .await
        .unwrap();
    assert_eq!(r.body["access_codes"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["pagination"]["has_next_page"], false);

    let r = c
        .request(
            "access_codes/update",
            &json!({ "access_code_id": id, "name": "cleaner (tuesdays)" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        h.http(
            "GET",
            &format!("/access_codes/get?access_code_id={id}"),
            None
        )
        .unwrap()["access_code"]["name"],
        "cleaner (tuesdays)"
    );

    // Bad input: the HTTP API's errors, and nothing changes.
    let before = h.codes();
    let r = c
        .request_raw("access_codes/create", Bytes::from_static(b"{not json"), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["type"], "invalid_input");
    let r = c
        .request(
            "access_codes/create",
            &json!({ "device_id": device, "code": "12" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["validation_errors"]["code"].is_object(),
        "{}",
        r.body
    );
    let r = c.request("no/such/route", &json!({})).await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["type"], "not_found");
    let big = format!(
        "{{\"device_id\":\"{device}\",\"name\":\"{}\"}}",
        "x".repeat(70_000)
    );
    let r = c
        .request_raw("access_codes/create", Bytes::from(big), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(h.codes(), before);

    // No response topic: handled, answered with nothing, one warning. Retained: ignored.
    let body = json!({ "device_id": device, "code": "5190", "name": "fire and forget" });
    c.send(
        "access_codes/create",
        Bytes::from(body.to_string()),
        &[],
        None,
        false,
    )
    .await
    .unwrap();
    until("the request without a response topic", WAIT, || async {
        h.codes().values().any(|c| c["name"] == "fire and forget")
    })
    .await;
    let body = json!({ "device_id": device, "code": "5191", "name": "retained" });
    let no_answer = c.expect(Bytes::from_static(b"r1"), Duration::from_secs(2));
    c.send(
        "access_codes/create",
        Bytes::from(body.to_string()),
        &[],
        Some(Bytes::from_static(b"r1")),
        true,
    )
    .await
    .unwrap();
    assert!(no_answer.await.is_none());
    assert!(!h.codes().values().any(|c| c["name"] == "retained"));
    assert_eq!(
        h.log()
            .matches("a request came without a response topic")
            .count(),
        1,
        "{}",
        h.log()
    );

    let r = c
        .request("access_codes/delete", &json!({ "access_code_id": id }))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    until("deleted", WAIT, || async { !h.codes().contains_key(&id) }).await;
    let r = c
        .request("access_codes/get", &json!({ "access_code_id": id }))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["type"], "access_code_not_found");
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_subscriber_sees_what_the_list_shows() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mosquitto::start(dir.path(), BrokerOpts::default());
    let h = hub_on(dir.path(), &m, "h1", 2, "");
    online(&m, "h1").await;
    let events = Recorder::start(m.port, "zwlock/h1/events").await;
    let devices = h.devices();
    let mut ids = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        for j in 0..2 {
            let r = h
                .http(
                    "POST",
                    "/access_codes/create",
                    Some(&json!({ "device_id": d, "code": format!("{}{}58", i + 1, j + 3), "name": format!("g{i}{j}") })),
                )
                .unwrap();
            ids.push(
                r["access_code"]["access_code_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    for id in &ids {
        wait_set(&h, id).await;
    }
    h.http(
        "POST",
        "/access_codes/delete",
        Some(&json!({ "access_code_id": ids[0] })),
    )
    .unwrap();
    until("removed", WAIT, || async {
        !h.codes().contains_key(&ids[0])
    })
    .await;
    state_matches_the_list(&m, &h).await;
    let codes = retained_codes(&m, "h1").await;
    assert_eq!(codes.len(), 3);
    assert!(
        !codes.contains_key(&ids[0]),
        "a removed code is forgotten by the broker"
    );
    // Devices: as devices/get has them.
    let devs = retained(m.port, "zwlock/h1/devices/+").await;
    assert_eq!(devs.len(), 2);
    for d in &devices {
        let got = json_of(&devs[&format!("zwlock/h1/devices/{d}")]);
        let want = h
            .http("GET", &format!("/devices/get?device_id={d}"), None)
            .unwrap();
        assert_eq!(got["device_id"], want["device"]["device_id"]);
        assert_eq!(got["display_name"], want["device"]["display_name"]);
        assert_eq!(
            got["properties"]["locked"],
            want["device"]["properties"]["locked"]
        );
    }
    // Events: as events/list has them, not retained.
    let seen = events.all();
    let types: BTreeSet<String> = seen
        .iter()
        .map(|m| {
            json_of(&m.payload)["event_type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for t in [
        "access_code.created",
        "access_code.set_on_device",
        "access_code.deleted",
    ] {
        assert!(types.contains(t), "{t} not in {types:?}");
    }
    assert!(seen.iter().all(|m| !m.retain));
    let e = seen
        .iter()
        .map(|m| json_of(&m.payload))
        .find(|e| e["event_type"] == "access_code.created")
        .unwrap();
    let listed = h
        .http(
            "POST",
            "/events/list",
            Some(&json!({ "since": "2000-01-01T00:00:00Z" })),
        )
        .unwrap();
    let same = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["event_id"] == e["event_id"])
        .expect("the event is listed");
    assert_eq!(same, &e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_are_never_published_unless_publish_codes() {
    const PIN: &str = "90817263";
    const NEW_PIN: &str = "73915062";
    let dir = tempfile::tempdir().unwrap();
    let m = Mosquitto::start(dir.path(), BrokerOpts::default());
    let everything = Recorder::start(m.port, "#").await;
    let h = hub_on(dir.path(), &m, "h1", 1, "");
    online(&m, "h1").await;
    let c = client(m.port, "h1").await;
    let device = h.devices()[0].clone();
    let r = c
        .request(
            "access_codes/create",
            &json!({ "device_id": device, "code": PIN }),
        )
        .await
        .unwrap();
    let id = r.body["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_set(&h, &id).await;
    for (route, body) in [
        ("access_codes/get", json!({ "access_code_id": id })),
        ("access_codes/list", json!({ "device_id": device })),
        (
            "access_codes/get",
            json!({ "device_id": device, "code": PIN }),
        ),
        (
            "access_codes/update",
            json!({ "access_code_id": id, "code": NEW_PIN }),
        ),
        ("events/list", json!({ "since": "2000-01-01T00:00:00Z" })),
        ("access_codes/generate_code", json!({ "device_id": device })),
    ] {
        let r = c.request(route, &body).await.unwrap();
        assert_eq!(r.status, 200, "{route}: {}", r.body);
    }
    wait_set(&h, &id).await;
    c.request("access_codes/delete", &json!({ "access_code_id": id }))
        .await
        .unwrap();
    until("removed", WAIT, || async { !h.codes().contains_key(&id) }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let from_hub: Vec<_> = everything
        .all()
        .into_iter()
        .filter(|m| !m.topic.contains("/api/"))
        .collect();
    assert!(from_hub.len() > 10, "the hub published: {}", from_hub.len());
    for msg in &from_hub {
        let text = String::from_utf8_lossy(&msg.payload);
        assert!(
            !text.contains(PIN) && !text.contains(NEW_PIN),
            "{}: {text}",
            msg.topic
        );
    }
    assert!(!h.log().contains(PIN) && !h.log().contains(NEW_PIN));

    // With publish_codes, the retained code carries its PIN.
    let h2 = hub_on(dir.path(), &m, "h2", 1, "publish_codes = true");
    online(&m, "h2").await;
    let d2 = h2.devices()[0].clone();
    let r = h2
        .http(
            "POST",
            "/access_codes/create",
            Some(&json!({ "device_id": d2, "code": PIN })),
        )
        .unwrap();
    let id2 = r["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    until("the PIN is published", WAIT, || async {
        retained_codes(&m, "h2")
            .await
            .get(&id2)
            .map(|c| c["code"] == PIN)
            == Some(true)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_delivered_twice_with_a_key_acts_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mosquitto::start(dir.path(), BrokerOpts::default());
    let h = hub_on(dir.path(), &m, "h1", 1, "");
    online(&m, "h1").await;
    let c = client(m.port, "h1").await;
    let device = h.devices()[0].clone();
    let body =
        Bytes::from(json!({ "device_id": device, "code": "2468", "name": "twice" }).to_string());
    let key = [("idempotency-key", "create-twice-1")];
    // Two copies back to back (the second may arrive while the first is under way), then a
    // retry later with other correlation data.
    let corr = Bytes::from_static(b"dup-1");
    let first = c.expect(corr.clone(), WAIT);
    c.send(
        "access_codes/create",
        body.clone(),
        &key,
        Some(corr.clone()),
        false,
    )
    .await
    .unwrap();
    let second = c.request_correlated(
        "access_codes/create",
        body.clone(),
        &key,
        Bytes::from_static(b"dup-2"),
    );
    let (second, first) = tokio::join!(second, first);
    let (first, second) = (first.expect("the first copy is answered"), second.unwrap());
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body, second.body);
    let retry = c
        .request_raw("access_codes/create", body.clone(), &key)
        .await
        .unwrap();
    assert_eq!(retry.body, first.body);
    let named: Vec<_> = h
        .codes()
        .into_values()
        .filter(|c| c["name"] == "twice")
        .collect();
    assert_eq!(named.len(), 1, "acted once");
    // The same key with other parameters is refused, naming the property.
    let other = Bytes::from(json!({ "device_id": device, "code": "2469" }).to_string());
    let r = c
        .request_raw("access_codes/create", other, &key)
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    assert!(
        r.body["error"]["validation_errors"]["idempotency-key"].is_object(),
        "{}",
        r.body
    );
    // Without a key, a second copy is a second request.
    let b = Bytes::from(json!({ "device_id": device, "name": "no key" }).to_string());
    c.request_raw("access_codes/create", b.clone(), &[])
        .await
        .unwrap();
    c.request_raw("access_codes/create", b, &[]).await.unwrap();
    assert_eq!(
        h.codes().values().filter(|c| c["name"] == "no key").count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Mosquitto::start(
        dir.path(),
        BrokerOpts {
            persistence: true,
            ..Default::default()
        },
    );
    let h1 = hub_on(dir.path(), &m, "h1", 2, "");
    let mut h2 = hub_on(dir.path(), &m, "h2", 1, "");
    online(&m, "h1").await;
    online(&m, "h2").await;
    let d1 = h1.devices();
    let doomed = h1
        .http(
            "POST",
            "/access_codes/create",
            Some(&json!({ "device_id": d1[0], "code": "3141" })),
        )
        .unwrap()["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_set(&h1, &doomed).await;
    state_matches_the_list(&m, &h1).await;

    // The broker goes away: the hubs work on locally, nothing blocks.
    m.stop();
    let t0 = std::time::Instant::now();
    let kept = h1
        .http(
            "POST",
            "/access_codes/create",
            Some(&json!({ "device_id": d1[1], "code": "2718", "name": "during the outage" })),
        )
        .unwrap()["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    h1.http(
        "POST",
        "/access_codes/delete",
        Some(&json!({ "access_code_id": doomed })),
    )
    .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the socket API does not wait for the broker"
    );
    wait_set(&h1, &kept).await;
    until("removed", WAIT, || async {
        !h1.codes().contains_key(&doomed)
    })
    .await;

    // Back: the hubs reconnect and republish; what the broker kept of the deleted code is
    // cleared, the code made meanwhile is there.
    m.restart();
    online(&m, "h1").await;
    online(&m, "h2").await;
    state_matches_the_list(&m, &h1).await;
    let codes = retained_codes(&m, "h1").await;
    assert!(codes.contains_key(&kept) && !codes.contains_key(&doomed));
    assert!(
        h1.log().contains("connected to the MQTT broker again"),
        "{}",
        h1.log()
    );

    // A request sent while a hub is down is handled once, when it is back.
    h2.stop("KILL");
    until("h2 offline (its will)", WAIT, || async {
        retained(m.port, "zwlock/h2/status")
            .await
            .get("zwlock/h2/status")
            .map(|p| &p[..])
            == Some(b"offline")
    })
    .await;
    let c = client(m.port, "h2").await;
    let d2 = {
        let db = h2.dir.join("zwlock.db");
        assert!(db.exists());
        // The device id is in the retained state.
        let devs = retained(m.port, "zwlock/h2/devices/+").await;
        json_of(devs.values().next().unwrap())["device_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let corr = Bytes::from_static(b"while-down");
    let answer = c.expect(corr.clone(), Duration::from_secs(60));
    let body = Bytes::from(
        json!({ "device_id": d2, "code": "1618", "name": "sent while down" }).to_string(),
    );
    c.send(
        "access_codes/create",
        body,
        &[("idempotency-key", "down-1")],
        Some(corr.clone()),
        false,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    h2.start(1);
    let answer = answer.await.expect("answered once the hub is back");
    assert_eq!(answer.status, 200, "{}", answer.body);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h2.codes()
            .values()
            .filter(|c| c["name"] == "sent while down")
            .count(),
        1
    );
    online(&m, "h2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_taken_in_but_not_started_at_a_stop_is_handled_after_it() {
    // One request at a time, and the first one waits on a lock out of range: the second is
    // taken in from the broker and queued when the hub is stopped. It must not be lost (it
    // was, when every message was acknowledged on arrival): the broker delivers it again in
    // the next session, and it is handled once.
    let dir = tempfile::tempdir().unwrap();
    let m = Mosquitto::start(dir.path(), BrokerOpts::default());
    let mut h = hub_on(dir.path(), &m, "h1", 1, "max_concurrent_requests = 1");
    online(&m, "h1").await;
    let device = h.devices()[0].clone();
    let node = h
        .http("GET", &format!("/devices/get?device_id={device}"), None)
        .unwrap()["device"]["properties"]["zwave"]["node_id"]
        .as_u64()
        .unwrap() as u8;
    h.sim(node, "out_of_range");
    let c = client(m.port, "h1").await;
    let slow = Bytes::from(
        json!({ "device_id": device, "code": "5821", "name": "slow", "sync": true }).to_string(),
    );
    c.send(
        "access_codes/create",
        slow,
        &[],
        Some(Bytes::from_static(b"slow")),
        false,
    )
    .await
    .unwrap();
    until("the slow create under way", WAIT, || async {
        h.codes().values().any(|c| c["name"] == "slow")
    })
    .await;
    let corr = Bytes::from_static(b"queued");
    let answer = c.expect(corr.clone(), Duration::from_secs(90));
    let queued =
        Bytes::from(json!({ "device_id": device, "code": "6932", "name": "queued" }).to_string());
    c.send("access_codes/create", queued, &[], Some(corr), false)
        .await
        .unwrap();
    // Let the hub take it in (it waits behind the slow one), then stop the hub.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !h.codes().values().any(|c| c["name"] == "queued"),
        "the second request was to wait"
    );
    h.stop("TERM");
    // (The simulated network lives in the daemon: it starts again with the lock in range.)
    h.start(1);
    let answer = answer
        .await
        .expect("the queued request is answered after the restart");
    assert_eq!(answer.status, 200, "{}", answer.body);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let names: Vec<Value> = h.codes().values().map(|c| c["name"].clone()).collect();
    assert_eq!(
        names.iter().filter(|n| *n == "queued").count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "slow").count(),
        1,
        "the request under way is not delivered again: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_says_offline() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mosquitto::start(dir.path(), BrokerOpts::default());
    let mut h = hub_on(dir.path(), &m, "h1", 1, "");
    online(&m, "h1").await;
    h.stop("TERM");
    let status = retained(m.port, "zwlock/h1/status").await;
    assert_eq!(
        status.get("zwlock/h1/status").map(|p| &p[..]),
        Some(&b"offline"[..])
    );
    assert!(h.log().contains("MQTT bridge stopped"), "{}", h.log());
    assert!(
        m.log().contains("zwlock-h1") && m.log().contains("disconnected"),
        "{}",
        m.log()
    );
}

/// HA's documented discovery options for the two components (the keys and types we rely
/// on; `home-assistant.io/integrations/lock.mqtt` and `sensor.mqtt`).
fn check_ha_schema(component: &str, c: &Value) {
    let o = c.as_object().expect("a config is an object");
    let common: &[(&str, &str)] = &[
        ("unique_id", "string"),
        ("name", "string"),
        ("state_topic", "string"),
        ("availability_topic", "string"),
        ("payload_available", "string"),
        ("payload_not_available", "string"),
        ("value_template", "string"),
        ("qos", "number"),
        ("device", "object"),
        ("origin", "object"),
        ("entity_category", "string"),
        ("icon", "string"),
    ];
    let specific: &[(&str, &str)] = match component {
        "lock" => &[
            ("command_topic", "string"),
            ("payload_lock", "string"),
            ("payload_unlock", "string"),
            ("state_locked", "string"),
            ("state_unlocked", "string"),
            ("optimistic", "bool"),
            ("retain", "bool"),
        ],
        "sensor" => &[
            ("device_class", "string"),
            ("state_class", "string"),
            ("unit_of_measurement", "string"),
        ],
        other => panic!("{other}"),
    };
    let required: &[&str] = match component {
        "lock" => &["command_topic", "unique_id", "device"],
        _ => &["state_topic", "unique_id", "device"],
    };
    for r in required {
        assert!(o.contains_key(*r), "{component}: {r} is required: {c}");
    }
    for (k, v) in o {
        let t = common
            .iter()
            .chain(specific)
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("{component}: {k} is not a documented option"))
            .1;
        let ok = match t {
            "string" => v.is_string(),
            "number" => v.is_number(),
            "bool" => v.is_boolean(),
            "object" => v.is_object(),
            _ => false,
        };
        assert!(ok, "{component}: {k} must be a {t}: {v}");
    }
    if let Some(class) = o.get("state_class") {
        assert!(["measurement", "total", "total_increasing"].contains(&class.as_str().unwrap()));
    }
    if let Some(cat) = o.get("entity_category") {
        assert!(["config", "diagnostic"].contains(&cat.as_str().unwrap()));
    }
    let dev = o["device"].as_object().unwrap();
    for k in dev.keys() {
        assert!(
            [
                "identifiers",
                "connections",
                "manufacturer",
                "model",
                "model_id",
                "name",
                "sw_version",
                "hw_version",
                "serial_number",
                "suggested_area",
                "via_device",
                "configuration_url"
            ]
            .contains(&k.as_str()),
            "device.{k} is not a documented option"
        );
    }
    assert!(dev["identifiers"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(o["origin"]["name"].is_string(), "origin.name is required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mosquitto::start(dir.path(), BrokerOpts::default());
    let h = hub_on(dir.path(), &m, "h1", 2, "");
    online(&m, "h1").await;
    let devices = h.devices();
    let configs = retained(m.port, "homeassistant/#").await;
    assert_eq!(
        configs.len(),
        8,
        "four entities per lock: {:?}",
        configs.keys()
    );
    for (topic, payload) in &configs {
        let component = topic.split('/').nth(1).unwrap();
        let c = json_of(payload);
        check_ha_schema(component, &c);
        assert_eq!(c["availability_topic"], "zwlock/h1/status");
        assert!(c["device"]["manufacturer"].is_string());
    }
    // The lock entity: state from the lock, commands through locks/lock_door.
    let d = &devices[0];
    let lock_cfg = json_of(&configs[&format!("homeassistant/lock/zwlock_h1/{d}/config")]);
    let state_topic = lock_cfg["state_topic"].as_str().unwrap().to_string();
    let cmd = Recorder::start(m.port, "unused/+").await;
    cmd.publish(lock_cfg["command_topic"].as_str().unwrap(), "LOCK", false)
        .await;
    until("locked", WAIT, || async {
        let s = retained(m.port, &state_topic).await;
        s.get(&state_topic).map(|p| json_of(p)["lock"] == "LOCKED") == Some(true)
    })
    .await;
    assert_eq!(
        h.http("GET", &format!("/devices/get?device_id={d}"), None)
            .unwrap()["device"]["properties"]["locked"],
        true
    );
    cmd.publish(lock_cfg["command_topic"].as_str().unwrap(), "UNLOCK", false)
        .await;
    until("unlocked", WAIT, || async {
        let s = retained(m.port, &state_topic).await;
        s.get(&state_topic)
            .map(|p| json_of(p)["lock"] == "UNLOCKED")
            == Some(true)
    })
    .await;
    // The counts follow the codes.
    h.http(
        "POST",
        "/access_codes/create",
        Some(&json!({ "device_id": d, "code": "8642" })),
    )
    .unwrap();
    until("one managed code", WAIT, || async {
        let s = retained(m.port, &state_topic).await;
        s.get(&state_topic)
            .map(|p| json_of(p)["managed_codes"] == 1)
            == Some(true)
    })
    .await;
    let state = json_of(&retained(m.port, &state_topic).await[&state_topic]);
    assert!(
        state["battery"]
            .as_i64()
            .is_some_and(|b| (0..=100).contains(&b)),
        "{state}"
    );
    // A removed lock removes its discovery configs.
    let node = h
        .http(
            "GET",
            &format!("/devices/get?device_id={}", devices[1]),
            None,
        )
        .unwrap()["device"]["properties"]["zwave"]["node_id"]
        .as_u64()
        .unwrap() as u8;
    h.sim(node, "out_of_range");
    let r = h.http(
        "POST",
        "/zwave/remove_failed",
        Some(&json!({ "device_id": devices[1] })),
    );
    assert!(r.is_ok(), "{r:?}");
    until("the removed lock's configs are gone", WAIT, || async {
        let c = retained(m.port, "homeassistant/#").await;
        c.len() == 4 && c.keys().all(|t| !t.contains(&devices[1]))
    })
    .await;
    until("its device topic is gone", WAIT, || async {
        retained(m.port, "zwlock/h1/devices/+").await.len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_self_signed_ca_a_password_and_an_acl() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A CA, the broker's certificate (127.0.0.1 and localhost) and the hub's client
    // certificate, made here.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "zwlock test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client_params = rcgen::CertificateParams::new(vec!["h1".into()]).unwrap();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "h1");
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    let write = |name: &str, text: String, mode: u32| {
        let p = root.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let ca_pem = write("ca.pem", ca.pem(), 0o644);
    let tls = broker::BrokerTls {
        ca: ca_pem.clone(),
        cert: write("server.pem", server.pem(), 0o644),
        key: write("server.key", server_key.serialize_pem(), 0o600),
        require_certificate: true,
    };
    let hub_cert = write("h1.pem", client_cert.pem(), 0o644);
    let hub_key = write("h1.key", client_key.serialize_pem(), 0o600);
    // Passwords (mosquitto_passwd hashes them) and an ACL: each hub its own tree (and HA's).
    const PASSWORD: &str = "correct-horse-battery";
    let passwd = root.join("passwd");
    std::fs::write(&passwd, "").unwrap();
    for (user, pw) in [("h1", PASSWORD), ("admin", "admin-pass")] {
        let st = std::process::Command::new("mosquitto_passwd")
            .args(["-b"])
            .arg(&passwd)
            .args([user, pw])
            .status()
            .unwrap_or_else(|e| {
                tier2::missing(
                    "mosquitto_passwd",
                    &format!("apt-get install mosquitto ({e})"),
                )
            });
        assert!(st.success());
    }
    let acl = "user h1\ntopic readwrite zwlock/h1/#\ntopic write homeassistant/#\n\nuser admin\ntopic readwrite #\n";
    let m = Mosquitto::start(
        root,
        BrokerOpts {
            tls: Some(tls),
            password_file: Some(passwd),
            acl: Some(acl.into()),
            ..Default::default()
        },
    );
    let tls_port = m.tls_port.unwrap();
    let pw = write("h1.password", format!("{PASSWORD}\n"), 0o600);
    let section = |ca: &std::path::Path| {
        format!(
            "[mqtt]\nurl = \"mqtts://127.0.0.1:{tls_port}\"\nhub_id = \"h1\"\nusername = \"h1\"\npassword_file = \"{}\"\n\
             ca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\nreconnect_initial_ms = 200\nreconnect_max_ms = 1000\n",
            pw.display(),
            ca.display(),
            hub_cert.display(),
            hub_key.display()
        )
    };
    let mut h = Hub::configure(root, "h1", 1, &section(&ca_pem));
    h.start(1);
    // The admin reads the status over plain MQTT with its password.
    let admin = zwlock::mqtt::Connection::new(
        m.url().parse().unwrap(),
        Some("admin".into()),
        Some(&write("admin.password", "admin-pass\n".into(), 0o600)),
        Default::default(),
        Duration::from_secs(30),
    )
    .unwrap();
    let c =
        zwlock::mqtt::client::ApiClient::connect(&admin, "zwlock", "h1", Duration::from_secs(10))
            .await
            .unwrap();
    until("h1 answers over TLS", WAIT, || async {
        c.request("health", &json!({}))
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    let r = c.request("devices/list", &json!({})).await.unwrap();
    assert_eq!(r.body["devices"].as_array().unwrap().len(), 1);
    assert!(!h.log().contains(PASSWORD), "the password is never logged");
    assert!(!h.log().contains("refused subscriptions"), "{}", h.log());
    // Every subscription the hub made is below its own tree.
    let log = m.log();
    let subs: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains("Received SUBSCRIBE from zwlock-h1"))
        .take_while(|l| !l.contains("Sending SUBACK to zwlock-h1"))
        .filter_map(|l| l.split_once('\t').map(|(_, t)| t))
        .collect();
    assert!(!subs.is_empty(), "{log}");
    for s in subs {
        assert!(s.starts_with("zwlock/h1/"), "{s}");
    }
    h.stop("TERM");

    // A broker certificate from another CA: no connection, and the hub runs on locally.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = write(
        "other-ca.pem",
        other.self_signed(&other_key).unwrap().pem(),
        0o644,
    );
    std::fs::write(
        &h.config,
        std::fs::read_to_string(&h.config).unwrap().replace(
            &ca_pem.display().to_string(),
            &other_ca.display().to_string(),
        ),
    )
    .unwrap();
    h.start(1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        h.log().contains("cannot reach the MQTT broker"),
        "{}",
        h.log()
    );
    assert!(h.http("GET", "/health", None).is_ok());
    // A password file others can read stops the start, naming the file.
    h.stop("TERM");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(broker::BIN)
        .args(["daemon", "--config"])
        .arg(&h.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("h1.password") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_a_hub_through_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mosquitto::start(dir.path(), BrokerOpts::default());
    let h = hub_on(dir.path(), &m, "front-office", 1, "");
    online(&m, "front-office").await;
    let device = h.devices()[0].clone();
    let url = m.url();
    let cli = move |args: &[&str]| {
        let out = std::process::Command::new(broker::BIN)
            .args(["--broker", &url, "--hub", "front-office"])
            .args(args)
            .env_remove("ZWLOCK_SOCKET")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        let device = device.clone();
        move || {
            cli(&[
                "codes",
                "create",
                "--device",
                &device,
                "--code",
                "7531",
                "--name",
                "via broker",
                "--wait",
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("created "), "{out}");
    let (code, out, err) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        let device = device.clone();
        move || cli(&["codes", "list", "--device", &device, "--json"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "via broker");
    assert_eq!(listed[0]["status"], "set");
    let (code, out, _) = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["devices", "list"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    assert!(out.contains(&device), "{out}");
    // A hub that is not there: the CLI says so, with exit code 1, within its timeout.
    let url = m.url();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(broker::BIN)
            .args([
                "--broker",
                &url,
                "--hub",
                "nobody",
                "--broker-timeout",
                "2",
                "devices",
                "list",
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            (),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no answer from hub nobody"), "{err}");
}
