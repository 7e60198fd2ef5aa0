#!/usr/bin/env python3
"""Write src/api/openapi.json from the route table in src/api/mod.rs.

Run from the repository root after changing routes: python3 tools/gen-openapi.py
The test api::unmanaged_codes_devices_door_and_attempts checks that every route and method
is in the document.
"""
import json
import re

src = open("src/api/mod.rs").read()
routes = re.findall(r'\(\s*"(/[^"]+)",\s*&\[([^\]]*)\],\s*routes::(\w+),?\s*\)', src, re.S)

uuid = {"type": "string", "format": "uuid"}
ts = {"type": "string", "format": "date-time"}


def obj(props, required=()):
    o = {"type": "object", "properties": props}
    if required:
        o["required"] = list(required)
    return o


def ref(n):
    return {"$ref": "#/components/schemas/" + n}


err = obj({"error": obj({"type": {"type": "string"}, "message": {"type": "string"},
                         "validation_errors": {"type": "object"}, "data": {"type": "object"}}, ["type", "message"]),
           "ok": {"type": "boolean", "enum": [False]}}, ["error", "ok"])
issue = obj({"error_code": {"type": "string"}, "message": {"type": "string"}, "created_at": ts,
             "is_access_code_error": {"type": "boolean"}, "is_device_error": {"type": "boolean"}}, ["error_code", "message"])
warning = obj({"warning_code": {"type": "string"}, "message": {"type": "string"}, "created_at": ts}, ["warning_code", "message"])
issues = {"type": "array", "items": ref("error_item")}
warnings = {"type": "array", "items": ref("warning_item")}
access_code = obj({
    "access_code_id": uuid, "device_id": uuid, "workspace_id": uuid,
    "code": {"type": "string", "nullable": True}, "name": {"type": "string", "nullable": True},
    "common_code_key": {"type": "string", "nullable": True},
    "appearance": {"type": "object", "nullable": True, "description": "Always null: Z-Wave User Code locks store no names."},
    "type": {"type": "string", "enum": ["ongoing", "time_bound"]},
    "status": {"type": "string", "enum": ["unset", "setting", "set", "removing", "unknown"]},
    "starts_at": {**ts, "nullable": True}, "ends_at": {**ts, "nullable": True}, "created_at": ts,
    "errors": issues, "warnings": warnings,
    "pending_mutations": {"type": "array", "items": {"type": "object"}},
    "is_managed": {"type": "boolean"}, "is_scheduled_on_device": {"type": "boolean"},
    "is_backup_access_code_available": {"type": "boolean"}, "is_backup": {"type": "boolean"},
    "pulled_backup_access_code_id": {**uuid, "nullable": True},
    "is_waiting_for_code_assignment": {"type": "boolean"},
    "is_external_modification_allowed": {"type": "boolean"}, "is_one_time_use": {"type": "boolean"},
    "is_offline_access_code": {"type": "boolean"},
    "slot": {"type": "integer", "nullable": True, "description": "The lock slot (user id) the code occupies."},
    "used_at": {**ts, "nullable": True, "description": "When a one-time code was used."},
}, ["access_code_id", "device_id", "workspace_id", "code", "name", "type", "status", "created_at", "errors",
    "warnings", "pending_mutations", "is_managed", "is_backup_access_code_available",
    "is_external_modification_allowed", "is_one_time_use", "is_offline_access_code"])
unmanaged = obj({"access_code_id": uuid, "device_id": uuid, "workspace_id": uuid,
                 "code": {"type": "string", "nullable": True}, "name": {"type": "string", "nullable": True},
                 "type": {"type": "string"}, "status": {"type": "string", "enum": ["set", "unset"]},
                 "created_at": ts, "errors": issues, "warnings": warnings,
                 "is_managed": {"type": "boolean", "enum": [False]}, "slot": {"type": "integer"}},
                ["access_code_id", "device_id", "code", "status", "is_managed"])
