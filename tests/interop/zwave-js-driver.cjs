#!/usr/bin/env node
// zwave-js 15.29.0's Driver against zwlock's simulator, the other way round from the mock
// tests: an implementation we did not write as the controller, the simulated stick and locks
// as its peers. Used by tests/interop.rs:
//
//   node zwave-js-driver.cjs --port PORT --control SIM_SOCKET --network NAME --cache DIR
//
// PORT is `zwlock sim serve --listen tcp://127.0.0.1:PORT`; SIM_SOCKET its --control socket
// (keypad actions, the boxed lock's button, `show`). Prints progress on stderr and one JSON
// line on stdout, the last: what the Driver saw (the stick's SDK version and setup commands, each node's
// interview, the codes it read, set and cleared, the keypad changes it heard, the inclusion).
// The Rust test checks it against the simulator.
//
// Loopback only: before zwave-js loads, every TCP connection to anything but 127.0.0.1, ::1
// or a Unix socket is refused and UDP sockets cannot be made (nothing broadcasts or
// multicasts; zwave-js's mDNS discovery, which only `Driver.enumerateSerialPorts` uses, is
// never called). Statistics stay off (opt-in), no config update check is made.
"use strict";

const net = require("node:net");
const dgram = require("node:dgram");
const os = require("node:os");
const path = require("node:path");

// --- the loopback guard -------------------------------------------------------------------
dgram.createSocket = () => {
	throw new Error("UDP sockets are disabled in zwlock tests (no broadcast, no multicast)");
};
const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
	const [first, second] = args;
	let host;
	let unixPath;
	if (Array.isArray(first)) return connect.apply(this, args); // internal normalised form
	if (first && typeof first === "object") {
		host = first.host;
		unixPath = first.path;
	} else if (typeof first === "string" && Number.isNaN(Number(first))) {
		unixPath = first;
	} else {
		host = typeof second === "string" ? second : "localhost";
	}
	if (!unixPath && !LOOPBACK.has(host ?? "localhost")) {
		throw new Error(`connection to ${host} refused: zwlock tests stay on loopback`);
	}
	return connect.apply(this, args);
};

const argv = process.argv.slice(2);
const opt = (name, fallback) => {
	const i = argv.indexOf(name);
	return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
};
const port = Number(opt("--port", "5555"));
const controlPath = opt("--control", "");
const network = opt("--network", "zjs");
const cacheDir = path.resolve(opt("--cache", path.join(os.tmpdir(), `zwlock-zjs-${process.pid}`)));

const { Driver, InclusionStrategy, InterviewStage, UserIDStatus } = require("zwave-js");
const { CommandClasses, SecurityClass } = require("@zwave-js/core");

