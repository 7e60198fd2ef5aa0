#!/usr/bin/env python3
"""The API under load: resident memory with many clients listing a lock that holds many codes,
and create latency at that size.

    cargo build --release && python3 tools/bench-api-load.py [--bin target/release/zwlock]
        [--codes 3000] [--clients 50] [--rounds 4]

Starts the daemon on a simulated network of one lock (250 slots), creates --codes codes on it
through the API (those beyond the lock's slots wait for one, as they would), then has
--clients threads list that lock's codes (`access_codes/list?device_id=…`, no limit, as an SDK's
`list()` sends it) --rounds times each, all at once. Prints RSS before and after (VmRSS) and
its peak (VmHWM), the listing latency (p50/p99) and what one listing returned, then the latency
of 100 more creates. Only loopback: everything goes over the daemon's Unix socket.
"""

import argparse
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(d):
    return (
        '[serial]\nport = "sim://load"\n'
        f'[store]\npath = "{d}/zwlock.db"\n'
        f'[api]\nsocket = "{d}/api.sock"\n'
        '[log]\nlevel = "warn"\n'
        '[[sim.network]]\nname = "load"\nradio_ms = 1\n'
        '[[sim.network.lock]]\nnode_id = 5\nslots = 250\nlistening = "always"\n'
    )


def call(sock_path, method, path, body=None, timeout=60):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    s.sendall(head.encode() + b"\r\n" + data)
    out = b""
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        out += chunk
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        raw, body = body, b""
        while raw:
            size, raw = raw.split(b"\r\n", 1)
            n = int(size, 16)
            if n == 0:
                break
            body, raw = body + raw[:n], raw[n + 2:]
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def status_kb(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "zwlock"))
    ap.add_argument("--codes", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--dir", help="keep the database here, and reuse the codes already in it")
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp(prefix="zwlock-load-")
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "zwlock.toml")
    open(cfg, "w").write(config(d))
    sock = os.path.join(d, "api.sock")
    log = open(os.path.join(d, "stderr.log"), "w")
    p = subprocess.Popen([a.bin, "daemon", "--config", cfg], stderr=log)
    try:
        t0 = time.monotonic()
        device = None
        while device is None and time.monotonic() - t0 < 60:
            try:
                devs = call(sock, "GET", "/devices/list")[1]["devices"]
                if devs and devs[0]["properties"]["online"]:
                    device = devs[0]["device_id"]
            except (OSError, ValueError, KeyError, IndexError):
                time.sleep(0.2)
        assert device, "the lock never came online"

        # Codes already there (--dir), counted page by page.
        have, cursor = 0, None
        while True:
            q = f"/access_codes/list?device_id={device}&limit=500" + (f"&page_cursor={urllib.parse.quote(cursor)}" if cursor else "")
            st, body = call(sock, "GET", q)
            if st != 200:  # a server without limits: one page is everything
                st, body = call(sock, "GET", f"/access_codes/list?device_id={device}")
                have = len(body["access_codes"])
                break
            have += len(body["access_codes"])
            cursor = body["pagination"]["next_page_cursor"]
            if not cursor:
                break
        # Creates, four at a time.
        counter = iter(range(have, a.codes))
        lock = threading.Lock()

        def creator():
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                st, body = call(sock, "POST", "/access_codes/create",
                                {"device_id": device, "code": f"{100000 + n:06}", "name": f"guest {n}"})
                if st == 409:  # already there from an earlier run
                    continue
                assert st == 200, (st, body)

        ts = [threading.Thread(target=creator) for _ in range(4)]
        t = time.monotonic()
        for x in ts:
            x.start()
        for x in ts:
            x.join()
        create_s = time.monotonic() - t
        time.sleep(2)
        rss0 = status_kb(p.pid, "VmRSS")

        lat, sizes, fails = [], [], []
        go = threading.Barrier(a.clients)

        def lister():
            go.wait()
            for _ in range(a.rounds):
                t = time.monotonic()
                try:
                    st, body = call(sock, "GET", f"/access_codes/list?device_id={device}")
                except OSError as e:
                    fails.append(str(e))
                    continue
                lat.append(time.monotonic() - t)
                if st != 200:
                    fails.append(st)
                else:
                    sizes.append(len(body["access_codes"]))

        ts = [threading.Thread(target=lister) for _ in range(a.clients)]
        for x in ts:
            x.start()
        for x in ts:
            x.join()
        time.sleep(1)
        rss1, hwm = status_kb(p.pid, "VmRSS"), status_kb(p.pid, "VmHWM")

        creates = []
        for n in range(100):
            t = time.monotonic()
            st, _ = call(sock, "POST", "/access_codes/create", {"device_id": device})
            creates.append(time.monotonic() - t)
            assert st == 200
        ms = lambda s: f"{s * 1000:.1f} ms"
        print(f"| binary | {os.path.relpath(a.bin, ROOT)} |")
        print(f"| codes on the lock | {a.codes} (created in {create_s:.1f} s) |")
        print(f"| RSS before listing | {rss0 / 1024:.1f} MB |")
        print(f"| {a.clients} clients x {a.rounds} lists: RSS after / peak | {rss1 / 1024:.1f} MB / {hwm / 1024:.1f} MB |")
        print(f"| codes per listing | {sorted(set(sizes))} |")
        print(f"| list latency p50 / p99 | {ms(pct(lat, 0.5))} / {ms(pct(lat, 0.99))} |")
        print(f"| failed listings | {len(fails)} {fails[:3]} |")
        print(f"| create at {a.codes} codes p50 / p99 | {ms(pct(creates, 0.5))} / {ms(pct(creates, 0.99))} |")
    finally:
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


if __name__ == "__main__":
    main()