device = obj({"device_id": uuid, "device_type": {"type": "string"}, "display_name": {"type": "string"},
              "workspace_id": uuid, "created_at": ts,
              "capabilities_supported": {"type": "array", "items": {"type": "string"}},
              "properties": {"type": "object"}, "errors": {"type": "array", "items": {"type": "object"}},
              "warnings": {"type": "array", "items": {"type": "object"}}, "is_managed": {"type": "boolean"}},
             ["device_id", "device_type", "properties", "errors", "warnings"])
event = obj({"event_id": uuid, "event_type": {"type": "string"}, "workspace_id": uuid, "created_at": ts,
             "occurred_at": ts, "device_id": uuid, "access_code_id": uuid},
            ["event_id", "event_type", "created_at", "occurred_at"])
attempt = obj({"action_attempt_id": uuid, "action_type": {"type": "string"},
               "status": {"type": "string", "enum": ["pending", "success", "error"]},
               "result": {"type": "object", "nullable": True}, "error": {"type": "object", "nullable": True}},
              ["action_attempt_id", "action_type", "status"])
pagination = obj({"has_next_page": {"type": "boolean"}, "next_page_cursor": {"type": "string", "nullable": True},
                  "next_page_url": {"type": "string", "nullable": True}},
                 ["has_next_page", "next_page_cursor", "next_page_url"])

# Parameters, route by route: what src/api/fields.rs accepts (tests/api.rs checks they agree).
# Parameters Seam defines that zwlock refuses whatever their value are left out (a request with
# one is a 400 saying why); those refused for one value only take the others (enum [false]).
text = {"type": "string"}
boolean = {"type": "boolean"}
integer = {"type": "integer", "minimum": 0}
no_offline = {"type": "boolean", "enum": [False],
              "description": "true is refused: Z-Wave keypad locks have no offline access codes."}
offline_attempt = {"type": "boolean",
                   "description": "false is refused (400) when the lock is offline; otherwise zwlock keeps the code and sets it when the lock is back."}
# Names: at most 100 characters and no control characters (codes::validate::check_name);
# a lock's name also has something besides white space.
NO_CONTROL = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
NAMED = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
name_text = {"type": "string", "maxLength": 100, "pattern": NO_CONTROL}
shared_code_params = {
    "allow_external_modification": boolean, "attempt_for_offline_device": offline_attempt,
    "code": {"type": "string", "pattern": "^\\d{4,10}$"}, "ends_at": ts,
    "is_external_modification_allowed": boolean, "name": name_text,
    "prefer_native_scheduling": boolean,
    "preferred_code_length": {"type": "integer", "minimum": 0, "maximum": 255,
                              "description": "Outside the lock's lengths, the nearest one it takes."},
    "starts_at": ts,
    "use_backup_access_code_pool": boolean,
}
page_limit = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000,
              "description": "Items per page: 1,000 by default and at most (Seam's own default is 55,000)."}
def cursor(pattern, what):
    return {"type": "string", "nullable": True, "pattern": pattern,
            "description": f"next_page_cursor of the page before ({what}); empty or null for the first page."}


month_day = "(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
hms = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
hex_ = "[0-9a-f]"
uuid_re = f"{hex_}{{8}}-{hex_}{{4}}-{hex_}{{4}}-{hex_}{{4}}-{hex_}{{12}}"
code_cursor = cursor(f"^$|^[0-9]{{4}}-{month_day}T{hms}(\\.[0-9]{{1,9}})?Z~{uuid_re}$", "a creation time and an id")
slot_cursor = cursor("^$|^slot-[0-9]{1,5}$", "a slot")
node_cursor = cursor("^$|^node-[0-9]{1,5}$", "a node id")
by_code = obj({"access_code_id": uuid, "device_id": uuid, "code": text})
convert = {"access_code_id": uuid, "allow_external_modification": boolean,
           "is_external_modification_allowed": boolean,
           "force": {"type": "boolean", "description": "One workspace: nothing to force; no effect."}}
