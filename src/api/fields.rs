//! What each route takes: its parameters by name and kind, and the ones Seam defines that
//! zwlock refuses, with why.
//!
//! The dispatcher checks a request's parameters against its route's list before the handler
//! sees them ([`check`]): a name the route does not know is a 400 naming it (a typo such as
//! `nmae` or `pin` must never become a code with a generated PIN); a value of the wrong kind
//! is a 400 naming the field and the expected form, never repeating the value (it may be a
//! PIN); a parameter zwlock cannot honour (an offline-code option, a filter on objects zwlock
//! does not have) is a 400 saying why, never silence or a larger result. Values from a query
//! string are strings; they are turned into the JSON kinds here (`"true"` → `true`, `"5"` →
//! `5`, one value → a list of one), so handlers see the same object from a query or a body.
//! A JSON body must use JSON's kinds (`"limit": "5"` is refused). `null` is accepted only where
//! it means something (unsetting a name or a time on update, no cursor on a first page).
//!
//! The lists follow Seam's API (the parameters its SDKs send), plus zwlock's own (`sync`,
//! `name` on `devices/get`, the `zwave/*` routes). `tests/api.rs` checks that
//! `src/api/openapi.json` documents exactly these.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;

/// What a parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Uuid,
    /// An RFC 3339 date and time with an offset.
    Time,
    Bool,
    /// A non-negative integer (a JSON number; `6.0` counts as 6).
    Int,
    Str,
    /// One of these strings.
    Enum(&'static [&'static str]),
    UuidList,
    TimeList,
    StrList,
    IntList,
}

impl Kind {
    /// How the expected form is named in errors.
    pub fn expected(self) -> String {
        match self {
            Kind::Uuid => "expected a UUID, e.g. 8f8e3f0e-0000-4000-8000-000000000000".into(),
            Kind::Time => TIME_FORM.into(),
            Kind::Bool => "expected true or false".into(),
            Kind::Int => "expected a non-negative integer".into(),
            Kind::Str => "expected a string".into(),
            Kind::Enum(values) => format!("expected one of {}", values.join(", ")),
            Kind::UuidList => "expected a list of UUIDs".into(),
            Kind::TimeList => format!("expected a list of times, each {}", &TIME_FORM[9..]),
            Kind::StrList => "expected a list of strings".into(),
            Kind::IntList => "expected a list of non-negative integers".into(),
        }
    }

    fn item(self) -> Option<Kind> {
        match self {
            Kind::UuidList => Some(Kind::Uuid),
            Kind::TimeList => Some(Kind::Time),
            Kind::StrList => Some(Kind::Str),
            Kind::IntList => Some(Kind::Int),
            _ => None,
        }
    }
}

const TIME_FORM: &str =
    "expected an ISO 8601 / RFC 3339 date and time with a UTC offset, e.g. 2030-01-01T09:00:00Z or 2030-01-01T10:00:00+01:00";

/// Whether zwlock honours a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Accepted,
    /// Any value is refused, for this reason.
    Refused(&'static str),
    /// This value is refused, for this reason (other values are accepted).
    RefusedValue(bool, &'static str),
}

/// One parameter of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub rule: Rule,
    /// Whether `null` means something here ("unset it", "no cursor"); elsewhere a null is
    /// refused like any other value of the wrong kind.
    pub nullable: bool,
}

const fn p(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        required: false,
        rule: Rule::Accepted,
        nullable: false,
    }
}

const fn req(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        required: true,
        rule: Rule::Accepted,
        nullable: false,
    }
}

const fn refused(name: &'static str, kind: Kind, why: &'static str) -> Param {
    Param {
        name,
        kind,
        required: false,
        rule: Rule::Refused(why),
        nullable: false,
    }
}

const fn refused_if(name: &'static str, value: bool, why: &'static str) -> Param {
    Param {
        name,
        kind: Kind::Bool,
        required: false,
        rule: Rule::RefusedValue(value, why),
        nullable: false,
    }
}

/// An optional parameter where `null` means "unset it" or "none".
const fn null_ok(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        required: false,
        rule: Rule::Accepted,
        nullable: true,
    }
}

