"""Seam's own Python SDK, unchanged, against zwlock's API on a Unix socket (and its
token-protected TCP listener, for the unauthorized error).

Usage: seam_sdk_check.py SOCKET TCP_PORT TOKEN. Exits 0 when every step behaves as Seam
documents; prints the step that failed otherwise. Run by tests/seam_sdk.rs against a daemon on
the simulator (two locks; lock A has the keypad code 2580 in slot 1).
"""

import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
from seam import Seam
from seam.exceptions import (
    SeamHttpApiError,
    SeamHttpInvalidInputError,
    SeamHttpUnauthorizedError,
)

MISSING = "8f8e3f0e-0000-4000-8000-000000000000"


def until(what, pred, seconds=30):
    deadline = time.time() + seconds
    while not pred():
        assert time.time() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.2)


def refused(cls, call):
    """The error `call` raises, checked to be a `cls` carrying a request id."""
    try:
        call()
    except cls as e:
        assert e.request_id, "no seam-request-id on the error"
        return e
    raise AssertionError(f"accepted, expected {cls.__name__}")


def invalid_field(e, field):
    assert e.status_code == 400, e.status_code
    messages = e.get_validation_error_messages(field)
    assert messages, f"no validation message for {field}: {e.validation_errors}"
    return messages


def main(socket_path: str, tcp_port: str, token: str) -> None:
    seam = Seam(
        api_key="seam_zwlock_local",
        endpoint="http://localhost",
        httpx_options={"transport": httpx.HTTPTransport(uds=socket_path)},
    )
    status = lambda i: seam.access_codes.get(access_code_id=i).status

    # devices and locks
    devices = seam.devices.list()
    assert len(devices) == 2, f"two locks expected, got {len(devices)}"
    a, b = devices[0].device_id, devices[1].device_id
    assert seam.devices.get(device_id=a).device_id == a
    assert len(seam.locks.list()) == 2
    assert seam.locks.get(device_id=b).device_id == b
    assert [d.device_id for d in seam.devices.list(device_ids=[b])] == [b]
    device_id = a

    # create -> get -> list
    code = seam.access_codes.create(device_id=device_id, code="4817", name="cleaner")
    assert code.code == "4817" and code.name == "cleaner", code
    assert code.is_managed is True
    until("code set", lambda: status(code.access_code_id) == "set")
    by_pin = seam.access_codes.get(device_id=device_id, code="4817")
    assert by_pin.access_code_id == code.access_code_id
    listed = seam.access_codes.list(device_id=device_id)
    assert [c.access_code_id for c in listed] == [code.access_code_id], listed

    # update (PATCH): the new PIN reaches the lock
    seam.access_codes.update(access_code_id=code.access_code_id, code="5928", name="cleaner (new)")
    updated = seam.access_codes.get(access_code_id=code.access_code_id)
    assert updated.code == "5928" and updated.name == "cleaner (new)", updated
    until("updated code set", lambda: status(code.access_code_id) == "set")

    # common_code_key links PINs; a different PIN in the group is refused
    f1 = seam.access_codes.create(device_id=a, common_code_key="family", name="family")
    f2 = seam.access_codes.create(device_id=b, common_code_key="family", name="family")
    assert f1.code == f2.code, (f1.code, f2.code)
    other = "7392" if f1.code == "7391" else "7391"
    e = refused(
        SeamHttpInvalidInputError,
        lambda: seam.access_codes.create(device_id=b, common_code_key="family", code=other),
    )
    invalid_field(e, "code")

    # update_multiple renames the group
    seam.access_codes.update_multiple(common_code_key="family", name="family (all)")
    for i in (f1.access_code_id, f2.access_code_id):
        assert seam.access_codes.get(access_code_id=i).name == "family (all)"

    # create_multiple: one PIN on both locks, linked by a key
    shared = seam.access_codes.create_multiple(device_ids=[a, b], name="guest")
    assert len(shared) == 2 and shared[0].code == shared[1].code, shared
    assert shared[0].common_code_key and shared[0].common_code_key == shared[1].common_code_key

    # generate_code
    generated = seam.access_codes.generate_code(device_id=a)
    assert generated.code.isdigit() and 4 <= len(generated.code) <= 10, generated

    # the SDK's paginator walks the pages
    pages = seam.create_paginator(seam.access_codes.list, {"device_id": a, "limit": 2})
    first, pagination = pages.first_page()
    assert len(first) == 2 and pagination.has_next_page, (first, pagination)
    ids = [c.access_code_id for c in pages.flatten_to_list()]
    assert len(ids) == len(set(ids)), "a page repeated a code"
    assert len(ids) == len(seam.access_codes.list(device_id=a))

    # unmanaged: the keypad code in slot 1
    unmanaged = seam.access_codes.unmanaged.list(device_id=device_id)
    assert len(unmanaged) == 1 and unmanaged[0].code == "2580", unmanaged
    assert unmanaged[0].is_managed is False
    uid = unmanaged[0].access_code_id
    assert seam.access_codes.unmanaged.get(access_code_id=uid).code == "2580"
    assert seam.access_codes.unmanaged.get(device_id=a, code="2580").access_code_id == uid
    try:
        seam.access_codes.create(device_id=device_id, code="2580")
        raise AssertionError("the unmanaged code's PIN was accepted")
    except SeamHttpApiError as e:
        assert e.status_code == 409 and e.code == "conflicting_unmanaged_access_code_id", (e.status_code, e.code)
    seam.access_codes.unmanaged.convert_to_managed(access_code_id=uid)
    assert seam.access_codes.get(access_code_id=uid).code == "2580"
    assert seam.access_codes.unmanaged.list(device_id=a) == []

    def unmanaged_2580():
        found = [c for c in seam.access_codes.unmanaged.list(device_id=a) if c.code == "2580"]
        return found[0] if found else None

    # back to unmanaged; managed again through unmanaged/update; unmanaged and removed
    seam.access_codes.update(access_code_id=uid, is_managed=False)
    until("unmanaged again", lambda: unmanaged_2580() is not None)
    seam.access_codes.unmanaged.update(access_code_id=unmanaged_2580().access_code_id, is_managed=True)
    managed = seam.access_codes.get(device_id=a, code="2580")
    assert managed.is_managed is True
    seam.access_codes.update(access_code_id=managed.access_code_id, is_managed=False)
    until("unmanaged once more", lambda: unmanaged_2580() is not None)
    seam.access_codes.unmanaged.delete(access_code_id=unmanaged_2580().access_code_id)
    until("unmanaged code removed", lambda: unmanaged_2580() is None)

    # the backup pool: a pulled backup for a time-bound code
    now = datetime.now(timezone.utc)
    timed = seam.access_codes.create(
        device_id=b,
        name="stay",
        starts_at=(now - timedelta(minutes=1)).isoformat(),
        ends_at=(now + timedelta(days=1)).isoformat(),
        use_backup_access_code_pool=True,
    )
    pulled = []

    def pull():
        try:
            pulled.append(seam.access_codes.pull_backup_access_code(access_code_id=timed.access_code_id))
            return True
        except SeamHttpApiError as e:
            if e.status_code >= 500:
                raise
            return False

    until("a backup to pull", pull, 60)
    assert pulled[0].access_code_id != timed.access_code_id
    assert pulled[0].code.isdigit(), pulled[0]

    # the door, and its action attempts (the SDK waits for them)
    unlocked = seam.locks.unlock_door(device_id=a)
    assert unlocked.status == "success" and unlocked.action_type == "UNLOCK_DOOR", unlocked
    locked = seam.locks.lock_door(device_id=a)
    assert locked.status == "success", locked
    attempt = seam.action_attempts.get(action_attempt_id=locked.action_attempt_id)
    assert attempt.action_attempt_id == locked.action_attempt_id
    assert seam.locks.get(device_id=a).properties.locked is True

    # events
    events = seam.events.list(since=(now - timedelta(hours=1)).isoformat())
    kinds = [x.event_type for x in events if getattr(x, "access_code_id", None) == code.access_code_id]
    assert "access_code.created" in kinds and "access_code.set_on_device" in kinds, kinds

    # errors: a bad PIN is invalid input naming the field; a duplicate is a conflict
    try:
        seam.access_codes.create(device_id=device_id, code="12a4")
        raise AssertionError("a PIN with a letter was accepted")
    except SeamHttpInvalidInputError as e:
        assert e.status_code == 400, e.status_code
        assert e.get_validation_error_messages("code"), "no message for the code field"
    try:
        seam.access_codes.create(device_id=b, code=f2.code)
        raise AssertionError("a PIN already on the lock was accepted")
    except SeamHttpApiError as e:
        assert e.status_code == 409 and e.code == "duplicate_access_code", (e.status_code, e.code)
    try:
        seam.access_codes.get(access_code_id=MISSING)
        raise AssertionError("a missing code was found")
    except SeamHttpApiError as e:
        assert e.status_code == 404 and e.code == "access_code_not_found", (e.status_code, e.code)
        assert e.request_id, "no seam-request-id"
    e = refused(
        SeamHttpInvalidInputError,
        lambda: seam.access_codes.create(device_id=a, starts_at="2030-01-01", ends_at="2030-01-02T10:00:00Z"),
    )
    assert "date without a time" in invalid_field(e, "starts_at")[0]
    e = refused(SeamHttpInvalidInputError, lambda: seam.access_codes.create(device_id=a, max_time_rounding="1d"))
    invalid_field(e, "max_time_rounding")
    e = refused(SeamHttpInvalidInputError, lambda: seam.access_codes.create(device_id=a, use_offline_access_code=True))
    invalid_field(e, "use_offline_access_code")
    e = refused(SeamHttpInvalidInputError, lambda: seam.access_codes.list(device_id=a, access_method_id=MISSING))
    invalid_field(e, "access_method_id")
    # Python sends a whole float as 6.0: it is a length, not an error filed under "6.0".
    six = seam.access_codes.create(device_id=a, preferred_code_length=6.0)
    assert len(six.code) == 6, six.code
    stranger = Seam(api_key="seam_not_the_token", endpoint=f"http://127.0.0.1:{tcp_port}")
    refused(SeamHttpUnauthorizedError, lambda: stranger.devices.list())
    via_tcp = Seam(api_key=token, endpoint=f"http://127.0.0.1:{tcp_port}")
    assert len(via_tcp.devices.list()) == 2

    # round two: the workspace, renaming, reported constraints, the simulated keypad
    workspace = seam.workspaces.get()
    assert workspace.workspace_id == seam.devices.get(device_id=a).workspace_id, workspace
    seam.devices.update(device_id=b, name="Back door")
    assert seam.devices.get(device_id=b).properties.name == "Back door"
    seam.access_codes.report_device_constraints(device_id=b, supported_code_lengths=[4, 6])
    assert list(seam.devices.get(device_id=b).properties.supported_code_lengths) == [4, 6]
    e = refused(SeamHttpInvalidInputError, lambda: seam.access_codes.create(device_id=b, code="12345"))
    invalid_field(e, "code")
    e = refused(
        SeamHttpInvalidInputError,
        lambda: seam.access_codes.report_device_constraints(device_id=b, min_code_length=4, max_code_length=12),
    )
    assert e.status_code == 400, e.status_code
    keypad = seam.access_codes.simulate.create_unmanaged_access_code(device_id=b, code="5678", name="keypad")
    assert keypad.code == "5678" and keypad.is_managed is False, keypad
    assert any(c.code == "5678" for c in seam.access_codes.unmanaged.list(device_id=b))
    entry = seam.locks.simulate.keypad_code_entry(device_id=a, code="5928")
    assert entry.status == "success" and entry.action_type == "SIMULATE_KEYPAD_CODE_ENTRY", entry
    unlocked_by = []

    def unlocked_by_code():
        ev = seam.events.get(device_id=a, event_type="lock.unlocked")
        if getattr(ev, "access_code_id", None) == code.access_code_id:
            unlocked_by.append(ev)
            return True
        return False

    until("the keypad entry's unlock event", unlocked_by_code)
    assert seam.events.get(event_id=unlocked_by[0].event_id).event_id == unlocked_by[0].event_id
    attempts = seam.action_attempts.list(action_attempt_ids=[locked.action_attempt_id, entry.action_attempt_id])
    assert sorted(x.action_attempt_id for x in attempts) == sorted(
        [locked.action_attempt_id, entry.action_attempt_id]
    ), attempts

    # delete (DELETE with a query string): gone from the API and, soon, the lock
    seam.access_codes.delete(access_code_id=code.access_code_id)
    deadline = time.time() + 30
    while True:
        try:
            seam.access_codes.get(access_code_id=code.access_code_id)
        except SeamHttpApiError as e:
            assert e.code == "access_code_not_found", e.code
            break
        assert time.time() < deadline, "deleted code still there"
        time.sleep(0.2)
    assert all(c.access_code_id != code.access_code_id for c in seam.access_codes.list(device_id=device_id))
    for c in seam.access_codes.list(device_id=device_id):
        seam.access_codes.delete(access_code_id=c.access_code_id)
    until("every code gone", lambda: seam.access_codes.list(device_id=device_id) == [])
    assert seam.access_codes.list(device_id=device_id) == []
    print("seam sdk: ok")


if __name__ == "__main__":
    main(*sys.argv[1:4])