devices_list = obj({"device_ids": {"type": "array", "items": uuid}, "device_type": text,
                    "device_types": {"type": "array", "items": text}, "limit": page_limit, "page_cursor": node_cursor})
spec = {
    "create": (obj({**shared_code_params, "device_id": uuid, "common_code_key": text,
                    "is_offline_access_code": no_offline, "is_one_time_use": boolean,
                    "use_offline_access_code": no_offline, "sync": boolean}, ["device_id"]),
               {"access_code": ref("access_code"), "action_attempt": ref("action_attempt")},
               "Create an access code. An Idempotency-Key header makes a retried create return the first answer."),
    "create_multiple": (obj({**shared_code_params, "device_ids": {"type": "array", "items": uuid, "minItems": 1},
                             "behavior_when_code_cannot_be_shared": {"type": "string", "enum": ["throw", "create_random_code"]}},
                            ["device_ids"]),
                        {"access_codes": {"type": "array", "items": ref("access_code")}},
                        "Create one code on several locks; without a code they share a generated PIN and a common_code_key."),
    "get": (by_code, {"access_code": ref("access_code")}, "Get an access code by id, or by device and PIN."),
    "list": (obj({"device_id": uuid, "access_code_ids": {"type": "array", "items": uuid},
                  "search": {"type": "string", "minLength": 1}, "limit": page_limit, "page_cursor": code_cursor}),
             {"access_codes": {"type": "array", "items": ref("access_code")}, "pagination": ref("pagination")},
             "List access codes (of a device, by ids, or by search)."),
    "update": (obj({**{k: v for k, v in shared_code_params.items()
                       if k not in ("preferred_code_length", "use_backup_access_code_pool")},
                    "access_code_id": uuid, "device_id": uuid, "is_managed": boolean,
                    "is_offline_access_code": no_offline, "is_one_time_use": boolean,
                    "use_offline_access_code": no_offline, "sync": boolean,
                    "name": {**name_text, "nullable": True},
                    "starts_at": {**ts, "nullable": True}, "ends_at": {**ts, "nullable": True},
                    "type": {"type": "string", "enum": ["ongoing", "time_bound"]}}, ["access_code_id"]),
               {"action_attempt": ref("action_attempt")}, "Change an access code; is_managed: false makes it unmanaged."),
    "update_multiple": (obj({"common_code_key": text, "name": {**name_text, "nullable": True},
                             "starts_at": {**ts, "nullable": True}, "ends_at": {**ts, "nullable": True}},
                            ["common_code_key"]), {}, "Change every code sharing a common_code_key."),
    "delete": (obj({"access_code_id": uuid, "device_id": uuid, "sync": boolean}, ["access_code_id"]),
               {"action_attempt": ref("action_attempt")}, "Delete an access code: removed from the lock, then forgotten."),
    "generate_code": (obj({"device_id": uuid}, ["device_id"]),
                      {"generated_code": obj({"device_id": uuid, "code": text})},
                      "A PIN the lock accepts and does not hold."),
    "pull_backup": (obj({"access_code_id": uuid}, ["access_code_id"]),
                    {"access_code": ref("access_code"), "backup_access_code": ref("access_code"),
                     "original_access_code": ref("access_code")},
                    "Pull a backup code for a time-bound code."),
    "unmanaged_list": (obj({"device_id": uuid, "search": {"type": "string", "minLength": 1},
                            "limit": page_limit, "page_cursor": slot_cursor}, ["device_id"]),
                       {"access_codes": {"type": "array", "items": ref("unmanaged_access_code")}, "pagination": ref("pagination")},
                       "Codes on the lock that no managed code owns."),
    "unmanaged_get": (by_code, {"access_code": ref("unmanaged_access_code")}, "An unmanaged code."),
    "unmanaged_update": (obj({**convert, "is_managed": boolean}, ["access_code_id", "is_managed"]), {},
                         "is_managed: true converts the code to managed."),
    "unmanaged_delete": (obj({"access_code_id": uuid}, ["access_code_id"]), {"action_attempt": ref("action_attempt")},
                         "Remove an unmanaged code from the lock."),
    "unmanaged_convert": (obj(convert, ["access_code_id"]), {}, "Take over an unmanaged code: it keeps its slot and PIN."),
    "devices_list": (devices_list, {"devices": {"type": "array", "items": ref("device")}, "pagination": ref("pagination")}, "The locks."),
    "devices_get": (obj({"device_id": uuid, "name": text}), {"device": ref("device")}, "A lock, by id or name."),
    "lock_door": (obj({"device_id": uuid}, ["device_id"]), {"action_attempt": ref("action_attempt")}, "Lock the door (LOCK_DOOR)."),
    "unlock_door": (obj({"device_id": uuid}, ["device_id"]), {"action_attempt": ref("action_attempt")}, "Unlock the door (UNLOCK_DOOR)."),
    "sync_access_codes": (obj({"device_id": uuid}, ["device_id"]), {"action_attempt": ref("action_attempt")}, "Read every slot of the lock again (SYNC_ACCESS_CODES): learns unmanaged codes and puts back changed managed ones. The attempt succeeds when the read is done."),
    "zwave_include": (obj({"pin": {"type": "string", "pattern": "^([0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$", "description": "the 5 digits printed on the lock (its DSK PIN), for S2 Authenticated / Access Control"}, "timeout_seconds": {"type": "integer", "minimum": 10, "maximum": 600}, "required_security": {"type": "string", "enum": ["s2_access_control", "none"]}}, []), {"action_attempt": ref("action_attempt")}, "Open learn mode for a lock to join (INCLUDE_DEVICE); press its inclusion button. S2 locks get their keys with the PIN; progress as zwave.inclusion.* events."),
    "zwave_exclude": (obj({"timeout_seconds": {"type": "integer", "minimum": 10, "maximum": 600}}, []), {"action_attempt": ref("action_attempt")}, "Open learn mode for a lock to leave (EXCLUDE_DEVICE); press its button. Its device and codes are forgotten."),
    "zwave_remove_failed": (obj({"device_id": uuid}, ["device_id"]), {"action_attempt": ref("action_attempt")}, "Forget a lock that no longer answers (REMOVE_FAILED_DEVICE); the stick checks it has failed."),
    "events_list": (obj({"since": ts, "between": {"type": "array", "items": ts, "minItems": 2, "maxItems": 2},
                         "device_id": uuid, "device_ids": {"type": "array", "items": uuid}, "access_code_id": uuid,
                         "access_code_ids": {"type": "array", "items": uuid}, "event_type": text,
                         "event_types": {"type": "array", "items": text},
                         "limit": {"type": "integer", "minimum": 0, "default": 500,
                                   "description": "At most 10,000; 0 counts as 1."}}),
                    {"events": {"type": "array", "items": ref("event")}}, "Events since a time (or between two)."),
    "action_attempts_get": (obj({"action_attempt_id": uuid}, ["action_attempt_id"]),
                            {"action_attempt": ref("action_attempt")}, "An action attempt."),
    "report_device_constraints": (obj({"device_id": uuid,
                                        "supported_code_lengths": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 4, "maximum": 10}},
                                        "min_code_length": {"type": "integer", "minimum": 4, "maximum": 10},
                                        "max_code_length": {"type": "integer", "minimum": 4, "maximum": 10,
                                                            "description": "Not less than min_code_length."}}, ["device_id"]),
                                   {}, "Report the code lengths a lock takes (Z-Wave locks hold 4-10 digits): supported_code_lengths, or min/max."),
    "simulate_create_unmanaged": (obj({"device_id": uuid, "code": {"type": "string", "pattern": "^[0-9]{4,10}$"}, "name": text}, ["device_id", "code"]),
                                  {"access_code": ref("unmanaged_access_code")},
                                  "Program a code at a simulated lock's keypad (sim:// ports only; a 400 on a real lock)."),
    "simulate_keypad_code_entry": (obj({"device_id": uuid, "code": text}, ["device_id", "code"]),
                                   {"action_attempt": ref("action_attempt")},
                                   "Type a code at a simulated lock's keypad (sim:// ports only; a 400 on a real lock)."),
    "action_attempts_list": (obj({"action_attempt_ids": {"type": "array", "minItems": 1, "items": uuid}}, ["action_attempt_ids"]),
                             {"action_attempts": {"type": "array", "items": ref("action_attempt")}, "pagination": ref("pagination")},
                             "Action attempts by id."),
    "events_get": (obj({"event_id": uuid, "device_id": uuid, "event_type": text}),
                   {"event": ref("event")}, "An event by id, or the latest of a type (and device)."),
    "workspaces_get": (obj({}), {"workspace": obj({"workspace_id": uuid, "name": text, "company_name": text,
                                                   "is_sandbox": boolean, "is_suspended": boolean,
                                                   "connect_partner_name": {"type": "string", "nullable": True},
                                                   "is_publishable_key_auth_enabled": boolean},
                                                  ["workspace_id", "name"])},
                       "The one local workspace (its id is the one every object carries)."),
    "devices_update": (obj({"device_id": uuid, "name": {**name_text, "pattern": NAMED},
                             "is_managed": {"type": "boolean", "enum": [True], "description": "false is refused: exclude the lock instead"}}, ["device_id"]),
                       {}, "Rename a lock (is_managed: false is refused: exclude the lock instead)."),
    "health": (obj({}), {"msg": text, "service_health_statuses": {"type": "array", "items": {"type": "object"}}},
               "Whether the daemon and its stick are up."),
}