use Kind::*;

const NO_OFFLINE: &str = "Z-Wave keypad locks have no offline (algorithmic) access codes";
const NO_ROUNDING: &str =
    "max_time_rounding applies to offline access codes, which Z-Wave keypad locks do not have: zwlock sets and removes codes at the exact times given";
const NO_GRANTS: &str =
    "zwlock has no access grants or access methods: this filter is not supported";
const NO_USERS: &str = "zwlock has no user identities or customers: this filter is not supported";
const NO_ACCOUNTS: &str =
    "zwlock has no connected accounts or Connect Webviews: its locks are on its own Z-Wave stick";
const NO_SPACES: &str = "zwlock has no spaces or locations: this filter is not supported";
const NO_ACS: &str = "zwlock has no access control systems: this filter is not supported";
const NO_DEVICE_FILTER: &str =
    "zwlock's devices/list filters by device_ids, device_type and device_types only";
const NO_EVENT_FILTER: &str =
    "zwlock's events/list filters by time, device, access code and event type only";
const NO_PIN_LENGTH_ON_UPDATE: &str =
    "preferred_code_length applies when zwlock generates a PIN at create; give code to change a PIN";
const NO_BACKUP_ON_UPDATE: &str = "use_backup_access_code_pool is set when a code is created";

/// The code parameters `create` and `create_multiple` share.
macro_rules! code_params {
    () => {
        [
            p("allow_external_modification", Bool),
            p("attempt_for_offline_device", Bool),
            p("code", Str),
            p("ends_at", Time),
            p("is_external_modification_allowed", Bool),
            p("name", Str),
            p("prefer_native_scheduling", Bool),
            p("preferred_code_length", Int),
            p("starts_at", Time),
            p("use_backup_access_code_pool", Bool),
        ]
    };
}

const CREATE: &[Param] = &{
    let base = code_params!();
    let more = [
        req("device_id", Uuid),
        p("common_code_key", Str),
        refused_if("is_offline_access_code", true, NO_OFFLINE),
        p("is_one_time_use", Bool),
        refused(
            "max_time_rounding",
            Enum(&["1hour", "1day", "1h", "1d"]),
            NO_ROUNDING,
        ),
        refused_if("use_offline_access_code", true, NO_OFFLINE),
        p("sync", Bool),
    ];
    concat::<10, 7, 17>(base, more)
};

const CREATE_MULTIPLE: &[Param] = &{
    let base = code_params!();
    let more = [
        req("device_ids", UuidList),
        p(
            "behavior_when_code_cannot_be_shared",
            Enum(&["throw", "create_random_code"]),
        ),
    ];
    concat::<10, 2, 12>(base, more)
};

