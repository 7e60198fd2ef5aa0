#!/usr/bin/env node
// Side by side: zwave-js 15.29.0's Driver and zwlock's daemon against the same zwave-js mock
// network (bench-locks.config.cjs, started only through mock-launcher.cjs: 127.0.0.1, mDNS
// off), each through the same frame-counting TCP proxy on 127.0.0.1. Run by
// tools/bench-side-by-side, which says what it needs.
//
//   node bench-side-by-side.cjs --bin target/release/zwlock [--runs N] [--only a,b,c,s2]
//
// Scenarios: a) 1 lock, User Code v1, 30 slots; b) 1 lock, v2, 250 slots, checksum;
// c) 20 v1/30 locks; s2) 1 lock included with S2 Access Control (v2, 30 slots). For each,
// both stacks start fresh on a fresh mock: SendData until every lock is interviewed and all
// its codes are read (zwave-js: queryAllUserCodes, until "all nodes ready"; zwlock: until
// every lock's "full read of the lock done"), then a second start on what the first left
// (zwave-js's cache directory, zwlock's database) until ready again, and on a and s2 the
// operations on node 2: set a code until the lock confirmed it, read one slot, a keypad
// change told by a notification and a report. Prints medians of the runs with
// zwlock/zwave-js ratios. Frame counts are the portable figures; times only compare runs
// made side by side on one machine.
"use strict";

const { spawn } = require("node:child_process");
const net = require("node:net");
const http = require("node:http");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const argv = process.argv.slice(2);
const opt = (name, d) => {
	const i = argv.indexOf(name);
	return i >= 0 && i + 1 < argv.length ? argv[i + 1] : d;
};
const BIN = path.resolve(opt("--bin", path.join(__dirname, "../../target/release/zwlock")));
const RUNS = Number(opt("--runs", "1"));
const ONLY = new Set(opt("--only", "a,b,c,s2").split(","));
const QUIET = argv.includes("--quiet");

const epoch = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (...a) => QUIET || console.error("[bench]", ...a);

const SCENARIOS = [
	{ id: "a", title: "1 lock, User Code v1, 30 slots", locks: 1, env: { BENCH_UC: "1", BENCH_USERS: "30" }, ops: true },
	{ id: "b", title: "1 lock, User Code v2, 250 slots, checksum", locks: 1, env: { BENCH_UC: "2", BENCH_USERS: "250", BENCH_CHECKSUM: "1" }, ops: false },
	{ id: "c", title: "20 locks, User Code v1, 30 slots", locks: 20, env: { BENCH_UC: "1", BENCH_USERS: "30" }, ops: false },
	{ id: "s2", title: "1 lock under S2 Access Control, User Code v2, 30 slots, checksum", locks: 1, env: { BENCH_UC: "2", BENCH_USERS: "30", BENCH_S2: "1" }, ops: true, s2: true },
].filter((s) => ONLY.has(s.id));

// ---- the mock -----------------------------------------------------------------------------
async function startMock(sc) {
	const child = spawn(process.execPath, [path.join(__dirname, "mock-launcher.cjs"), "--port", "0", "--config", path.join(__dirname, "bench-locks.config.cjs")], {
		cwd: __dirname,
		env: { ...process.env, BENCH_LOCKS: String(sc.locks), MOCK_CONTROL_PORT: "0", ...sc.env },
		stdio: ["ignore", "pipe", "pipe"],
	});
	let out = "";
	const ports = await new Promise((resolve, reject) => {
		const t = setTimeout(() => reject(new Error("the mock did not start within 60 s")), 60000);
		const on = (d) => {
			out += d;
			const p = out.match(/Server listening on tcp:\/\/127\.0\.0\.1:(\d+)/);
			const c = out.match(/control listening on http:\/\/127\.0\.0\.1:(\d+)/);
			if (p && c) {
				clearTimeout(t);
				resolve({ port: Number(p[1]), control: Number(c[1]) });
			}
		};
		child.stdout.on("data", on);
		child.stderr.on("data", (d) => (out += d));
		child.on("exit", (code) => reject(new Error(`the mock exited (${code}): ${out}`)));
	});
	child.removeAllListeners("exit");
	const stop = async () => {
		child.kill("SIGTERM");
		await Promise.race([new Promise((r) => child.on("exit", r)), sleep(5000).then(() => child.kill("SIGKILL"))]);
	};
	return { ...ports, stop, log: () => out };
}

