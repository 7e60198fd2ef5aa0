#!/usr/bin/env node
// The zwave-js side of the side-by-side benchmark (bench-side-by-side.cjs spawns it with an
// IPC channel): zwave-js 15.29.0's Driver on the benchmark's proxy, interview with
// queryAllUserCodes, then the operations on node 2. Each step is reported to the runner as
// {mark, t} (t: epoch ms), so the runner counts the frames its proxy saw in between.
//
// env: ZJS_URL (tcp://127.0.0.1:PORT), ZJS_CACHE (its cache directory; kept by the runner
// for a second start), ZJS_OPS ("1": the operations after ready), ZJS_CONTROL (the mock's
// control hook port), ZJS_S2 ("1": give the Driver the mock's S2 keys).
//
// Loopback only: TCP to anything but 127.0.0.1/::1 and every UDP socket are refused before
// zwave-js loads (no broadcast, no multicast); statistics stay off.
"use strict";

const net = require("node:net");
const dgram = require("node:dgram");
const http = require("node:http");
const fs = require("node:fs");

dgram.createSocket = () => {
	throw new Error("UDP is disabled in zwlock's benchmark");
};
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
	const [a, b] = args;
	if (Array.isArray(a)) return connect.apply(this, args);
	const host = a && typeof a === "object" ? a.host : typeof b === "string" ? b : undefined;
	const unix = a && typeof a === "object" ? a.path : typeof a === "string" && Number.isNaN(Number(a));
	if (!unix && host !== undefined && !["127.0.0.1", "::1", "localhost"].includes(host)) {
		throw new Error(`connection to ${host} refused: the benchmark stays on loopback`);
	}
	return connect.apply(this, args);
};

const { Driver } = require("zwave-js");
const { CommandClasses } = require("@zwave-js/core");

const epoch = () => performance.timeOrigin + performance.now();
const mark = (name, extra = {}) => process.send?.({ mark: name, t: epoch(), ...extra });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rss = () => Number((fs.readFileSync("/proc/self/status", "utf8").match(/^VmRSS:\s+(\d+)/m) ?? [])[1]);
const get = (url) =>
	new Promise((resolve, reject) => {
		http.get(url, (res) => {
			let d = "";
			res.on("data", (c) => (d += c));
			res.on("end", () => resolve(d));
		}).on("error", reject);
	});
const key = (b) => Buffer.alloc(16, b);

async function main() {
	const driver = new Driver(process.env.ZJS_URL, {
		logConfig: { enabled: false },
		storage: { cacheDir: process.env.ZJS_CACHE },
		interview: { queryAllUserCodes: true },
		...(process.env.ZJS_S2 === "1"
			? { securityKeys: { S2_AccessControl: key(0x11), S2_Authenticated: key(0x22), S2_Unauthenticated: key(0x33), S0_Legacy: key(0x44) } }
			: {}),
	});
	driver.on("error", (e) => process.send?.({ log: `driver error: ${e && e.message}` }));
	const allReady = new Promise((r) => driver.once("all nodes ready", r));
	mark("start");
	await driver.start();
	await allReady;
	mark("ready", { rss_kb: rss() });

	if (process.env.ZJS_OPS === "1") {
		const node = driver.controller.nodes.get(2);
		const events = [];
		node.on("value updated", (_n, a) => events.push(a));
		node.on("value added", (_n, a) => events.push(a));
		const text = (v) => (typeof v === "string" ? v : v ? Buffer.from(v).toString("latin1") : v);
		const until = async (pred, ms) => {
			const t0 = epoch();
			while (epoch() - t0 < ms) {
				if (events.some(pred)) return true;
				await sleep(5);
			}
			return false;
		};
		const isCode = (u, c) => (a) => a.commandClass === CommandClasses["User Code"] && a.property === "userCode" && a.propertyKey === u && text(a.newValue) === c;

		await sleep(2000);
		// Set a code until the lock confirmed it (setValue resolves on Supervision SUCCESS;
		// the Driver then verifies with a Get of its own, counted in the window).
		events.length = 0;
		mark("set:start");
		const r = await node.setValue({ commandClass: CommandClasses["User Code"], property: "userCode", propertyKey: 5 }, "4821");
		mark("set:confirmed", { ok: r && r.status });
		await sleep(3000);
		mark("set:end");

		// Read one slot.
		mark("get:start");
		const g = await node.commandClasses["User Code"].get(1);
		mark("get:end", { ok: !!g });
		await sleep(1000);

		// A keypad change told by a notification and the slot's report (not under S2: the
		// mock tells it in clear).
		if (process.env.ZJS_KEYPAD === "0") {
			mark("destroy");
			await driver.destroy();
			process.disconnect?.();
			return;
		}
		events.length = 0;
		mark("keypad:start");
		await get(`http://127.0.0.1:${process.env.ZJS_CONTROL}/keypad-set?node=2&user=14&code=5791&status=1&notify=both`);
		const seen = await until(isCode(14, "5791"), 3000);
		mark("keypad:seen", { ok: seen });
		await sleep(3000);
		mark("keypad:end");
	}
	mark("destroy");
	await driver.destroy();
	process.disconnect?.();
}

main().catch((e) => {
	process.send?.({ log: `client failed: ${e && e.stack}` });
	process.exit(1);
});
