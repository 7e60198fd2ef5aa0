// Mock network for zwlock's interop tests (zwave-js 15.29.0 mock server, via mock-launcher.cjs).
//
//  node 1  the controller, home id 0x7E570001
//  node 2  a keypad lock: User Code v2 (30 users, checksum, no bulk reports), Door Lock v4,
//          Notification v8 (Access Control), Battery, Supervision, Version, Manufacturer
//          Specific. Seeded codes: user 1 "1234" (enabled), user 7 "24680" (disabled).
//  node 3  the same lock, already included with S2 Access Control and S0 (the controller's
//          fixed test keys below). Seeded code: user 1 "1111".
//
// A control hook on 127.0.0.1 (port from MOCK_CONTROL_PORT, 0 = any free one) acts as a
// person at the lock:  GET /codes?node=2
//                      GET /keypad-set?node=2&user=5&code=9999&status=1&notify=notification|report|both|none
//                      GET /battery?node=2&level=15
"use strict";

exports.default = function ({ require }) {
	const http = require("node:http");
	const { CommandClasses, SecurityClass } = require("@zwave-js/core");
	const { BatteryCCGet, BatteryCCReport, NotificationCCReport, UserCodeCCReport } = require("@zwave-js/cc");
	const { createMockZWaveRequestFrame } = require("@zwave-js/testing");
	const { SendDataRequest, SendDataResponse } = require("@zwave-js/serial/serialapi");

	const USERS = 30;
	const SEEDED = {
		2: [[1, 1, "1234"], [7, 2, "24680"]],
		3: [[1, 1, "1111"]],
	};

	const batteryAnswers = {
		handleCC(controller, self, cc) {
			if (!(cc instanceof BatteryCCGet)) return undefined;
			const level = self.state.get("Battery_level") ?? 87;
			return { action: "sendCC", cc: new BatteryCCReport({ nodeId: controller.ownNodeId, level }) };
		},
	};

	const lockClasses = [
		{ ccId: CommandClasses.Version, version: 3 },
		{ ccId: CommandClasses["Manufacturer Specific"], version: 2 },
		{ ccId: CommandClasses.Supervision, version: 1 },
		{
			ccId: CommandClasses["User Code"],
			version: 2,
			numUsers: USERS,
			supportedASCIIChars: "0123456789",
			supportsAdminCode: true,
			supportsAdminCodeDeactivation: true,
			supportsUserCodeChecksum: true,
			supportedKeypadModes: [0, 1, 2],
			supportedUserIDStatuses: [0, 1, 2],
		},
		{ ccId: CommandClasses["Door Lock"], version: 4 },
		{
			ccId: CommandClasses.Notification,
			version: 8,
			supportsV1Alarm: false,
			notificationTypesAndEvents: { 6: [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15] },
		},
		{ ccId: CommandClasses.Battery, version: 1 },
	];

	const lock = (extra) => ({
		isListening: false,
		isFrequentListening: "1000ms",
		isRouting: true,
		supportsBeaming: true,
		supportsSecurity: false,
		basicDeviceClass: 0x04,
		genericDeviceClass: 0x40,
		specificDeviceClass: 0x03,
		manufacturerId: 0x0129,
		productType: 0x8002,
		productId: 0x0600,
		firmwareVersion: "1.2",
		txDelay: 10,
		commandClasses: lockClasses,
		...extra,
	});

	const writeSlot = (node, user, status, code) => {
		node.state.set(`UserCode_userIdStatus_${user}`, status);
		node.state.set(`UserCode_userCode_${user}`, status === 0 ? undefined : code);
	};
	const slots = (node) => {
		const out = {};
		for (let u = 1; u <= USERS; u++) {
			const status = node.state.get(`UserCode_userIdStatus_${u}`);
			if (status === undefined) continue;
			const raw = node.state.get(`UserCode_userCode_${u}`);
			out[u] = { status, code: raw instanceof Uint8Array ? Buffer.from(raw).toString("latin1") : raw ?? null };
		}
		return out;
	};
	const tell = (node, controller, cc) =>
		node.sendToController(createMockZWaveRequestFrame(cc, { ackRequested: false }));

	function onInit(controller, nodes) {
		for (const node of nodes) for (const [u, s, c] of SEEDED[node.id] ?? []) writeSlot(node, u, s, c);
		const server = http.createServer(async (req, res) => {
			const reply = (code, body) => {
				res.writeHead(code, { "content-type": "application/json" });
				res.end(JSON.stringify(body) + "\n");
			};
			try {
				const url = new URL(req.url, "http://127.0.0.1");
				const q = (k, d) => url.searchParams.get(k) ?? d;
				const node = controller.nodes.get(Number(q("node", "2")));
				if (!node) return reply(404, { error: "no such node" });
				if (url.pathname === "/codes") return reply(200, slots(node));
				if (url.pathname === "/battery") {
					node.state.set("Battery_level", Number(q("level", "87")));
					return reply(200, { ok: true });
				}
				if (url.pathname === "/keypad-set") {
					const user = Number(q("user", "0"));
					const status = Number(q("status", "1"));
					const code = q("code", "");
					const notify = q("notify", "notification");
					if (!(user >= 1 && user <= USERS)) return reply(400, { error: "bad user" });
					writeSlot(node, user, status, code);
					if (notify === "notification" || notify === "both") {
						await tell(node, controller, new NotificationCCReport({
							nodeId: controller.ownNodeId,
							notificationType: 0x06,
							notificationEvent: status === 0 ? 0x0d : 0x0e,
							eventParameters: Uint8Array.from([user]),
						}));
					}
					if (notify === "report" || notify === "both") {
						await tell(node, controller, new UserCodeCCReport({
							nodeId: controller.ownNodeId,
							userId: user,
							userIdStatus: status,
							userCode: status === 0 ? undefined : code,
						}));
					}
					return reply(200, slots(node));
				}
				return reply(404, { error: "endpoints: /codes /keypad-set /battery" });
			} catch (e) {
				return reply(500, { error: String(e && e.message) });
			}
		});
		server.listen(Number(process.env.MOCK_CONTROL_PORT ?? 0), "127.0.0.1", () => {
			console.log(`control listening on http://127.0.0.1:${server.address().port}`);
		});
		server.unref();
	}

	// A SendData while one is still on the air gets "not accepted", as a busy stick answers.
	const busyWhileSending = {
		async onHostMessage(controller, msg) {
			if (!(msg instanceof SendDataRequest)) return undefined;
			const state = controller.state.get("communicationState");
			if (state === undefined || state === 0) return undefined;
			await controller.sendMessageToHost(new SendDataResponse({ wasSent: false }));
			return true;
		},
	};

	const key = (b) => new Uint8Array(16).fill(b);
	const secureClasses = [
		{ ccId: CommandClasses["Security 2"], version: 1, secure: true },
		{ ccId: CommandClasses.Security, version: 1, secure: true },
		...lockClasses.map((c) => ({ ...c, secure: true })),
	];
	return {
		controller: {
			ownNodeId: 1,
			homeId: 0x7e570001,
			behaviors: [busyWhileSending],
			securityKeys: {
				S2_AccessControl: key(0x11),
				S2_Authenticated: key(0x22),
				S2_Unauthenticated: key(0x33),
				S0_Legacy: key(0x44),
			},
		},
		nodes: [
			{ id: 2, capabilities: lock({}), behaviors: [batteryAnswers] },
			{
				id: 3,
				capabilities: lock({
					supportsSecurity: true,
					securityClasses: new Set([SecurityClass.S2_AccessControl, SecurityClass.S0_Legacy]),
					commandClasses: secureClasses,
				}),
				behaviors: [batteryAnswers],
			},
		],
		onInit,
	};
};
