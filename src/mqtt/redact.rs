//! PINs out of published messages: every `code` (access codes, unmanaged codes, generated
//! codes, events, a pending PIN change's `from`/`to`) and the `from`/`to` of a changed
//! `code` property (`access_code.changed`) become null, at any depth. Pure.

use serde_json::Value;

/// Replace every PIN in `v` with null.
pub fn strip_pins(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let code_property = map.get("property").and_then(Value::as_str) == Some("code");
            for (k, val) in map.iter_mut() {
                let pin = match k.as_str() {
                    "code" => !val.is_object() && !val.is_array(),
                    "from" | "to" => code_property,
                    _ => false,
                };
                if pin {
                    *val = Value::Null;
                } else {
                    strip_pins(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_pins),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pins_go_at_any_depth() {
        let mut v = json!({
            "access_code": { "code": "4821", "name": "x", "pending_mutations": [
                { "mutation_code": "updating_code", "from": { "code": "1111" }, "to": { "code": "2222" } }
            ] },
            "access_codes": [{ "code": "9999" }],
            "generated_code": { "device_id": "d", "code": "5555" },
            "changed_properties": [
                { "property": "code", "from": "1234", "to": "5678" },
                { "property": "name", "from": "a", "to": "b" }
            ],
            "error": { "type": "x", "message": "m" },
        });
        strip_pins(&mut v);
        let text = v.to_string();
        for pin in ["4821", "1111", "2222", "9999", "5555", "1234", "5678"] {
            assert!(!text.contains(pin), "{pin} in {text}");
        }
        assert_eq!(v["access_code"]["name"], "x");
        assert!(v["access_code"]["code"].is_null());
        assert_eq!(v["changed_properties"][1]["to"], "b");
        assert_eq!(v["error"]["message"], "m");
    }
}
