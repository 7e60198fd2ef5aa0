//! Pages of lists: the page sizes the API allows, pages cut from a list the engine returns
//! whole (unmanaged codes, devices), and Seam's `pagination` object, whose `next_page_url`
//! repeats the request's filters.

use serde_json::{json, Map, Value};

use super::error::ApiError;

/// Items in a page when the request gives no `limit` (Seam's own default is 55,000: one
/// answer then holds a whole lock however many codes wait on it, and 50 clients listing a lock
/// with 3,000 codes took the daemon from 24 MB to 350 MB). A lock has at most a few hundred
/// slots, so a page of 1,000 still holds every code a lock can hold at once.
pub const DEFAULT_PAGE: usize = 1000;

/// The largest `limit` accepted; a larger one is a 400 naming `limit`.
pub const MAX_PAGE: usize = 1000;

/// The page size a request asks for, or the default.
pub fn limit(asked: Option<usize>) -> Result<usize, ApiError> {
    match asked {
        None => Ok(DEFAULT_PAGE),
        Some(0) => Err(ApiError::field("limit", "must be at least 1")),
        Some(n) if n > MAX_PAGE => Err(ApiError::field(
            "limit",
            format!("must be at most {MAX_PAGE}; page through the rest with page_cursor"),
        )),
        Some(n) => Ok(n),
    }
}

/// One page of `items` (ordered by `key`, ascending and unique) after `cursor`. Cursors are
/// `<kind>-<key>`: the key of the last item of the page before.
pub fn page<T>(
    items: Vec<T>,
    kind: &str,
    key: impl Fn(&T) -> u64,
    limit: usize,
    cursor: Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let after = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.strip_prefix(kind)
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|k| k.parse::<u64>().ok())
                .ok_or_else(|| ApiError::field("page_cursor", "not a cursor this server gave"))?,
        ),
    };
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|i| after.is_none_or(|a| key(i) > a))
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = if more {
        rest.last().map(|i| format!("{kind}-{}", key(i)))
    } else {
        None
    };
    Ok((rest, next))
}

/// Seam's `pagination` object. `next_page_url` is a GET of the same route with the same
/// parameters (from the query string or the body) and the next cursor.
pub fn pagination(path: &str, params: &Map<String, Value>, next: Option<String>) -> Value {
    let url = next.as_ref().map(|cursor| {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in params {
            if k == "page_cursor" {
                continue;
            }
            match v {
                Value::Array(items) => {
                    for i in items {
                        pairs.push((k.clone(), scalar(i)));
                    }
                }
                Value::Null => {}
                other => pairs.push((k.clone(), scalar(other))),
            }
        }
        pairs.push(("page_cursor".into(), cursor.clone()));
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
            .collect();
        format!("http://localhost{path}?{}", query.join("&"))
    });
    json!({
        "has_next_page": next.is_some(),
        "next_page_cursor": next,
        "next_page_url": url,
    })
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_key_and_end() {
        let items: Vec<u64> = vec![1, 2, 5, 9, 12];
        let (p, next) = page(items.clone(), "slot", |i| *i, 2, None).unwrap();
        assert_eq!((p, next.as_deref()), (vec![1, 2], Some("slot-2")));
        let (p, next) = page(items.clone(), "slot", |i| *i, 2, Some("slot-2")).unwrap();
        assert_eq!((p, next.as_deref()), (vec![5, 9], Some("slot-9")));
        let (p, next) = page(items.clone(), "slot", |i| *i, 2, Some("slot-9")).unwrap();
        assert_eq!((p, next), (vec![12], None));
        // An item gone since the last page does not shift the next one.
        let (p, _) = page(vec![1, 9, 12], "slot", |i| *i, 2, Some("slot-2")).unwrap();
        assert_eq!(p, vec![9, 12]);
        for bad in ["node-2", "slot-x", "slot2", "2"] {
            let e = page(items.clone(), "slot", |i| *i, 2, Some(bad)).unwrap_err();
            assert_eq!(e.validation[0].0, "page_cursor", "{bad}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), DEFAULT_PAGE);
        assert_eq!(limit(Some(7)).unwrap(), 7);
        assert_eq!(limit(Some(0)).unwrap_err().validation[0].0, "limit");
        let e = limit(Some(MAX_PAGE + 1)).unwrap_err();
        assert!(e.validation[0].1.contains("at most"), "{e:?}");
    }

    #[test]
    fn the_next_page_url_keeps_the_filters() {
        let params = json!({ "device_id": "d 1", "access_code_ids": ["a", "b"], "limit": 2,
                             "page_cursor": "old", "search": null })
        .as_object()
        .unwrap()
        .clone();
        let p = pagination("/access_codes/list", &params, Some("t~1+2".into()));
        assert_eq!(p["has_next_page"], true);
        assert_eq!(
            p["next_page_url"],
            "http://localhost/access_codes/list?access_code_ids=a&access_code_ids=b&device_id=d%201&limit=2&page_cursor=t~1%2B2"
        );
        let p = pagination("/access_codes/list", &params, None);
        assert_eq!(p["has_next_page"], false);
        assert!(p["next_page_url"].is_null());
    }
}
