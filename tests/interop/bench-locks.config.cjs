// Mock network of the side-by-side benchmark (tools/bench-side-by-side): the same locks for
// zwave-js's Driver and for zwlock's daemon. zwave-js 15.29.0 mock server, started only
// through mock-launcher.cjs (127.0.0.1, mDNS off). Set by the environment:
//
//   BENCH_LOCKS      locks, nodes 2..BENCH_LOCKS+1                         (default 1)
//   BENCH_UC         User Code version, 1 or 2                              (default 1)
//   BENCH_USERS      user ids (slots) per lock                              (default 30)
//   BENCH_CHECKSUM   "1": a v2 lock reports a User Code checksum            (default 1)
//   BENCH_S2         "1": the locks were included with S2 Access Control    (default 0)
//                    (the controller holds the fixed keys below; User Code, Door Lock,
//                    Notification and Battery answer only under S2)
//   MOCK_CONTROL_PORT  the control hook on 127.0.0.1 (0: any free port, printed)
//
// Every lock: FLiRS (1000 ms), neutral ids 0xFFFF/0x0001/0x0001 (no device database entry
// of either stack applies), Version v3, Manufacturer Specific v2, Supervision v1, Door Lock
// v4, Notification v8 (Access Control, and it answers Notification Get as a real v8 lock),
// Battery v1. Seeded codes: user 1 "1234" enabled, user 7 "24680" disabled.
//
// The mock controller answers a SendData sent while its own transaction is in flight with
// "not accepted" (RES 13 00) and counts it, as a busy stick. Control hook:
//   GET /codes?node=N             the lock's slots
//   GET /keypad-set?node=N&user=U&code=C&status=1&notify=notification|report|both|none
//   GET /refusals                 {"refused": n}
"use strict";