const fn concat<const A: usize, const B: usize, const C: usize>(
    a: [Param; A],
    b: [Param; B],
) -> [Param; C] {
    assert!(A + B == C);
    let mut out = [p("", Str); C];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < C {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

const BY_CODE: &[Param] = &[
    p("access_code_id", Uuid),
    p("device_id", Uuid),
    p("code", Str),
];

const LIST: &[Param] = &[
    p("device_id", Uuid),
    p("access_code_ids", UuidList),
    p("search", Str),
    p("limit", Int),
    null_ok("page_cursor", Str),
    refused("access_grant_id", Uuid, NO_GRANTS),
    refused("access_grant_key", Str, NO_GRANTS),
    refused("access_method_id", Uuid, NO_GRANTS),
    refused("customer_key", Str, NO_USERS),
    refused("user_identifier_key", Str, NO_USERS),
];

const UPDATE: &[Param] = &[
    req("access_code_id", Uuid),
    p("allow_external_modification", Bool),
    p("attempt_for_offline_device", Bool),
    p("code", Str),
    p("device_id", Uuid),
    null_ok("ends_at", Time),
    p("is_external_modification_allowed", Bool),
    p("is_managed", Bool),
    refused_if("is_offline_access_code", true, NO_OFFLINE),
    p("is_one_time_use", Bool),
    refused(
        "max_time_rounding",
        Enum(&["1hour", "1day", "1h", "1d"]),
        NO_ROUNDING,
    ),
    null_ok("name", Str),
    p("prefer_native_scheduling", Bool),
    refused("preferred_code_length", Int, NO_PIN_LENGTH_ON_UPDATE),
    null_ok("starts_at", Time),
    p("type", Enum(&["ongoing", "time_bound"])),
    refused("use_backup_access_code_pool", Bool, NO_BACKUP_ON_UPDATE),
    refused_if("use_offline_access_code", true, NO_OFFLINE),
    p("sync", Bool),
];

const UPDATE_MULTIPLE: &[Param] = &[
    req("common_code_key", Str),
    null_ok("ends_at", Time),
    null_ok("name", Str),
    null_ok("starts_at", Time),
];

const DELETE: &[Param] = &[
    req("access_code_id", Uuid),
    p("device_id", Uuid),
    p("sync", Bool),
];

const DEVICE: &[Param] = &[req("device_id", Uuid)];
const ACCESS_CODE: &[Param] = &[req("access_code_id", Uuid)];

const UNMANAGED_LIST: &[Param] = &[
    req("device_id", Uuid),
    p("search", Str),
    p("limit", Int),
    null_ok("page_cursor", Str),
    refused("user_identifier_key", Str, NO_USERS),
];

const CONVERT: &[Param] = &[
    req("access_code_id", Uuid),
    p("allow_external_modification", Bool),
    p("is_external_modification_allowed", Bool),
    // One workspace: there is nothing to force; the conversion is the same either way.
    p("force", Bool),
];

const UNMANAGED_UPDATE: &[Param] = &[
    req("access_code_id", Uuid),
    req("is_managed", Bool),
    p("allow_external_modification", Bool),
    p("is_external_modification_allowed", Bool),
    p("force", Bool),
];

const DEVICES_LIST: &[Param] = &[
    p("device_ids", UuidList),
    p("device_type", Str),
    p("device_types", StrList),
    p("limit", Int),
    null_ok("page_cursor", Str),
    refused("connect_webview_id", Uuid, NO_ACCOUNTS),
    refused("connected_account_id", Uuid, NO_ACCOUNTS),
    refused("connected_account_ids", UuidList, NO_ACCOUNTS),
    refused("created_before", Time, NO_DEVICE_FILTER),
    refused("custom_metadata_has", Str, NO_DEVICE_FILTER),
    refused("customer_key", Str, NO_USERS),
    refused("manufacturer", Str, NO_DEVICE_FILTER),
    refused("search", Str, NO_DEVICE_FILTER),
    refused("space_id", Uuid, NO_SPACES),
    refused("unstable_location_id", Uuid, NO_SPACES),
    refused("user_identifier_key", Str, NO_USERS),
];

const DEVICES_GET: &[Param] = &[p("device_id", Uuid), p("name", Str)];

const INCLUDE: &[Param] = &[
    p("pin", Str),
    p("timeout_seconds", Int),
    p("required_security", Enum(&["s2_access_control", "none"])),
];

const EXCLUDE: &[Param] = &[p("timeout_seconds", Int)];

const EVENTS_LIST: &[Param] = &[
    p("since", Time),
    p("between", TimeList),
    p("device_id", Uuid),
    p("device_ids", UuidList),
    p("access_code_id", Uuid),
    p("access_code_ids", UuidList),
    p("event_type", Str),
    p("event_types", StrList),
    p("limit", Int),
    refused("access_grant_id", Uuid, NO_GRANTS),
    refused("access_grant_ids", UuidList, NO_GRANTS),
    refused("access_method_id", Uuid, NO_GRANTS),
    refused("access_method_ids", UuidList, NO_GRANTS),
    refused("acs_access_group_id", Uuid, NO_ACS),
    refused("acs_credential_id", Uuid, NO_ACS),
    refused("acs_encoder_id", Uuid, NO_ACS),
    refused("acs_entrance_id", Uuid, NO_ACS),
    refused("acs_system_id", Uuid, NO_ACS),
    refused("acs_system_ids", UuidList, NO_ACS),
    refused("acs_user_id", Uuid, NO_ACS),
    refused("connect_webview_id", Uuid, NO_ACCOUNTS),
    refused("connected_account_id", Uuid, NO_ACCOUNTS),
    refused("customer_key", Str, NO_USERS),
    refused("event_ids", UuidList, NO_EVENT_FILTER),
    refused("space_id", Uuid, NO_SPACES),
    refused("space_ids", UuidList, NO_SPACES),
    refused("unstable_offset", Int, NO_EVENT_FILTER),
    refused("user_identity_id", Uuid, NO_USERS),
];

const ATTEMPT: &[Param] = &[req("action_attempt_id", Uuid)];
const ATTEMPTS: &[Param] = &[req("action_attempt_ids", UuidList)];
const EVENT: &[Param] = &[
    p("event_id", Uuid),
    p("device_id", Uuid),
    p("event_type", Str),
];
const REPORT_CONSTRAINTS: &[Param] = &[
    req("device_id", Uuid),
    p("supported_code_lengths", IntList),
    p("min_code_length", Int),
    p("max_code_length", Int),
];
const SIMULATE_UNMANAGED: &[Param] = &[req("device_id", Uuid), req("code", Str), p("name", Str)];
const KEYPAD_ENTRY: &[Param] = &[req("device_id", Uuid), req("code", Str)];
const DEVICE_UPDATE: &[Param] = &[
    req("device_id", Uuid),
    p("name", Str),
    p("is_managed", Bool),
];

/// Every route's parameters, by path. A route in [`super::ROUTES`] without an entry here
/// takes no parameters.
pub const ROUTE_PARAMS: &[(&str, &[Param])] = &[
    ("/access_codes/create", CREATE),
    ("/access_codes/create_multiple", CREATE_MULTIPLE),
    ("/access_codes/get", BY_CODE),
    ("/access_codes/list", LIST),
    ("/access_codes/update", UPDATE),
    ("/access_codes/update_multiple", UPDATE_MULTIPLE),
    ("/access_codes/delete", DELETE),
    ("/access_codes/generate_code", DEVICE),
    ("/access_codes/pull_backup_access_code", ACCESS_CODE),
    ("/access_codes/unmanaged/list", UNMANAGED_LIST),
    ("/access_codes/unmanaged/get", BY_CODE),
    ("/access_codes/unmanaged/update", UNMANAGED_UPDATE),
    ("/access_codes/unmanaged/delete", ACCESS_CODE),
    ("/access_codes/unmanaged/convert_to_managed", CONVERT),
    ("/devices/list", DEVICES_LIST),
    ("/devices/get", DEVICES_GET),
    ("/locks/list", DEVICES_LIST),
    ("/locks/get", DEVICES_GET),
    ("/locks/lock_door", DEVICE),
    ("/locks/unlock_door", DEVICE),
    ("/locks/sync_access_codes", DEVICE),
    ("/zwave/include", INCLUDE),
    ("/zwave/exclude", EXCLUDE),
    ("/zwave/remove_failed", DEVICE),
    ("/events/list", EVENTS_LIST),
    ("/action_attempts/get", ATTEMPT),
    ("/action_attempts/list", ATTEMPTS),
    ("/events/get", EVENT),
    ("/workspaces/get", &[]),
    (
        "/access_codes/report_device_constraints",
        REPORT_CONSTRAINTS,
    ),
    (
        "/access_codes/simulate/create_unmanaged_access_code",
        SIMULATE_UNMANAGED,
    ),
    ("/locks/simulate/keypad_code_entry", KEYPAD_ENTRY),
    ("/devices/update", DEVICE_UPDATE),
    ("/health", &[]),
];

/// The parameters of the route at `path` (none for a route that is not listed).
pub fn params_of(path: &str) -> &'static [Param] {
    ROUTE_PARAMS
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[], |(_, params)| params)
}

