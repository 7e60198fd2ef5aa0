// Mock network for zwlock's S2 inclusion interop tests (zwave-js 15.29.0 mock server, via
// mock-launcher.cjs).
//
//  node 1  the controller, home id 0x7E570002. It holds all three S2 keys and S0 (the mock's
//          joining node runs S2 bootstrapping only then; otherwise it throws ZW1402 and never
//          answers). zwlock uses keys of its own, which it hands to the node.
//  node 4  a keypad lock waiting for inclusion (the mock controller's nodePendingInclusion):
//          S2 Access Control only (the mock echoes the requested keys in its KEX Set echo,
//          so it asks for just the class zwlock grants). Its plain node information lists
//          Security 2, Version, Manufacturer Specific, Battery, Notification, Supervision;
//          User Code v2 (30 users) and Door Lock v4 only in its S2 Commands Supported Report,
//          as real S2 locks do. Seeded code: user 1 "1111".
//
// The node's X25519 key pair is made here, so its PIN is known before it joins: the PIN is
// the first two bytes of its public key (the mock's own s2Pin helper reads other bytes).
//
// A control hook on 127.0.0.1 (port from MOCK_CONTROL_PORT, 0 = any free one):
//   GET /pin                the 5-digit PIN of the lock waiting for inclusion
//   GET /codes?node=4       the lock's codes
//   GET /nodes              the node ids the mock controller holds
//
// RemoveFailedNode, which the mock does not handle, is answered as a stick answers it for a
// node that still answers: started, then "node OK" (not removed).
"use strict";

exports.default = function ({ require }) {
	const http = require("node:http");
	const crypto = require("node:crypto");
	const { CommandClasses, SecurityClass } = require("@zwave-js/core");
	const { BatteryCCGet, BatteryCCReport } = require("@zwave-js/cc");
	const { Message, MessageType, FunctionType } = require("@zwave-js/serial");

	const USERS = 30;
	const NODE = 4;

	const pair = crypto.generateKeyPairSync("x25519");
	const raw = (key, field) => new Uint8Array(Buffer.from(key.export({ format: "jwk" })[field], "base64url"));
	const ecdhKeyPair = { publicKey: raw(pair.publicKey, "x"), privateKey: raw(pair.privateKey, "d") };
	const pin = (ecdhKeyPair.publicKey[0] << 8) | ecdhKeyPair.publicKey[1];

	const batteryAnswers = {
		handleCC(controller, self, cc) {
			if (!(cc instanceof BatteryCCGet)) return undefined;
			return { action: "sendCC", cc: new BatteryCCReport({ nodeId: controller.ownNodeId, level: 77 }) };
		},
	};

	// Secure-only classes: not in the node information (isSupported false), listed in the
	// S2 Commands Supported Report (secure), answered by the mock's behaviours all the same.
	const secureOnly = { isSupported: false, secure: true };
	const commandClasses = [
		{ ccId: CommandClasses["Security 2"], version: 1, secure: true },
		{ ccId: CommandClasses.Version, version: 3, secure: true },
		{ ccId: CommandClasses["Manufacturer Specific"], version: 2, secure: true },
		{ ccId: CommandClasses.Supervision, version: 1, secure: true },
		{ ccId: CommandClasses.Battery, version: 1, secure: true },
		{
			ccId: CommandClasses.Notification,
			version: 8,
			secure: true,
			supportsV1Alarm: false,
			notificationTypesAndEvents: { 6: [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15] },
		},
		{
			ccId: CommandClasses["User Code"],
			version: 2,
			...secureOnly,
			numUsers: USERS,
			supportedASCIIChars: "0123456789",
			supportsAdminCode: false,
			supportsAdminCodeDeactivation: false,
			supportsUserCodeChecksum: true,
			supportedKeypadModes: [0],
			supportedUserIDStatuses: [0, 1, 2],
		},
		{ ccId: CommandClasses["Door Lock"], version: 4, ...secureOnly },
	];

	const slots = (node) => {
		const out = {};
		for (let u = 1; u <= USERS; u++) {
			const status = node.state.get(`UserCode_userIdStatus_${u}`);
			if (status === undefined) continue;
			const code = node.state.get(`UserCode_userCode_${u}`);
			out[u] = { status, code: code instanceof Uint8Array ? Buffer.from(code).toString("latin1") : code ?? null };
		}
		return out;
	};

	const removeFailedNode = {
		async onHostMessage(controller, msg) {
			if (msg.functionType !== FunctionType.RemoveFailedNode || msg.type !== MessageType.Request) return undefined;
			const callbackId = msg.callbackId ?? 0;
			await controller.sendMessageToHost(
				new Message({ type: MessageType.Response, functionType: FunctionType.RemoveFailedNode, payload: Uint8Array.from([0x00]) }),
			);
			await controller.sendMessageToHost(
				new Message({ type: MessageType.Request, functionType: FunctionType.RemoveFailedNode, payload: Uint8Array.from([callbackId, 0x00]) }),
			);
			return true;
		},
	};

	function onInit(controller) {
		controller.nodePendingInclusion = {
			id: NODE,
			capabilities: {
				isListening: true,
				isFrequentListening: false,
				isRouting: true,
				supportsBeaming: true,
				supportsSecurity: true,
				basicDeviceClass: 0x04,
				genericDeviceClass: 0x40,
				specificDeviceClass: 0x03,
				// Neutral ids: no zwave-js device file matches, no compat flags.
				manufacturerId: 0xffff,
				productType: 0x0004,
				productId: 0x0004,
				firmwareVersion: "1.0",
				txDelay: 10,
				securityClasses: new Set([SecurityClass.S2_AccessControl]),
				commandClasses,
			},
			setup(node) {
				node.ecdhKeyPair = ecdhKeyPair;
				node.defineBehavior(batteryAnswers);
				node.state.set("UserCode_userIdStatus_1", 1);
				node.state.set("UserCode_userCode_1", "1111");
			},
		};
		const server = http.createServer((req, res) => {
			const reply = (code, body) => {
				res.writeHead(code, { "content-type": "application/json" });
				res.end(JSON.stringify(body) + "\n");
			};
			try {
				const url = new URL(req.url, "http://127.0.0.1");
				if (url.pathname === "/pin") return reply(200, { pin });
				if (url.pathname === "/nodes") return reply(200, { nodes: [...controller.nodes.keys()] });
				if (url.pathname === "/codes") {
					const node = controller.nodes.get(Number(url.searchParams.get("node") ?? NODE));
					return node ? reply(200, slots(node)) : reply(404, { error: "no such node" });
				}
				return reply(404, { error: "endpoints: /pin /codes /nodes" });
			} catch (e) {
				return reply(500, { error: String(e && e.message) });
			}
		});
		server.listen(Number(process.env.MOCK_CONTROL_PORT ?? 0), "127.0.0.1", () => {
			console.log(`control listening on http://127.0.0.1:${server.address().port}`);
		});
		server.unref();
	}

	const key = (b) => new Uint8Array(16).fill(b);
	return {
		controller: {
			ownNodeId: 1,
			homeId: 0x7e570002,
			behaviors: [removeFailedNode],
			securityKeys: {
				S2_AccessControl: key(0x11),
				S2_Authenticated: key(0x22),
				S2_Unauthenticated: key(0x33),
				S0_Legacy: key(0x44),
			},
		},
		nodes: [],
		onInit,
	};
};