exports.default = function ({ require }) {
	const http = require("node:http");
	const { CommandClasses, SecurityClass } = require("@zwave-js/core");
	const { BatteryCCGet, BatteryCCReport, NotificationCCGet, NotificationCCReport, UserCodeCCReport } = require("@zwave-js/cc");
	const { createMockZWaveRequestFrame } = require("@zwave-js/testing");
	const { SendDataRequest, SendDataResponse } = require("@zwave-js/serial/serialapi");

	const env = (k, d) => process.env[k] ?? d;
	const LOCKS = Number(env("BENCH_LOCKS", "1"));
	const UC = Number(env("BENCH_UC", "1"));
	const USERS = Number(env("BENCH_USERS", "30"));
	const CHECKSUM = UC >= 2 && env("BENCH_CHECKSUM", "1") === "1";
	const S2 = env("BENCH_S2", "0") === "1";
	const SEEDED = [[1, 1, "1234"], [7, 2, "24680"]];
	let refused = 0;

	const battery = {
		handleCC(controller, self, cc) {
			if (!(cc instanceof BatteryCCGet)) return undefined;
			return { action: "sendCC", cc: new BatteryCCReport({ nodeId: controller.ownNodeId, level: 87 }) };
		},
	};
	// Idle: nothing to report for the asked notification type.
	const notificationState = {
		handleCC(controller, self, cc) {
			if (!(cc instanceof NotificationCCGet)) return undefined;
			return {
				action: "sendCC",
				cc: new NotificationCCReport({
					nodeId: controller.ownNodeId,
					notificationType: cc.notificationType ?? 0x06,
					notificationStatus: 0xff,
					notificationEvent: 0x00,
				}),
			};
		},
	};
	const busy = {
		async onHostMessage(controller, msg) {
			if (!(msg instanceof SendDataRequest)) return undefined;
			const state = controller.state.get("communicationState");
			if (state === undefined || state === 0) return undefined;
			refused += 1;
			await controller.sendMessageToHost(new SendDataResponse({ wasSent: false }));
			return true;
		},
	};

	const classes = [
		{ ccId: CommandClasses.Version, version: 3 },
		{ ccId: CommandClasses["Manufacturer Specific"], version: 2 },
		{ ccId: CommandClasses.Supervision, version: 1 },
		{
			ccId: CommandClasses["User Code"],
			version: UC,
			numUsers: USERS,
			supportedASCIIChars: "0123456789",
			supportsAdminCode: UC >= 2,
			supportsAdminCodeDeactivation: UC >= 2,
			supportsUserCodeChecksum: CHECKSUM,
			supportedKeypadModes: [0],
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
	// Under S2 the lock's own classes are secure only; Version, Manufacturer Specific and
	// Supervision stay in the plain list as well.
	const plainToo = new Set([CommandClasses.Version, CommandClasses["Manufacturer Specific"], CommandClasses.Supervision]);
	const s2Classes = [
		{ ccId: CommandClasses["Security 2"], version: 1, secure: true },
		...classes.map((c) => ({ ...c, secure: !plainToo.has(c.ccId) })),
	];

	const capabilities = () => ({
		isListening: false,
		isFrequentListening: "1000ms",
		isRouting: true,
		supportsBeaming: true,
		supportsSecurity: S2,
		basicDeviceClass: 0x04,
		genericDeviceClass: 0x40,
		specificDeviceClass: 0x03,
		manufacturerId: 0xffff,
		productType: 0x0001,
		productId: 0x0001,
		firmwareVersion: "1.2",
		txDelay: 10,
		commandClasses: S2 ? s2Classes : classes,
		...(S2 ? { securityClasses: new Set([SecurityClass.S2_AccessControl]) } : {}),
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
	const tell = (node, cc) => node.sendToController(createMockZWaveRequestFrame(cc, { ackRequested: false }));

	function onInit(controller, nodes) {
		for (const node of nodes) for (const [u, s, c] of SEEDED) writeSlot(node, u, s, c);
		console.log(`[bench-locks] ${LOCKS} lock(s), User Code v${UC}, ${USERS} users, checksum ${CHECKSUM}, S2 ${S2}`);
		const server = http.createServer(async (req, res) => {
			const reply = (code, body) => {
				res.writeHead(code, { "content-type": "application/json" });
				res.end(JSON.stringify(body) + "\n");
			};
			try {
				const url = new URL(req.url, "http://127.0.0.1");
				const q = (k, d) => url.searchParams.get(k) ?? d;
				if (url.pathname === "/refusals") return reply(200, { refused });
				const node = controller.nodes.get(Number(q("node", "2")));
				if (!node) return reply(404, { error: "no such node" });
				if (url.pathname === "/codes") return reply(200, slots(node));
				if (url.pathname === "/keypad-set") {
					const user = Number(q("user", "0"));
					const status = Number(q("status", "1"));
					const code = q("code", "");
					const notify = q("notify", "notification");
					if (!(user >= 1 && user <= USERS)) return reply(400, { error: "bad user" });
					writeSlot(node, user, status, code);
					if (notify === "notification" || notify === "both") {
						await tell(node, new NotificationCCReport({
							nodeId: controller.ownNodeId,
							notificationType: 0x06,
							notificationEvent: status === 0 ? 0x0d : 0x0e,
							eventParameters: Uint8Array.from([user]),
						}));
					}
					if (notify === "report" || notify === "both") {
						await tell(node, new UserCodeCCReport({
							nodeId: controller.ownNodeId,
							userId: user,
							userIdStatus: status,
							userCode: status === 0 ? undefined : code,
						}));
					}
					return reply(200, slots(node));
				}
				return reply(404, { error: "endpoints: /codes /keypad-set /refusals" });
			} catch (e) {
				return reply(500, { error: String(e && e.message) });
			}
		});
		server.listen(Number(env("MOCK_CONTROL_PORT", "0")), "127.0.0.1", () => {
			console.log(`control listening on http://127.0.0.1:${server.address().port}`);
		});
		server.unref();
	}

	const key = (b) => new Uint8Array(16).fill(b);
	return {
		controller: {
			ownNodeId: 1,
			homeId: 0x7e570042,
			behaviors: [busy],
			// The mock's S2 bootstrapping needs all three S2 keys at the controller.
			securityKeys: {
				S2_AccessControl: key(0x11),
				S2_Authenticated: key(0x22),
				S2_Unauthenticated: key(0x33),
				S0_Legacy: key(0x44),
			},
		},
		nodes: Array.from({ length: LOCKS }, (_, i) => ({
			id: 2 + i,
			capabilities: capabilities(),
			behaviors: [battery, notificationState],
		})),
		onInit,
	};
};
