#!/usr/bin/env node
// zwlock's launcher for the zwave-js mock server (zwave-js 15.29.0, installed by `npm ci`
// in this directory). Used by tests/interop.rs; never start the stock `mock-server` bin, it
// advertises itself over mDNS multicast on every interface.
//
//   node mock-launcher.cjs --port 0 --config lock.config.cjs
//
// Prints "Server listening on tcp://127.0.0.1:PORT" (the real port) once ready, and
// "control listening on http://127.0.0.1:PORT" for the config's control hook.
//
// What it changes, without touching any zwave-js file:
//  * mDNS: @homebridge/ciao is replaced by a stub before the mock server loads it;
//  * binding: always 127.0.0.1, never another interface;
//  * framing: the stock server hands each TCP chunk to its parser as one frame. Here incoming
//    bytes are cut into ACK/NAK/CAN bytes and whole data frames first; a frame with a bad
//    checksum or LEN < 3 is answered with NAK, stray bytes are dropped, a frame left
//    incomplete for 1.5 s is discarded;
//  * the simulated radio: a command the mock cannot parse drops that one frame (the host
//    sees NoAck) instead of stopping the radio for good;
//  * an unhandled promise rejection is logged instead of ending the process.
"use strict";

const path = require("node:path");
const net = require("node:net");
const Module = require("node:module");

const argv = process.argv.slice(2);
const opt = (name, fallback) => {
	const i = argv.indexOf(name);
	return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
};
const port = Number(opt("--port", "0"));
const configPath = path.resolve(opt("--config", path.join(__dirname, "lock.config.cjs")));

const here = Module.createRequire(path.join(__dirname, "package.json"));
const zwaveJsBin = path.join(path.dirname(here.resolve("zwave-js/package.json")), "bin", "x.cjs");
const fromZwaveJs = Module.createRequire(zwaveJsBin);

// mDNS: a responder that never advertises anything.
{
	const ciao = fromZwaveJs.resolve("@homebridge/ciao");
	const fake = new Module(ciao);
	fake.filename = ciao;
	fake.loaded = true;
	const service = {
		advertise: () => Promise.reject(new Error("mDNS is disabled in zwlock tests")),
		end: () => Promise.resolve(),
		destroy: () => Promise.resolve(),
	};
	fake.exports = { getResponder: () => ({ createService: () => service, shutdown: () => Promise.resolve() }) };
	require.cache[ciao] = fake;
}

// The radio: catch per frame.
{
	const { MockController, unlazyMockZWaveFrame } = fromZwaveJs("@zwave-js/testing");
	const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
	MockController.prototype.execute = async function () {
		for await (const item of this.air) {
			const { source, target, onTransmit, ...frame } = item;
			const toNode = !source && target;
			const node = this._nodes.get(toNode ? target : source);
			if (!node || (!toNode && !(source && !target))) continue;
			try {
				await sleep(node.capabilities.txDelay);
				const parsed = await unlazyMockZWaveFrame(frame);
				if (onTransmit) onTransmit(parsed);
				const delivery = toNode ? node.onControllerFrame(parsed) : this.onNodeFrame(node, parsed);
				delivery.catch((e) => console.error(`[launcher] delivery failed: ${e && e.message}`));
			} catch (e) {
				console.error(`[launcher] radio dropped a frame ${toNode ? "to" : "from"} node ${node.id}: ${e && e.message}`);
			}
		}
	};
}

process.on("unhandledRejection", (e) => console.error(`[launcher] unhandled rejection: ${e && e.message}`));

// Framing of host bytes, installed on every connection the mock server accepts.
const SOF = 0x01, ACK = 0x06, NAK = 0x15, CAN = 0x18;
function reframe(socket, deliver) {
	let pending = Buffer.alloc(0);
	let since = 0;
	return (chunk) => {
		if (pending.length && Date.now() - since > 1500) pending = Buffer.alloc(0);
		pending = Buffer.concat([pending, chunk]);
		let i = 0;
		while (i < pending.length) {
			const b = pending[i];
			if (b === ACK || b === NAK || b === CAN) {
				deliver(pending.subarray(i, i + 1));
				i += 1;
			} else if (b !== SOF) {
				i += 1; // not a frame byte
			} else if (i + 1 >= pending.length) {
				break;
			} else if (pending[i + 1] < 3) {
				socket.write(Buffer.from([NAK]));
				i += 2;
			} else {
				const end = i + pending[i + 1] + 2;
				if (end > pending.length) break;
				let sum = 0xff;
				for (let k = i + 1; k < end - 1; k++) sum ^= pending[k];
				if (sum === pending[end - 1]) deliver(pending.subarray(i, end));
				else socket.write(Buffer.from([NAK]));
				i = end;
			}
		}
		pending = Buffer.from(pending.subarray(i));
		since = pending.length ? since || Date.now() : 0;
	};
}

const createServer = net.createServer;
net.createServer = function (...args) {
	const server = createServer.apply(this, args);
	server.prependListener("connection", (socket) => {
		const on = socket.on;
		socket.on = function (event, listener) {
			if (event !== "data") return on.call(this, event, listener);
			return on.call(this, "data", reframe(socket, (frame) => listener(Buffer.from(frame))));
		};
	});
	return server;
};

async function main() {
	const { MockServer } = fromZwaveJs("../build/cjs/mockServer.js");
	const loaded = require(configPath).default;
	const config = typeof loaded === "function" ? loaded({ require: fromZwaveJs }) : loaded;
	const server = new MockServer({ interface: "127.0.0.1", port, config });
	await server.start();
	const stop = async () => {
		await server.stop().catch(() => {});
		process.exit(0);
	};
	process.on("SIGINT", stop);
	process.on("SIGTERM", stop);
}

main().catch((e) => {
	console.error(`[launcher] ${e && e.stack}`);
	process.exit(1);
});