const httpGet = (url) =>
	new Promise((resolve, reject) => {
		http.get(url, (res) => {
			let d = "";
			res.on("data", (c) => (d += c));
			res.on("end", () => resolve(d));
		}).on("error", reject);
	});

// ---- the counting proxy -------------------------------------------------------------------
// Cuts each direction into ACK/NAK/CAN bytes and SOF frames; a frame is counted when its
// last byte has passed.
function parser(dir, frames) {
	let buf = Buffer.alloc(0);
	return (chunk) => {
		const t = epoch();
		buf = Buffer.concat([buf, chunk]);
		for (;;) {
			if (!buf.length) return;
			const b = buf[0];
			if (b !== 0x01) {
				frames.push({ t, dir, kind: b === 0x06 ? "ACK" : b === 0x15 ? "NAK" : b === 0x18 ? "CAN" : "junk" });
				buf = buf.subarray(1);
				continue;
			}
			if (buf.length < 2 || buf.length < buf[1] + 2) return;
			const f = buf.subarray(0, buf[1] + 2);
			buf = buf.subarray(buf[1] + 2);
			frames.push({ t, dir, kind: "SOF", req: f[2] === 0, func: f[3], len: f.length });
		}
	};
}

async function startProxy(upstreamPort) {
	const frames = [];
	const server = net.createServer((client) => {
		const up = net.connect({ host: "127.0.0.1", port: upstreamPort });
		client.setNoDelay(true);
		up.setNoDelay(true);
		const h2c = parser("H2C", frames);
		const c2h = parser("C2H", frames);
		client.on("data", (d) => {
			h2c(d);
			up.write(d);
		});
		up.on("data", (d) => {
			c2h(d);
			client.write(d);
		});
		client.on("close", () => up.destroy());
		up.on("close", () => client.destroy());
		client.on("error", () => {});
		up.on("error", () => {});
	});
	server.maxConnections = 1;
	await new Promise((r) => server.listen(0, "127.0.0.1", r));
	return { port: server.address().port, frames, close: () => new Promise((r) => server.close(r)) };
}

function count(frames, t0, t1) {
	const c = { sendData: 0, sof: 0, bytes: 0 };
	for (const f of frames) {
		if (f.t < t0 || f.t > t1) continue;
		if (f.kind === "SOF") {
			c.sof += 1;
			c.bytes += f.len;
			if (f.dir === "H2C" && f.req && (f.func === 0x13 || f.func === 0xa9)) c.sendData += 1;
		} else c.bytes += 1;
	}
	return c;
}
// The last SendData's answers arrive a little after the mark that ends a window.
const GRACE = 50;
const rssOf = (pid) => {
	try {
		return Number((fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)/m) ?? [])[1]);
	} catch {
		return null;
	}
};

// ---- zwave-js -----------------------------------------------------------------------------
async function zwaveJsRun(sc, mock, proxy, cache, ops) {
	const marks = {};
	const logs = [];
	const child = spawn(process.execPath, [path.join(__dirname, "bench-zwave-js.cjs")], {
		cwd: __dirname,
		env: {
			...process.env,
			ZJS_URL: `tcp://127.0.0.1:${proxy.port}`,
			ZJS_CACHE: cache,
			ZJS_OPS: ops ? "1" : "0",
			ZJS_CONTROL: String(mock.control),
			ZJS_S2: sc.s2 ? "1" : "0",
			ZJS_KEYPAD: sc.s2 ? "0" : "1",
		},
		stdio: ["ignore", "ignore", "pipe", "ipc"],
	});
	child.stderr.on("data", (d) => logs.push(String(d)));
	child.on("message", (m) => {
		if (m.mark) marks[m.mark] = m;
		else if (m.log) logs.push(m.log);
	});
	const code = await new Promise((resolve) => {
		const t = setTimeout(() => child.kill("SIGKILL"), 20 * 60 * 1000);
		child.on("exit", (c, s) => {
			clearTimeout(t);
			resolve(c ?? s);
		});
	});
	if (!marks.ready) throw new Error(`zwave-js did not get ready (exit ${code}): ${logs.join("").slice(-2000)}`);
	return { marks, logs, code };
}

