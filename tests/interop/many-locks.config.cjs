// Mock network for zwlock's "one stick transaction at a time" interop test (zwave-js 15.29.0
// mock server, via mock-launcher.cjs): MOCK_LOCKS (default 20) FLiRS keypad locks, nodes
// 2..MOCK_LOCKS+1, User Code v1 with 30 users, seeded user 1 "1234" and user 7 "2468N"
// (N: the node id's last digit), neutral manufacturer ids.
//
// The stock mock controller throws on a SendData while it is not idle (a RequestNodeInfo
// waiting for the node information, a SendData waiting for its callback). Here it answers
// "not accepted" (RES 13 00) instead, as a busy stick does, and counts it:
//   GET /refusals   {"refused": N}   on the control hook (127.0.0.1, MOCK_CONTROL_PORT)
"use strict";

exports.default = function ({ require }) {
	const http = require("node:http");
	const { CommandClasses } = require("@zwave-js/core");
	const { SendDataRequest, SendDataResponse } = require("@zwave-js/serial/serialapi");

	const LOCKS = Number(process.env.MOCK_LOCKS ?? 20);
	let refused = 0;

	const busyWhileSending = {
		async onHostMessage(controller, msg) {
			if (!(msg instanceof SendDataRequest)) return undefined;
			const state = controller.state.get("communicationState");
			if (state === undefined || state === 0) return undefined;
			refused += 1;
			await controller.sendMessageToHost(new SendDataResponse({ wasSent: false }));
			return true;
		},
	};

	const lock = (id) => ({
		id,
		capabilities: {
			isListening: false,
			isFrequentListening: "1000ms",
			isRouting: true,
			supportsBeaming: true,
			supportsSecurity: false,
			basicDeviceClass: 0x04,
			genericDeviceClass: 0x40,
			specificDeviceClass: 0x03,
			manufacturerId: 0xffff,
			productType: 0x0001,
			productId: 0x0001,
			firmwareVersion: "1.0",
			txDelay: 10,
			commandClasses: [
				{ ccId: CommandClasses.Version, version: 3 },
				{ ccId: CommandClasses["Manufacturer Specific"], version: 2 },
				{
					ccId: CommandClasses["User Code"],
					version: 1,
					numUsers: 30,
					supportedASCIIChars: "0123456789",
					supportedUserIDStatuses: [0, 1, 2],
				},
			],
		},
	});

	function onInit(controller, nodes) {
		for (const node of nodes) {
			node.state.set("UserCode_userIdStatus_1", 1);
			node.state.set("UserCode_userCode_1", "1234");
			node.state.set("UserCode_userIdStatus_7", 1);
			node.state.set("UserCode_userCode_7", `2468${node.id % 10}`);
		}
		const server = http.createServer((req, res) => {
			res.writeHead(200, { "content-type": "application/json" });
			res.end(JSON.stringify(req.url.startsWith("/refusals") ? { refused } : { error: "endpoints: /refusals" }) + "\n");
		});
		server.listen(Number(process.env.MOCK_CONTROL_PORT ?? 0), "127.0.0.1", () => {
			console.log(`control listening on http://127.0.0.1:${server.address().port}`);
		});
		server.unref();
	}

	return {
		controller: { ownNodeId: 1, homeId: 0x7e570003, behaviors: [busyWhileSending] },
		nodes: Array.from({ length: LOCKS }, (_, i) => lock(i + 2)),
		onInit,
	};
};
