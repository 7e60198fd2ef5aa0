//! Request parameters: from the query string for GET and DELETE, from a JSON body otherwise,
//! as Seam's SDKs send them (repeated keys for arrays, `_strict` appended and ignored).

use axum::http::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::ApiError;

/// Parse the parameters of a request into `T`.
pub fn parse<T: DeserializeOwned>(
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    let value = if method == Method::GET || method == Method::DELETE {
        query_to_json(query.unwrap_or(""))?
    } else {
        let trimmed = body.iter().filter(|b| !b.is_ascii_whitespace()).count();
        if trimmed == 0 {
            Value::Object(Map::new())
        } else {
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
                    format!("the body is not valid JSON: {e}"),
                )
            })?;
            if !v.is_object() {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_input",
                    "the body must be a JSON object",
                ));
            }
            v
        }
    };
    let mut value = value;
    if let Some(o) = value.as_object_mut() {
        o.remove("_strict");
    }
    serde_json::from_value(value).map_err(|e| {
        let msg = e.to_string();
        // serde names the field in backticks: turn it into a validation error on that field.
        let field = msg.split('`').nth(1).unwrap_or("body").to_string();
        ApiError::invalid_fields(vec![(field, msg)])
    })
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