request_id = {"seam-request-id": {"$ref": "#/components/headers/seam-request-id"}}
error_statuses = [
    ("400", "Invalid input: validation_errors names each field"),
    ("401", "A Bearer token is required (the TCP listener)"),
    ("404", "Not found"),
    ("405", "Method not allowed (the Allow header lists the route's methods)"),
    ("408", "The body did not arrive in time"),
    ("409", "Conflict (a PIN already on the lock, an Idempotency-Key in use)"),
    ("413", "Body too large"),
    ("422", "An Idempotency-Key used with other parameters"),
    ("500", "Internal error"),
    ("503", "The stick is not connected, or the daemon is busy or stopping"),
]
errors = {code: {"description": why, "headers": request_id,
                 "content": {"application/json": {"schema": ref("error")}}}
          for code, why in error_statuses}
errors["405"]["headers"] = {**request_id, "Allow": {"schema": {"type": "string"}, "description": "The route's methods."}}
strict = {"name": "_strict", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "Sent by Seam's SDKs; ignored."}
idempotency_key = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
                   "description": "A retried create with the same key and parameters gets the first answer (kept 24 h); with other parameters, a 422."}
# Parameters one of which (or one group of which) must be given: a body says so; a query
# string cannot (tests/openapi_check.rs lets those GETs answer 400 to what lacks them).
def only(given, absent):
    o = {"required": given}
    if absent:
        o["not"] = {"anyOf": [{"required": [a]} for a in absent]}
    return o