async function zwaveJs(sc) {
	const mock = await startMock(sc);
	const cache = fs.mkdtempSync(path.join(os.tmpdir(), "zwlock-bench-zjs-"));
	try {
		let proxy = await startProxy(mock.port);
		const first = await zwaveJsRun(sc, mock, proxy, cache, sc.ops);
		const m = first.marks;
		const r = {
			first: count(proxy.frames, 0, m.ready.t + GRACE),
			first_ms: m.ready.t - m.start.t,
			rss_mib: m.ready.rss_kb / 1024,
		};
		if (sc.ops) {
			r.set = { ...count(proxy.frames, m["set:start"].t, m["set:end"].t), ms: m["set:confirmed"].t - m["set:start"].t };
			r.get = { ...count(proxy.frames, m["get:start"].t, m["get:end"].t + GRACE), ms: m["get:end"].t - m["get:start"].t };
			if (m["keypad:start"]) r.keypad = { ...count(proxy.frames, m["keypad:start"].t, m["keypad:end"].t), seen: m["keypad:seen"].ok };
		}
		await proxy.close();
		proxy = await startProxy(mock.port);
		const second = await zwaveJsRun(sc, mock, proxy, cache, false);
		r.second = count(proxy.frames, 0, second.marks.ready.t + GRACE);
		r.second_ms = second.marks.ready.t - second.marks.start.t;
		await proxy.close();
		r.refused = JSON.parse(await httpGet(`http://127.0.0.1:${mock.control}/refusals`)).refused;
		return r;
	} finally {
		await mock.stop();
		fs.rmSync(cache, { recursive: true, force: true });
	}
}

// ---- zwlock -------------------------------------------------------------------------------
function api(sock, method, p, body) {
	return new Promise((resolve, reject) => {
		const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
		const req = http.request(
			{ socketPath: sock, method, path: p, headers: data ? { "content-type": "application/json", "content-length": data.length } : {}, timeout: 10000 },
			(res) => {
				let d = "";
				res.on("data", (c) => (d += c));
				res.on("end", () => {
					let j = null;
					try {
						j = JSON.parse(d);
					} catch {}
					resolve({ status: res.statusCode, body: j });
				});
			},
		);
		req.on("timeout", () => req.destroy(new Error("timeout")));
		req.on("error", reject);
		if (data) req.write(data);
		req.end();
	});
}

async function until(what, ms, pred, every = 10) {
	const t0 = epoch();
	while (epoch() - t0 < ms) {
		const v = await pred();
		if (v) return v;
		await sleep(every);
	}
	throw new Error(`${what}: not within ${ms} ms`);
}

function daemon(state, proxyPort) {
	const lines = [];
	const child = spawn(BIN, ["daemon", "--config", path.join(state, "zwlock.toml")], {
		cwd: state,
		env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: "1" },
		stdio: ["ignore", "pipe", "pipe"],
	});
	let partial = "";
	const on = (d) => {
		partial += d;
		let i;
		while ((i = partial.indexOf("\n")) >= 0) {
			lines.push({ t: epoch(), line: partial.slice(0, i) });
			partial = partial.slice(i + 1);
		}
	};
	child.stdout.on("data", on);
	child.stderr.on("data", on);
	let exited = null;
	child.on("exit", (c, s) => (exited = c ?? s));
	const stop = async () => {
		if (exited === null) child.kill("SIGTERM");
		await until("the daemon stopping", 15000, () => exited !== null, 20).catch(() => child.kill("SIGKILL"));
	};
	return { child, lines, stop, exited: () => exited, started: epoch() };
}

