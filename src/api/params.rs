//! Request parameters: from the query string for GET and DELETE, from a JSON body otherwise,
//! as Seam's SDKs send them (repeated keys for arrays, `_strict` appended and ignored), into
//! the types the handlers take, with every error filed under the field it is about.

use axum::http::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::ApiError;

/// Parse the parameters of a request into `T` (without a route's checks: see
/// [`super::fields::check`]).
pub fn parse<T: DeserializeOwned>(
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    from_object(to_object(method, query, headers, body)?)
}

/// Whether a method carries its parameters in the query string (else in a JSON body).
pub fn in_query(method: &Method) -> bool {
    method == Method::GET || method == Method::DELETE
}

/// A request's parameters as one JSON object: the query string for GET and DELETE, the JSON
/// body otherwise. `_strict` (which Seam's SDKs append to query strings) is dropped. A query
/// string on a request with a body is refused: its parameters would be ignored.
pub fn to_object(
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    let mut query = match query_to_json(query.unwrap_or(""))? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    query.remove("_strict");
    let mut object = if in_query(method) {
        query
    } else {
        if !query.is_empty() {
            return Err(ApiError::invalid_fields(
                query
                    .keys()
                    .map(|k| {
                        (
                            k.clone(),
                            format!("a {method} takes its parameters in a JSON body, not in the query string"),
                        )
                    })
                    .collect(),
            ));
        }
        body_to_json(headers, body)?
    };
    object.remove("_strict");
    Ok(object)
}

fn body_to_json(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let trimmed = body.iter().filter(|b| !b.is_ascii_whitespace()).count();
    if trimmed == 0 {
        return Ok(Map::new());
    }
    if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct.starts_with("application/json") {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_content_type",
                format!("expected application/json, got {ct}"),
            ));
        }
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_input",
            // serde_json's syntax errors say where, never what (line and column only).
            format!("the body is not valid JSON: {}", syntax_error(&e)),
        )
    })?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_input",
            "the body must be a JSON object",
        )),
    }
}

fn syntax_error(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {}, column {}",
        e.classify(),
        e.line(),
        e.column()
    )
    .to_lowercase()
}

/// Deserialize checked parameters into `T`. An error names the field it is in (by its path,
/// e.g. `access_code_ids[1]`), and never repeats the value: it may be a PIN.
pub fn from_object<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let path = e.path().to_string();
        let message = redact(&e.inner().to_string());
        let field = if path.is_empty() || path == "." {
            // An error about the object itself: a missing field, named in backticks.
            message.split('`').nth(1).unwrap_or("body").to_string()
        } else {
            path
        };
        ApiError::invalid_fields(vec![(field, message)])
    })
}

/// serde's messages quote the value they refused ("invalid type: string \"1234\", expected
/// u8"): keep what kind it was and what was expected, drop the value.
pub fn redact(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let expected = rest.find(", expected").map_or("", |i| &rest[i..]);
            let kind = rest
                .split([' ', '`', '"'])
                .next()
                .filter(|k| !k.is_empty() && prefix != "unknown variant ")
                .map(|k| match k {
                    "floating" => "floating point",
                    other => other,
                })
                .unwrap_or("");
            let sep = if kind.is_empty() { "" } else { " " };
            return format!("{}{sep}{kind}{expected}", prefix.trim_end()).replace(": ,", ",");
        }
    }
    if message.starts_with("UUID parsing failed") {
        return "expected a UUID".into();
    }
    if ["missing field", "unknown field", "duplicate field"]
        .iter()
        .any(|p| message.starts_with(p))
    {
        return message.to_string();
    }
    // Anything else may quote the value in backticks: drop what is quoted.
    message
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, part)| part)
        .collect::<String>()
        .replace("  ", " ")
}

/// `a=1&b=2&b=3` → `{"a": "1", "b": ["2", "3"]}`; values stay strings (see [`flex`]).
fn query_to_json(q: &str) -> Result<Value, ApiError> {
    let mut map = Map::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k)?;
        let v = decode(v)?;
        let k = k.trim_end_matches("[]").to_string();
        match map.get_mut(&k) {
            None => {
                map.insert(k, Value::String(v));
            }
            Some(Value::Array(a)) => a.push(Value::String(v)),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, Value::String(v)]);
            }
        }
    }
    Ok(Value::Object(map))
}

fn decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                let b = u8::from_str_radix(hex, 16).map_err(|_| {
                    ApiError::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        "invalid_query_params",
                        "bad %-escape in the query string",
                    )
                })?;
                out.push(b);
                i += 2;
            }
            b'%' => {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_query_params",
                    "bad %-escape in the query string",
                ))
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_query_params",
            "the query string is not UTF-8",
        )
    })
}

/// Deserializers that accept a value from JSON or from a query string.
pub mod flex {
    use super::*;