either = {
    "get": {"oneOf": [only(["access_code_id"], ["device_id", "code"]), only(["device_id", "code"], ["access_code_id"])]},
    "unmanaged_get": {"oneOf": [only(["access_code_id"], ["device_id", "code"]), only(["device_id", "code"], ["access_code_id"])]},
    "devices_get": {"anyOf": [{"required": ["device_id"]}, {"required": ["name"]}]},
    "list": {"anyOf": [{"required": ["device_id"]}, {"required": ["access_code_ids"]}, {"required": ["search"]}]},
    "events_list": {"oneOf": [only(["since"], ["between"]), only(["between"], ["since"])]},
    "events_get": {"anyOf": [{"required": ["event_id"]}, {"required": ["device_id"]}, {"required": ["event_type"]}]},
    "report_device_constraints": {"oneOf": [only(["supported_code_lengths"], ["min_code_length", "max_code_length"]),
                                            {"anyOf": [{"required": ["min_code_length"]}, {"required": ["max_code_length"]}],
                                             "not": {"required": ["supported_code_lengths"]}}]},
}


paths = {}
for path, methods, handler in routes:
    req, resp, summary = spec[handler]
    ok = obj({**resp, "ok": {"type": "boolean", "enum": [True]}}, ["ok", *resp.keys()])
    entry = {}
    for m in re.findall(r'"(\w+)"', methods):
        op = {"summary": summary, "operationId": path.strip("/").replace("/", "_") + "_" + m.lower(),
              "responses": {"200": {"description": "OK", "headers": request_id,
                                    "content": {"application/json": {"schema": ok}}}, **errors}}
        if m in ("GET", "DELETE"):
            op["parameters"] = [{"name": k, "in": "query", "required": k in req.get("required", []), "schema": v,
                                 **({"explode": True, "style": "form"} if v.get("type") == "array" else {})}
                                for k, v in req["properties"].items()] + [strict]
        else:
            body = {**req, **either.get(handler, {}), "additionalProperties": False}
            op["requestBody"] = {"required": bool(req.get("required")) or handler in either,
                                 "content": {"application/json": {"schema": body}}}
        if handler in ("create", "create_multiple"):
            op["parameters"] = op.get("parameters", []) + [idempotency_key]
        entry[m.lower()] = op
    paths[path] = entry
