#!/usr/bin/env python3
"""Daemon footprint: time to READY=1, resident memory and CPU at idle, on the simulator.

    cargo build --release && python3 tools/bench-daemon.py [--idle SECONDS]

Runs the release binary twice: on the demo network (config/demo.toml's two locks) and on a
network of 231 simulated locks with 250 slots each (node ids 2-232:
a full classic Z-Wave network). For each: time from exec to READY=1 (as
systemd sees it, through NOTIFY_SOCKET), time until every lock is interviewed, then RSS (VmRSS,
and the peak VmHWM) and CPU use over an idle period. Prints a Markdown table.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "zwlock")
TICKS = os.sysconf("SC_CLK_TCK")


def demo_config(d):
    text = open(os.path.join(ROOT, "config", "demo.toml")).read()
    return text.replace("target/demo", d)


def big_config(d, locks=231):
    out = [
        '[serial]\nport = "sim://big"\n',
        f'[store]\npath = "{d}/zwlock.db"\n',
        f'[api]\nsocket = "{d}/api.sock"\n',
        '[log]\nlevel = "warn"\n',
        '[[sim.network]]\nname = "big"\n',
    ]
    for i in range(locks):
        out.append(
            f"[[sim.network.lock]]\nnode_id = {2 + i}\nslots = 250\nlistening = \"always\"\n"
        )
    return "".join(out)


def api_get(sock_path, path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock_path)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    body = data.split(b"\r\n\r\n", 1)[1]
    if b"transfer-encoding: chunked" in data.lower().split(b"\r\n\r\n", 1)[0]:
        out, rest = b"", body
        while rest:
            size, rest = rest.split(b"\r\n", 1)
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return json.loads(body)


def proc_status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB
    return 0


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def run(name, config_text, locks, idle):
    d = tempfile.mkdtemp(prefix="zwlock-bench-")
    cfg = os.path.join(d, "zwlock.toml")
    open(cfg, "w").write(config_text(d))
    notify_path = os.path.join(d, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify_path)
    ns.settimeout(0.05)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, ZWLOCK_LOG="info")
    log = open(os.path.join(d, "stderr.log"), "w")
    t0 = time.monotonic()
    p = subprocess.Popen([BIN, "daemon", "--config", cfg], env=env, stderr=log)
    ready = None
    try:
        while ready is None and time.monotonic() - t0 < 60:
            try:
                if b"READY=1" in ns.recv(4096):
                    ready = time.monotonic() - t0
            except socket.timeout:
                pass
        sock = os.path.join(d, "api.sock")
        interviewed = None
        while time.monotonic() - t0 < 600:
            try:
                devs = api_get(sock, "/devices/list")["devices"]
                if len(devs) >= locks and all(x["properties"]["online"] for x in devs):
                    interviewed = time.monotonic() - t0
                    break
            except (OSError, ValueError, KeyError, IndexError):
                pass
            time.sleep(0.2)
        time.sleep(5)  # let the first full reads settle
        c0, w0 = cpu_ticks(p.pid), time.monotonic()
        time.sleep(idle)
        c1, w1 = cpu_ticks(p.pid), time.monotonic()
        rss = proc_status(p.pid, "VmRSS")
        hwm = proc_status(p.pid, "VmHWM")
        cpu = 100.0 * (c1 - c0) / TICKS / (w1 - w0)
    finally:
        t_stop = time.monotonic()
        p.terminate()
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            print(f"{name}: no exit 60 s after SIGTERM; log in {d}/stderr.log", file=sys.stderr)
        stop = time.monotonic() - t_stop
        ns.close()
        log.close()
    return name, ready, interviewed, rss, hwm, cpu, stop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=float, default=60.0)
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build the release binary first: cargo build --release")
    rows = [
        run("demo network (2 locks)", demo_config, 2, args.idle),
        run("231 simulated locks x 250 slots (a full network)", big_config, 231, args.idle),
    ]
    print("| network | READY=1 | all locks interviewed | RSS idle | RSS peak | CPU idle | SIGTERM to exit |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ready, interviewed, rss, hwm, cpu, stop in rows:
        fmt = lambda t: "n/a" if t is None else f"{t * 1000:.0f} ms" if t < 10 else f"{t:.1f} s"
        print(
            f"| {name} | {fmt(ready)} | {fmt(interviewed)} | {rss / 1024:.1f} MB | "
            f"{hwm / 1024:.1f} MB | {cpu:.2f} % | {fmt(stop)} |"
        )


if __name__ == "__main__":
    main()