    /// A number given as a number or as a string of digits.
    pub fn opt_usize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|v| Some(v as usize))
                .ok_or_else(|| serde::de::Error::custom("expected a non-negative integer")),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom("expected a non-negative integer")),
            Some(_) => Err(serde::de::Error::custom("expected a non-negative integer")),
        }
    }

    /// A boolean given as true/false or "true"/"false".
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(_) => Err(serde::de::Error::custom("expected true or false")),
        }
    }

    /// A list given as an array, a single value, or an empty query value.
    pub fn opt_vec<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        d: D,
    ) -> Result<Option<Vec<T>>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .into_iter()
                .filter(|v| v.as_str() != Some(""))
                .map(|v| serde_json::from_value(v).map_err(serde::de::Error::custom))
                .collect::<Result<Vec<T>, _>>()
                .map(Some),
            Some(Value::String(s)) if s.is_empty() => Ok(Some(Vec::new())),
            Some(v) => serde_json::from_value(v)
                .map(|x| Some(vec![x]))
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct P {
        device_id: Option<String>,
        #[serde(default, deserialize_with = "flex::opt_usize")]
        limit: Option<usize>,
        #[serde(default, deserialize_with = "flex::opt_vec")]
        access_code_ids: Option<Vec<String>>,
        #[serde(default, deserialize_with = "flex::opt_bool")]
        sync: Option<bool>,
    }

    fn get(q: &str) -> Result<P, ApiError> {
        parse(&Method::GET, Some(q), &HeaderMap::new(), b"")
    }

    #[test]
    fn query_strings_as_the_sdks_write_them() {
        let p = get("access_code_ids=a&access_code_ids=b&limit=10&sync=true&_strict=true").unwrap();
        assert_eq!(p.access_code_ids, Some(vec!["a".into(), "b".into()]));
        assert_eq!(p.limit, Some(10));
        assert_eq!(p.sync, Some(true));
        let p = get("access_code_ids=a&device_id=x%20y").unwrap();
        assert_eq!(p.access_code_ids, Some(vec!["a".into()]));
        assert_eq!(p.device_id.as_deref(), Some("x y"));
        assert_eq!(
            get("access_code_ids=").unwrap().access_code_ids,
            Some(vec![])
        );
        assert!(get("limit=ten").is_err());
        assert!(get("device_id=%zz").is_err());
    }

    #[test]
    fn errors_name_the_field_they_are_in_and_never_the_value() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct C {
            device_id: uuid::Uuid,
            code: Option<String>,
            preferred_code_length: Option<u8>,
            ids: Option<Vec<uuid::Uuid>>,
        }
        let post =
            |b: &str| parse::<C>(&Method::POST, None, &HeaderMap::new(), b.as_bytes()).unwrap_err();
        const DEV: &str = "8f8e3f0e-0000-4000-8000-000000000000";
        for (body, field) in [
            (r#"{"device_id": "n"}"#.to_string(), "device_id"),
            (
                format!(r#"{{"device_id": "{DEV}", "preferred_code_length": 6.5}}"#),
                "preferred_code_length",
            ),
            (
                format!(r#"{{"device_id": "{DEV}", "ids": ["{DEV}", "x"]}}"#),
                "ids[1]",
            ),
            (format!(r#"{{"device_id": "{DEV}", "code": 4817}}"#), "code"),
            ("{}".to_string(), "device_id"),
        ] {
            let e = post(&body);
            assert_eq!(e.validation.len(), 1, "{body}: {e:?}");
            assert_eq!(e.validation[0].0, field, "{body}: {e:?}");
            let text = format!("{} {}", e.message, e.validation[0].1);
            for value in ["6.5", "4817", "`x`", "\"x\""] {
                assert!(!text.contains(value), "{body}: {text}");
            }
        }
        assert_eq!(
            redact("invalid type: integer `4817`, expected a string"),
            "invalid type: integer, expected a string"
        );
        assert_eq!(
            redact("invalid value: floating point `6.5`, expected u8"),
            "invalid value: floating point, expected u8"
        );
        assert_eq!(
            redact("unknown variant `nope`, expected `throw` or `create_random_code`"),
            "unknown variant, expected `throw` or `create_random_code`"
        );
    }

    #[test]
    fn a_query_string_on_a_post_is_refused_by_name() {
        let e = parse::<serde_json::Value>(
            &Method::POST,
            Some("nmae=x&_strict=true"),
            &HeaderMap::new(),
            b"{}",
        )
        .unwrap_err();
        assert_eq!(e.validation[0].0, "nmae");
        parse::<serde_json::Value>(
            &Method::POST,
            Some("_strict=true"),
            &HeaderMap::new(),
            b"{}",
        )
        .unwrap();
    }

    #[test]
    fn json_bodies() {
        let p: P = parse(
            &Method::POST,
            None,
            &HeaderMap::new(),
            br#"{"limit": 5, "access_code_ids": ["a"]}"#,
        )
        .unwrap();
        assert_eq!(p.limit, Some(5));
        let e = parse::<P>(&Method::POST, None, &HeaderMap::new(), b"{not json").unwrap_err();
        assert_eq!(e.kind, "invalid_input");
        let e = parse::<P>(&Method::POST, None, &HeaderMap::new(), b"[1]").unwrap_err();
        assert_eq!(e.kind, "invalid_input");
        let e =
            parse::<P>(&Method::POST, None, &HeaderMap::new(), br#"{"limit": -3}"#).unwrap_err();
        assert!(
            e.validation.iter().any(|(f, _)| f == "limit") || e.message.contains("integer"),
            "{e:?}"
        );
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            "text/plain".parse().unwrap(),
        );
        let e = parse::<P>(&Method::POST, None, &h, b"{}").unwrap_err();
        assert_eq!(e.kind, "invalid_content_type");
        // An empty body is no parameters.
        assert_eq!(
            parse::<P>(&Method::POST, None, &HeaderMap::new(), b"")
                .unwrap()
                .limit,
            None
        );
    }
}
