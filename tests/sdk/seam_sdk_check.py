"""Seam's own Python SDK, unchanged, against zwlock's API on a Unix socket.

Usage: seam_sdk_check.py SOCKET. Exits 0 when every step behaves as Seam documents; prints the
step that failed otherwise. Run by tests/seam_sdk.rs against a daemon on the simulator.
"""

import sys
import time

import httpx
from seam import Seam
from seam.exceptions import SeamHttpApiError, SeamHttpInvalidInputError


def main(socket_path: str) -> None:
    seam = Seam(
        api_key="seam_zwlock_local",
        endpoint="http://localhost",
        httpx_options={"transport": httpx.HTTPTransport(uds=socket_path)},
    )
    devices = seam.devices.list()
    assert len(devices) == 1, f"one lock expected, got {len(devices)}"
    device_id = devices[0].device_id

    # create -> get -> list
    code = seam.access_codes.create(device_id=device_id, code="4817", name="cleaner")
    assert code.code == "4817" and code.name == "cleaner", code
    assert code.is_managed is True
    deadline = time.time() + 30
    while seam.access_codes.get(access_code_id=code.access_code_id).status != "set":
        assert time.time() < deadline, "code never reached set"
        time.sleep(0.2)
    by_pin = seam.access_codes.get(device_id=device_id, code="4817")
    assert by_pin.access_code_id == code.access_code_id
    listed = seam.access_codes.list(device_id=device_id)
    assert [c.access_code_id for c in listed] == [code.access_code_id], listed

    # update (PATCH): the new PIN reaches the lock
    seam.access_codes.update(access_code_id=code.access_code_id, code="5928", name="cleaner (new)")
    updated = seam.access_codes.get(access_code_id=code.access_code_id)
    assert updated.code == "5928" and updated.name == "cleaner (new)", updated
    deadline = time.time() + 30
    while seam.access_codes.get(access_code_id=code.access_code_id).status != "set":
        assert time.time() < deadline, "updated code never reached set"
        time.sleep(0.2)

    # unmanaged: the keypad code in slot 1
    unmanaged = seam.access_codes.unmanaged.list(device_id=device_id)
    assert len(unmanaged) == 1 and unmanaged[0].code == "2580", unmanaged
    assert unmanaged[0].is_managed is False

    # errors: a bad PIN is invalid input naming the field; a duplicate is a conflict
    try:
        seam.access_codes.create(device_id=device_id, code="12a4")
        raise AssertionError("a PIN with a letter was accepted")
    except SeamHttpInvalidInputError as e:
        assert e.status_code == 400, e.status_code
        assert e.get_validation_error_messages("code"), "no message for the code field"
    try:
        seam.access_codes.create(device_id=device_id, code="2580")
        raise AssertionError("the unmanaged code's PIN was accepted")
    except SeamHttpApiError as e:
        assert e.status_code == 409 and e.code == "conflicting_unmanaged_access_code_id", (e.status_code, e.code)
    try:
        seam.access_codes.get(access_code_id="8f8e3f0e-0000-4000-8000-000000000000")
        raise AssertionError("a missing code was found")
    except SeamHttpApiError as e:
        assert e.status_code == 404 and e.code == "access_code_not_found", (e.status_code, e.code)

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
    assert seam.access_codes.list(device_id=device_id) == []
    print("seam sdk: ok")


if __name__ == "__main__":
    main(sys.argv[1])