/// Check `params` against `route`, turning query-string values into their JSON kinds when
/// `from_query`. All that is wrong is reported at once.
pub fn check(
    route: &[Param],
    params: &mut Map<String, Value>,
    from_query: bool,
) -> Result<(), ApiError> {
    let mut errors: Vec<(String, String)> = Vec::new();
    for name in params.keys() {
        if route.iter().any(|p| p.name == name) {
            continue;
        }
        // The SDKs send an object's keys as `name.key=value` in a query string.
        let base = name.split('.').next().unwrap_or(name);
        let message = match route.iter().find(|p| p.name == base && base != name) {
            Some(Param {
                rule: Rule::Refused(why),
                ..
            }) => format!("not supported: {why}"),
            Some(p) => format!("{} (not an object)", p.kind.expected()),
            None => unknown(name, route),
        };
        errors.push((name.clone(), message));
    }
    for param in route {
        let Some(value) = params.get_mut(param.name) else {
            if param.required {
                errors.push((param.name.into(), "is required".into()));
            }
            continue;
        };
        if from_query {
            from_query_string(param.kind, value);
        }
        if value.is_null() {
            if param.required {
                errors.push((param.name.into(), "is required".into()));
            } else if !param.nullable {
                errors.push((
                    param.name.into(),
                    format!(
                        "{}; leave it out rather than send null",
                        param.kind.expected()
                    ),
                ));
            }
            continue;
        }
        if let Err(m) = check_kind(param.kind, value) {
            errors.push((param.name.into(), m));
            continue;
        }
        match param.rule {
            Rule::Accepted => {}
            Rule::Refused(why) => errors.push((param.name.into(), format!("not supported: {why}"))),
            Rule::RefusedValue(v, why) if value.as_bool() == Some(v) => {
                errors.push((param.name.into(), format!("{v} is not supported: {why}")))
            }
            Rule::RefusedValue(..) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(errors))
    }
}