async function zwlock(sc) {
	const mock = await startMock(sc);
	const state = fs.mkdtempSync(path.join(os.tmpdir(), "zwlock-bench-"));
	const sock = path.join(state, "api.sock");
	const k = (b) => b.repeat(16);
	if (sc.s2) {
		// The keys the mock's locks were included with (bench-locks.config.cjs).
		fs.writeFileSync(path.join(state, "network-keys.toml"), `S0_Legacy = ${k("44")}\nS2_Unauthenticated = ${k("33")}\nS2_Authenticated = ${k("22")}\nS2_AccessControl = ${k("11")}\n`, { mode: 0o600 });
	}
	const toml = (port) =>
		["[serial]", `port = "tcp://127.0.0.1:${port}"`, "[store]", `path = "${state}/zwlock.db"`, "[api]", `socket = "${sock}"`, "[log]", 'level = "info"', ""].join("\n");
	try {
		let proxy = await startProxy(mock.port);
		fs.writeFileSync(path.join(state, "zwlock.toml"), toml(proxy.port));
		let d = daemon(state, proxy.port);
		const read = () => d.lines.filter((l) => l.line.includes("full read of the lock done"));
		await until("every lock read", 20 * 60 * 1000, () => {
			if (d.exited() !== null) throw new Error(`the daemon exited: ${d.lines.map((l) => l.line).join("\n").slice(-3000)}`);
			return read().length >= sc.locks;
		});
		const done = read()[sc.locks - 1].t;
		const r = { first: count(proxy.frames, 0, done + GRACE), first_ms: done - d.started, rss_mib: rssOf(d.child.pid) / 1024 };
		if (sc.ops) {
			const devices = (await api(sock, "GET", "/devices/list")).body.devices;
			const dev = devices.find((x) => x.properties?.zwave?.node_id === 2) ?? devices[0];
			const did = dev.device_id;
			await sleep(2000);
			// Set a code until the lock confirmed it (status "set").
			let t0 = epoch();
			const c = await api(sock, "POST", "/access_codes/create", { device_id: did, code: "4821", name: "bench" });
			const id = c.body?.access_code?.access_code_id;
			if (!id) throw new Error(`create failed: ${JSON.stringify(c.body)}`);
			const tSet = await until("the code set", 60000, async () => ((await api(sock, "GET", `/access_codes/get?access_code_id=${id}`)).body?.access_code?.status === "set" ? epoch() : null));
			await sleep(3000);
			r.set = { ...count(proxy.frames, t0, epoch()), ms: tSet - t0 };
			// Read one slot: a keypad change told by a notification alone, which zwlock reads.
			const unmanagedHas = async (slot, code) =>
				((await api(sock, "GET", `/access_codes/unmanaged/list?device_id=${did}`)).body?.access_codes ?? []).some((x) => x.slot === slot && x.code === code);
			t0 = epoch();
			await httpGet(`http://127.0.0.1:${mock.control}/keypad-set?node=2&user=12&code=3579&status=1&notify=notification`);
			const tGet = await until("the slot read", 30000, async () => ((await unmanagedHas(12, "3579")) ? epoch() : null)).catch(() => null);
			await sleep(1000);
			r.get = tGet ? { ...count(proxy.frames, t0, epoch()), ms: tGet - t0 } : null;
		}
		// The mock's lock tells of keypad changes in clear, which neither stack takes from an
		// S2 lock: no keypad figures under S2.
		if (sc.ops && !sc.s2) {
			const devices = (await api(sock, "GET", "/devices/list")).body.devices;
			const did = (devices.find((x) => x.properties?.zwave?.node_id === 2) ?? devices[0]).device_id;
			const unmanagedHas = async (slot, code) =>
				((await api(sock, "GET", `/access_codes/unmanaged/list?device_id=${did}`)).body?.access_codes ?? []).some((x) => x.slot === slot && x.code === code);
			// A keypad change told by a notification and the slot's report.
			const t0 = epoch();
			await httpGet(`http://127.0.0.1:${mock.control}/keypad-set?node=2&user=14&code=5791&status=1&notify=both`);
			const seen = await until("the keypad change", 3000, async () => ((await unmanagedHas(14, "5791")) ? epoch() : null)).catch(() => null);
			await sleep(3000);
			r.keypad = { ...count(proxy.frames, t0, epoch()), seen: !!seen };
		}
		await d.stop();
		await proxy.close();
		// Second start on the same database: SendData until the API answers and then 5 s of
		// quiet (all of it: there are no managed codes for the engine to verify on a and b, c;
		// on a and s2 the one code set above).
		proxy = await startProxy(mock.port);
		fs.writeFileSync(path.join(state, "zwlock.toml"), toml(proxy.port));
		d = daemon(state, proxy.port);
		await until("the API", 60000, async () => {
			try {
				return (await api(sock, "GET", "/health")).status === 200;
			} catch {
				return false;
			}
		});
		let last = proxy.frames.length;
		let quietSince = epoch();
		await until("5 s of quiet", 10 * 60 * 1000, () => {
			if (proxy.frames.length !== last) {
				last = proxy.frames.length;
				quietSince = epoch();
			}
			return epoch() - quietSince > 5000;
		}, 50);
		r.second = count(proxy.frames, 0, epoch());
		r.second_ms = quietSince - d.started;
		await d.stop();
		await proxy.close();
		r.refused = JSON.parse(await httpGet(`http://127.0.0.1:${mock.control}/refusals`)).refused;
		return r;
	} finally {
		await mock.stop();
		fs.rmSync(state, { recursive: true, force: true });
	}
}