paths["/events/stream"] = {"get": {
    "summary": "New events as server-sent events; after_seq=N replays what came after event N.",
    "operationId": "events_stream_get",
    "parameters": [{"name": "after_seq", "in": "query", "required": False, "schema": {"type": "integer"}}],
    "responses": {"200": {"description": "One SSE event per event; id = its sequence number", "headers": request_id,
                          "content": {"text/event-stream": {"schema": {"type": "string"}}}}, "401": errors["401"]}}}
paths["/openapi.json"] = {"get": {"summary": "This document.", "operationId": "openapi_get",
                                  "responses": {"200": {"description": "OK", "headers": request_id, "content": {"application/json": {"schema": {"type": "object"}}}}, "401": errors["401"]}}}
paths["/metrics"] = {"get": {"summary": "Prometheus metrics.", "operationId": "metrics_get",
                             "responses": {"200": {"description": "OK", "headers": request_id, "content": {"text/plain": {"schema": {"type": "string"}}}}, "401": errors["401"]}}}
doc = {
    "openapi": "3.0.3",
    "info": {"title": "zwlock", "version": "0.1.0",
             "description": "Local access codes for Z-Wave keypad locks. HTTP/1.1 + JSON on a Unix socket; routes, "
                            "objects and envelopes follow Seam's access code API. Parameters come from the query string "
                            "for GET and DELETE and from a JSON body otherwise; _strict is ignored."},
    "servers": [{"url": "http://localhost", "description": "the Unix socket (default /run/zwlock/api.sock)"}],
    "components": {"headers": {"seam-request-id": {"description": "A UUID naming this request (also in the daemon's log line for it).",
                                                   "required": True, "schema": {"type": "string", "format": "uuid"}}},
                   "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                  "description": "Required on the optional TCP listener; any seam_ key is accepted on the Unix socket."}},
                   "schemas": {"access_code": access_code, "unmanaged_access_code": unmanaged, "device": device,
                               "event": event, "action_attempt": attempt, "pagination": pagination, "error": err,
                               "error_item": issue, "warning_item": warning}},
    "security": [{"bearer": []}],
    "paths": paths,
}
with open("src/api/openapi.json", "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
print(f"{len(routes)} routes, {len(paths)} paths")