const log = (...a) => console.error("[zwave-js-driver]", ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function within(ms, what, promise) {
	let t;
	return Promise.race([
		promise,
		new Promise((_, reject) => {
			t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
		}),
	]).finally(() => clearTimeout(t));
}

/** One request on the simulator's control socket (a JSON line each way). */
function control(request) {
	return new Promise((resolve, reject) => {
		const s = net.createConnection({ path: controlPath });
		let buf = "";
		s.on("data", (d) => {
			buf += d;
			const nl = buf.indexOf("\n");
			if (nl >= 0) {
				s.end();
				resolve(JSON.parse(buf.slice(0, nl)));
			}
		});
		s.on("error", reject);
		s.write(JSON.stringify({ network, ...request }) + "\n");
	});
}
const show = async (node) => (await control({ node, action: "show" })).lock;
const slotOf = (lock, slot) => lock.slots.find((s) => s.slot === slot);

const hex = (b) => Buffer.from(b).toString("hex");
const key = (b) => Buffer.alloc(16, b);
// The keys the simulator's secure locks were included with (tests/interop/sim-locks.toml).
const securityKeys = {
	S2_AccessControl: key(0x11),
	S2_Authenticated: key(0x22),
	S2_Unauthenticated: key(0x33),
	S0_Legacy: key(0x44),
};

const codeText = (c) => (c === undefined ? null : typeof c === "string" ? c : hex(c));

async function main() {
	const out = { nodes: {}, sets: [], keypad: [], included: null };
	const driver = new Driver(`tcp://127.0.0.1:${port}`, {
		// ZJS_LOG_LEVEL=debug writes zwave-js's log to the cache directory.
		logConfig: process.env.ZJS_LOG_LEVEL
			? { enabled: true, level: process.env.ZJS_LOG_LEVEL, logToFile: true, filename: path.join(cacheDir, "zwave-js_%DATE%.log") }
			: { enabled: false },
		storage: { cacheDir, lockDir: path.join(cacheDir, "locks") },
		securityKeys,
		// Read every code in the interview; without it zwave-js clears every code of a lock it
		// did not include itself.
		interview: { queryAllUserCodes: true },
	});
	driver.on("error", (e) => log("driver error:", e && e.message));
	const ready = new Promise((resolve) => driver.once("all nodes ready", resolve));
	const driverReady = new Promise((resolve) => driver.once("driver ready", resolve));
	await driver.start();
	await within(60000, "driver ready", driverReady);
	const c = driver.controller;
	out.controller = {
		sdkVersion: c.sdkVersion,
		setupCommands: c.supportedSerialAPISetupCommands ?? [],
		isSUC: c.isSUC,
		isSIS: c.isSIS,
		sucNodeId: c.sucNodeId,
		nodes: [...c.nodes.keys()],
	};
	log("driver ready:", JSON.stringify(out.controller));
	await within(240000, "all nodes ready", ready);
	log("all nodes ready");

	const lockIds = [...c.nodes.keys()].filter((id) => id !== c.ownNodeId);
	for (const id of lockIds) {
		const node = c.nodes.get(id);
		const users = node.commandClasses["User Code"];
		const info = {
			interviewComplete: node.interviewStage === InterviewStage.Complete,
			ready: node.ready,
			security: SecurityClass[node.getHighestSecurityClass()] ?? null,
			manufacturerId: node.manufacturerId,
			deviceConfig: node.deviceConfig ? node.deviceConfig.label : null,
			userCodeVersion: node.getCCVersion(CommandClasses["User Code"]),
			doorLockVersion: node.getCCVersion(CommandClasses["Door Lock"]),
			supportsZWavePlus: node.supportsCC(CommandClasses["Z-Wave Plus Info"]),
			supportsAssociation: node.supportsCC(CommandClasses.Association),
			// Gets the lock left unanswered, and frames from it zwave-js could not use, in the
			// interview.
			timeouts: node.statistics.timeoutResponse,
			droppedRX: node.statistics.commandsDroppedRX,
			codes: {},
		};
		if (users.isSupported()) {
			info.usersCount = await users.getUsersCount();
			const lock = await show(id);
			// Every slot the simulator holds, plus one it does not.
			const slots = [...lock.slots.map((s) => s.slot), lock.slots.length + 2];
			for (const slot of slots) {
				const r = await users.get(slot);
				info.codes[slot] = r ? { status: r.userIdStatus, code: codeText(r.userCode) } : null;
			}
			if (info.userCodeVersion >= 2) {
				try {
					info.checksum = await users.getUserCodeChecksum();
				} catch (e) {
					info.checksum = `unsupported: ${e.code ?? e.message}`;
				}
				try {
					const walk = [];
					let next = 1;
					for (let pages = 0; next && next !== 0 && pages < 100; pages++) {
						const page = await users.get(next, true);
						if (!page) break;
						for (const u of page.userCodes) walk.push({ slot: u.userId, status: u.userIdStatus, code: codeText(u.userCode) });
						if (page.nextUserId <= next) break;
						next = page.nextUserId;
					}
					info.extendedWalk = walk;
				} catch (e) {
					info.extendedWalk = `unsupported: ${e.code ?? e.message}`;
				}
			}
		}
		out.nodes[id] = info;
		log(`node ${id}:`, JSON.stringify({ ...info, codes: Object.keys(info.codes).length }));
	}

	// Set, read back and clear a code on each plain and each secure lock that keeps codes.
	for (const id of lockIds) {
		const node = c.nodes.get(id);
		const users = node.commandClasses["User Code"];
		if (!users.isSupported()) continue;
		const lock = await show(id);
		const slot = lock.slots.length + 3;
		const pin = `${4300 + id}`;
		const entry = { node: id, slot, pin };
		try {
			await users.set(slot, UserIDStatus.Enabled, pin);
			entry.readBack = (await users.get(slot)) ?? null;
			if (entry.readBack) entry.readBack = { status: entry.readBack.userIdStatus, code: codeText(entry.readBack.userCode) };
			entry.simAfterSet = slotOf(await show(id), slot) ?? null;
			await users.clear(slot);
			const cleared = await users.get(slot);
			entry.afterClear = cleared ? { status: cleared.userIdStatus, code: codeText(cleared.userCode) } : null;
			entry.simAfterClear = slotOf(await show(id), slot) ?? null;
		} catch (e) {
			entry.error = e.message;
		}
		out.sets.push(entry);
	}

	// Keypad changes at each lock that reports them; zwave-js hears a notification, or the
	// legacy alarm value, for each.
	for (const id of lockIds) {
		const node = c.nodes.get(id);
		if (!node.supportsCC(CommandClasses.Notification) || !node.commandClasses["User Code"].isSupported()) continue;
		const lock = await show(id);
		const slot = lock.slots.length + 4;
		const heard = new Promise((resolve) => {
			const onNotification = (_endpoint, ccId, args) => {
				if (ccId === CommandClasses.Notification) finish({ type: args.type, event: args.event });
			};
			// A legacy alarm (Notification v1/v2) shows as its alarm type.
			const onValue = (_node, v) => {
				if (v.commandClass === CommandClasses.Notification && v.property === "alarmType" && v.newValue) {
					finish({ alarmType: v.newValue });
				}
			};
			const finish = (what) => {
				node.off("notification", onNotification);
				node.off("value updated", onValue);
				node.off("value added", onValue);
				resolve(what);
			};
			node.on("notification", onNotification);
			node.on("value updated", onValue);
			node.on("value added", onValue);
		});
		const answer = await control({ node: id, action: "program", slot, pin: "97531" });
		let what;
		try {
			what = await within(10000, `keypad change at node ${id}`, heard);
		} catch (e) {
			what = { error: e.message };
		}
		out.keypad.push({ node: id, slot, control: answer.ok, heard: what, security: out.nodes[id].security });
	}

	// The boxed S2 lock: zwave-js includes it with the PIN printed on it.
	const boxed = Number(opt("--boxed", "0"));
	if (boxed) {
		const lock = await show(boxed);
		const pin = String(lock.dsk_pin).padStart(5, "0");
		const added = new Promise((resolve) => c.once("node added", (node, result) => resolve({ node, result })));
		await c.beginInclusion({
			strategy: InclusionStrategy.Security_S2,
			userCallbacks: {
				grantSecurityClasses: async (requested) => requested,
				validateDSKAndEnterPIN: async () => pin,
				abort() {},
			},
		});
		await sleep(200);
		const button = await control({ node: boxed, action: "button" });
		const { node, result } = await within(60000, "node added", added);
		await within(120000, `interview of node ${node.id}`, new Promise((resolve) => (node.ready ? resolve() : node.once("ready", resolve))));
		const users = node.commandClasses["User Code"];
		const first = users.isSupported() ? await users.get(1) : undefined;
		out.included = {
			button: button.ok,
			node: node.id,
			lowSecurity: result.lowSecurity,
			security: SecurityClass[node.getHighestSecurityClass()] ?? null,
			interviewComplete: node.interviewStage === InterviewStage.Complete,
			slot1: first ? { status: first.userIdStatus, code: codeText(first.userCode) } : null,
			simIncluded: (await show(boxed)).included,
		};
	}

	await driver.destroy();
	process.stdout.write(JSON.stringify(out) + "\n");
}

main()
	.then(() => process.exit(0))
	.catch((e) => {
		log("failed:", e && e.stack);
		process.exit(1);
	});