// ---- the table ----------------------------------------------------------------------------
const median = (xs) => {
	const v = xs.filter((x) => typeof x === "number" && !Number.isNaN(x)).sort((a, b) => a - b);
	if (!v.length) return null;
	return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const pick = (runs, f) => median(runs.map((r) => {
	try {
		return f(r);
	} catch {
		return null;
	}
}));
const fmt = (v, d = 0) => (v === null || v === undefined ? "n/a" : v.toFixed(d));
const ratio = (w, z) => (w === null || z === null || z === 0 ? "n/a" : (w / z).toFixed(3));

function table(sc, z, w) {
	const n = sc.locks;
	const rows = [
		["first start: SendData until interviewed + all codes read", (r) => r.first.sendData, 0],
		["  per lock", (r) => r.first.sendData / n, 1],
		["  SOF frames both ways", (r) => r.first.sof, 0],
		["  wall s", (r) => r.first_ms / 1000, 1],
		["  SendData refused by the busy stick", (r) => r.refused, 0],
		["second start: SendData until ready (zwlock: and 5 s quiet, its read-back of a code it set included), per lock", (r) => r.second.sendData / n, 1],
		["RSS after ready MiB", (r) => r.rss_mib, 1],
	];
	if (sc.ops) {
		rows.push(
			["set a code until confirmed: SendData", (r) => r.set.sendData, 0],
			["  SOF frames both ways", (r) => r.set.sof, 0],
			["  ms to confirmed", (r) => r.set.ms, 0],
			["read one slot: SendData (zwlock: the read a notification asks for)", (r) => r.get.sendData, 0],
			["  SOF frames both ways (zwlock: the notification included)", (r) => r.get.sof, 0],
		);
		if (!sc.s2) rows.push(["keypad change, notification + report: SendData", (r) => r.keypad.sendData, 0]);
	}
	const out = [`### ${sc.title}`, "", `runs: ${z.length} (medians)`, "", "| figure | zwave-js 15.29.0 | zwlock | zwlock/zwave-js |", "|---|---:|---:|---:|"];
	for (const [label, f, d] of rows) {
		const zv = pick(z, f);
		const wv = pick(w, f);
		out.push(`| ${label} | ${fmt(zv, d)} | ${fmt(wv, d)} | ${ratio(wv, zv)} |`);
	}
	if (sc.ops && !sc.s2) {
		const seen = (rs) => rs.map((r) => (r.keypad?.seen ? "yes" : "no")).join("/");
		out.push(`| keypad change seen | ${seen(z)} | ${seen(w)} | |`);
	}
	return out.join("\n") + "\n";
}

(async () => {
	if (!fs.existsSync(BIN)) throw new Error(`${BIN} does not exist (cargo build --release)`);
	const out = [`## zwave-js 15.29.0 vs zwlock on the same zwave-js mock (${new Date().toISOString().slice(0, 10)})`, ""];
	for (const sc of SCENARIOS) {
		const z = [];
		const w = [];
		for (let i = 1; i <= RUNS; i++) {
			say(`${sc.id} run ${i}: zwave-js`);
			z.push(await zwaveJs(sc));
			say(`${sc.id} run ${i}: zwave-js`, JSON.stringify(z[z.length - 1]));
			say(`${sc.id} run ${i}: zwlock`);
			w.push(await zwlock(sc));
			say(`${sc.id} run ${i}: zwlock`, JSON.stringify(w[w.length - 1]));
		}
		const t = table(sc, z, w);
		out.push(t);
		QUIET || console.error(t);
	}
	console.log(out.join("\n"));
})().catch((e) => {
	console.error(`[bench] ${e && e.stack}`);
	process.exit(1);
});