/// The message for a parameter the route does not take, with the closest name it does.
fn unknown(name: &str, route: &[Param]) -> String {
    let names: Vec<&str> = route.iter().map(|p| p.name).collect();
    let closest = names
        .iter()
        .map(|n| (edit_distance(name, n), *n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min();
    let takes = if names.is_empty() {
        "this route takes no parameters".to_string()
    } else {
        format!("this route takes {}", names.join(", "))
    };
    match closest {
        Some((_, n)) => format!("unknown parameter (did you mean {n}?); {takes}"),
        None => format!("unknown parameter; {takes}"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = here;
        }
    }
    row[b.len()]
}

/// Query strings hold strings: give them the kind the parameter has. What does not convert is
/// left as it is, for [`check_kind`] to refuse.
fn from_query_string(kind: Kind, value: &mut Value) {
    if let Some(item) = kind.item() {
        let items = match value.take() {
            Value::Array(a) => a,
            Value::String(s) if s.is_empty() => Vec::new(),
            one => vec![one],
        };
        *value = Value::Array(
            items
                .into_iter()
                .map(|mut v| {
                    from_query_string(item, &mut v);
                    v
                })
                .collect(),
        );
        return;
    }
    let Value::String(s) = &*value else { return };
    match kind {
        Kind::Bool if s == "true" => *value = Value::Bool(true),
        Kind::Bool if s == "false" => *value = Value::Bool(false),
        Kind::Int => {
            if let Ok(n) = s.parse::<u64>() {
                *value = Value::from(n);
            }
        }
        _ => {}
    }
}

/// Whether `value` is of `kind`; normalises `6.0` to `6` for integers.
fn check_kind(kind: Kind, value: &mut Value) -> Result<(), String> {
    if let Some(item) = kind.item() {
        let Value::Array(items) = value else {
            return Err(kind.expected());
        };
        for (i, v) in items.iter_mut().enumerate() {
            check_kind(item, v).map_err(|m| format!("item {i}: {m}"))?;
        }
        return Ok(());
    }
    let ok = match kind {
        Kind::Uuid => value.as_str().is_some_and(|s| Uuid::parse_str(s).is_ok()),
        Kind::Time => match value.as_str() {
            Some(s) => return check_time(s),
            None => false,
        },
        Kind::Bool => value.is_boolean(),
        Kind::Int => {
            if let Some(f) = value.as_f64().filter(|_| !value.is_u64()) {
                if f >= 0.0 && f.fract() == 0.0 && f <= u32::MAX as f64 {
                    *value = Value::from(f as u64);
                }
            }
            value.is_u64()
        }
        Kind::Str => value.is_string(),
        Kind::Enum(values) => value.as_str().is_some_and(|s| values.contains(&s)),
        _ => unreachable!("lists are handled above"),
    };
    if ok {
        Ok(())
    } else {
        Err(kind.expected())
    }
}

/// A time must say which instant it is: a date alone or a time without an offset is refused.
fn check_time(s: &str) -> Result<(), String> {
    if DateTime::parse_from_rfc3339(s).is_ok() {
        return Ok(());
    }
    if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
        return Err(format!("is a date without a time; {TIME_FORM}"));
    }
    if NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        || NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").is_ok()
    {
        return Err(format!("has no UTC offset; {TIME_FORM}"));
    }
    Err(TIME_FORM.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(route: &str, v: Value, from_query: bool) -> Result<Value, ApiError> {
        let mut m = v.as_object().unwrap().clone();
        check(params_of(route), &mut m, from_query)?;
        Ok(Value::Object(m))
    }

    fn fields(e: &ApiError) -> Vec<&str> {
        e.validation.iter().map(|(f, _)| f.as_str()).collect()
    }

    const DEV: &str = "8f8e3f0e-0000-4000-8000-000000000000";

    #[test]
    fn a_typo_is_refused_by_name_with_the_closest_parameter() {
        let e = run(
            "/access_codes/create",
            json!({ "device_id": DEV, "nmae": "x", "pin": "1234" }),
            false,
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.kind, "invalid_input");
        let mut f = fields(&e);
        f.sort();
        assert_eq!(f, ["nmae", "pin"]);
        let nmae = &e.validation.iter().find(|(f, _)| f == "nmae").unwrap().1;
        assert!(nmae.contains("did you mean name?"), "{nmae}");
        assert!(
            e.message.contains("nmae") && e.message.contains("pin"),
            "{}",
            e.message
        );
    }

    #[test]
    fn every_wrong_kind_names_its_field_and_never_the_value() {
        let e = run(
            "/access_codes/create",
            json!({ "device_id": "n", "code": 123456, "starts_at": "2030-01-01",
                    "ends_at": "2030-01-02T10:00:00", "preferred_code_length": 6.5,
                    "sync": "yes" }),
            false,
        )
        .unwrap_err();
        let mut f = fields(&e);
        f.sort();
        assert_eq!(
            f,
            [
                "code",
                "device_id",
                "ends_at",
                "preferred_code_length",
                "starts_at",
                "sync"
            ]
        );
        let text = format!("{:?}", e.validation);
        assert!(!text.contains("123456"), "{text}");
        let msg = |n: &str| e.validation.iter().find(|(f, _)| f == n).unwrap().1.clone();
        assert!(
            msg("starts_at").contains("date without a time"),
            "{}",
            msg("starts_at")
        );
        assert!(
            msg("ends_at").contains("no UTC offset"),
            "{}",
            msg("ends_at")
        );
        assert!(msg("ends_at").contains("2030-01-01T09:00:00Z"));
        assert!(msg("device_id").contains("UUID"));
    }

    #[test]
    fn whole_floats_count_as_integers_and_query_strings_get_their_kinds() {
        let v = run(
            "/access_codes/create",
            json!({ "device_id": DEV, "preferred_code_length": 6.0 }),
            false,
        )
        .unwrap();
        assert_eq!(v["preferred_code_length"], json!(6));
        let v = run(
            "/access_codes/list",
            json!({ "device_id": DEV, "limit": "10", "access_code_ids": DEV }),
            true,
        )
        .unwrap();
        assert_eq!(v["limit"], json!(10));
        assert_eq!(v["access_code_ids"], json!([DEV]));
        let v = run(
            "/access_codes/delete",
            json!({ "access_code_id": DEV, "sync": "true" }),
            true,
        )
        .unwrap();
        assert_eq!(v["sync"], json!(true));
        // A JSON body uses JSON's kinds.
        let e = run(
            "/access_codes/list",
            json!({ "device_id": DEV, "limit": "10" }),
            false,
        )
        .unwrap_err();
        assert_eq!(fields(&e), ["limit"]);
        assert!(run("/access_codes/list", json!({ "limit": "ten" }), true).is_err());
    }

    #[test]
    fn what_zwlock_cannot_honour_is_refused_with_why() {
        for (route, body, field) in [
            (
                "/access_codes/create",
                json!({ "device_id": DEV, "max_time_rounding": "1d" }),
                "max_time_rounding",
            ),
            (
                "/access_codes/create",
                json!({ "device_id": DEV, "use_offline_access_code": true }),
                "use_offline_access_code",
            ),
            (
                "/access_codes/create",
                json!({ "device_id": DEV, "is_offline_access_code": true }),
                "is_offline_access_code",
            ),
            (
                "/access_codes/list",
                json!({ "device_id": DEV, "access_method_id": DEV }),
                "access_method_id",
            ),
            (
                "/access_codes/list",
                json!({ "device_id": DEV, "access_grant_id": DEV }),
                "access_grant_id",
            ),
            (
                "/access_codes/list",
                json!({ "device_id": DEV, "user_identifier_key": "u" }),
                "user_identifier_key",
            ),
            (
                "/access_codes/list",
                json!({ "device_id": DEV, "customer_key": "c" }),
                "customer_key",
            ),
            (
                "/devices/list",
                json!({ "manufacturer": "yale" }),
                "manufacturer",
            ),
            (
                "/events/list",
                json!({ "since": "2030-01-01T00:00:00Z", "space_id": DEV }),
                "space_id",
            ),
        ] {
            let e = run(route, body, false).unwrap_err();
            assert_eq!(fields(&e), [field], "{route}");
            assert!(
                e.validation[0].1.contains("not supported"),
                "{:?}",
                e.validation
            );
        }
        // The harmless values are accepted.
        run(
            "/access_codes/create",
            json!({ "device_id": DEV, "use_offline_access_code": false, "is_offline_access_code": false }),
            false,
        )
        .unwrap();
    }

    #[test]
    fn an_objects_keys_in_a_query_string_get_the_reason_of_their_parameter() {
        let e = run(
            "/devices/list",
            json!({ "custom_metadata_has.floor": "2" }),
            true,
        )
        .unwrap_err();
        assert_eq!(fields(&e), ["custom_metadata_has.floor"]);
        assert!(
            e.validation[0].1.contains("not supported"),
            "{:?}",
            e.validation
        );
    }

    #[test]
    fn required_parameters_and_nulls() {
        let e = run("/access_codes/create", json!({}), false).unwrap_err();
        assert_eq!(fields(&e), ["device_id"]);
        let e = run("/access_codes/create", json!({ "device_id": null }), false).unwrap_err();
        assert_eq!(fields(&e), ["device_id"]);
        // null where it means nothing is refused; where it means "none", accepted.
        let e = run(
            "/access_codes/create",
            json!({ "device_id": DEV, "name": null, "sync": null }),
            false,
        )
        .unwrap_err();
        assert_eq!(fields(&e), ["name", "sync"]);
        run(
            "/access_codes/list",
            json!({ "device_id": DEV, "page_cursor": null }),
            false,
        )
        .unwrap();
        // null unsets an optional field (update's name, ends_at).
        run(
            "/access_codes/update",
            json!({ "access_code_id": DEV, "name": null, "ends_at": null }),
            false,
        )
        .unwrap();
        let e = run("/health", json!({ "x": 1 }), false).unwrap_err();
        assert!(e.validation[0].1.contains("takes no parameters"));
    }

    #[test]
    fn every_route_lists_each_parameter_once() {
        for (route, params) in ROUTE_PARAMS {
            let mut names: Vec<&str> = params.iter().map(|p| p.name).collect();
            let n = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), n, "{route} lists a parameter twice");
            assert!(!names.contains(&""), "{route}");
        }
    }
}
