// Security vectors computed by zwave-js's own crypto (@zwave-js/core, pinned in
// package-lock.json), so that zwlock's S0/S2 code is checked against an independent
// implementation. Prints JSON; fixtures/crypto/zwave-js.json is its output, and
// tests/security_vectors.rs re-runs it when the interop packages are installed.
"use strict";
const c = require("@zwave-js/core");

const hex = (b) => Buffer.from(b).toString("hex");
const bytes = (s) => Uint8Array.from(Buffer.from(s, "hex"));
const fill = (n, v) => new Uint8Array(n).fill(v);
const seq = (n, start) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

async function main() {
  const out = { source: "zwave-js @zwave-js/core (tests/interop/package-lock.json)", s0: [], network_keys: [], inclusion: [], span: [], ccm: [] };

  // S0: keys from a network key, then a full encapsulation (OFB + CBC-MAC, zero IV).
  for (const netKey of [seq(16, 1), fill(16, 0), bytes("c0ffee01c0ffee02c0ffee03c0ffee04")]) {
    const authKey = await c.encryptAES128ECB(fill(16, 0x55), netKey);
    const encKey = await c.encryptAES128ECB(fill(16, 0xaa), netKey);
    const senderNonce = seq(8, 0xa0);
    const receiverNonce = seq(8, 0x30);
    const plaintext = bytes("00630105013433323139"); // frame control + User Code Set slot 5 "43219"
    const iv = new Uint8Array([...senderNonce, ...receiverNonce]);
    const ciphertext = await c.encryptAES128OFB(plaintext, encKey, iv);
    const src = 0x01, dst = 0x05;
    const authData = new Uint8Array([...senderNonce, ...receiverNonce, 0x81, src, dst, ciphertext.length, ...ciphertext]);
    const mac = await c.computeMAC(authData, authKey);
    out.s0.push({
      network_key: hex(netKey), auth_key: hex(authKey), enc_key: hex(encKey),
      sender_nonce: hex(senderNonce), receiver_nonce: hex(receiverNonce), src, dst,
      plaintext: hex(plaintext),
      frame: hex(new Uint8Array([0x98, 0x81, ...senderNonce, ...ciphertext, receiverNonce[0], ...mac])),
    });
  }

  // S2 network keys (CKDF expand with 0x55).
  for (const pnk of [seq(16, 0), fill(16, 0xff), bytes("7d5b0d1e4f1c3a2b9e8f7a6b5c4d3e2f")]) {
    const k = await c.deriveNetworkKeys(pnk);
    out.network_keys.push({ pnk: hex(pnk), ccm: hex(k.keyCCM), personalization: hex(k.personalizationString), mpan: hex(k.keyMPAN) });
  }

  // Inclusion: X25519 from fixed private keys, the PRK and the temporary keys.
  {
    const a = await c.keyPairFromRawECDHPrivateKey(seq(32, 0x10));
    const b = await c.keyPairFromRawECDHPrivateKey(seq(32, 0x80));
    const shared = await c.deriveSharedECDHSecret({ privateKey: a.privateKey, publicKey: b.publicKey });
    const prk = await c.computePRK(shared, a.publicKey, b.publicKey);
    const t = await c.deriveTempKeys(prk);
    out.inclusion.push({
      private_a: hex(seq(32, 0x10)), private_b: hex(seq(32, 0x80)),
      public_a: hex(a.publicKey), public_b: hex(b.publicKey), shared: hex(shared),
      prk: hex(prk), temp_ccm: hex(t.tempKeyCCM), temp_personalization: hex(t.tempPersonalizationString),
    });
  }

  // SPAN: nonce PRK, MEI, then the first nonces of the CTR_DRBG seeded with the MEI and the
  // network key's personalization string.
  {
    const senderEI = seq(16, 0x40), receiverEI = seq(16, 0xc0);
    const pnk = bytes("7d5b0d1e4f1c3a2b9e8f7a6b5c4d3e2f");
    const k = await c.deriveNetworkKeys(pnk);
    const noncePRK = await c.computeNoncePRK(senderEI, receiverEI);
    const mei = await c.deriveMEI(noncePRK);
    const meiHex = hex(mei); // CtrDRBG.init XORs the personalization into its entropy argument in place
    const drbg = new c.CtrDRBG();
    await drbg.init(Uint8Array.from(mei), k.personalizationString);
    const nonces = [];
    for (let i = 0; i < 3; i++) nonces.push(hex((await drbg.generate(16)).subarray(0, 13)));
    out.span.push({ sender_ei: hex(senderEI), receiver_ei: hex(receiverEI), pnk: hex(pnk), nonce_prk: hex(noncePRK), mei: meiHex, nonces });
  }

  // AES-128-CCM with S2's sizes (13-byte nonce, 8-byte tag).
  {
    const key = bytes("7d5b0d1e4f1c3a2b9e8f7a6b5c4d3e2f");
    const nonce = seq(13, 0x20);
    const aad = bytes("0105c0ffee01001a4201");
    const plaintext = bytes("630105013433323139");
    const r = await c.encryptAES128CCM(plaintext, key, nonce, aad, 8);
    out.ccm.push({ key: hex(key), nonce: hex(nonce), aad: hex(aad), plaintext: hex(plaintext), sealed: hex(new Uint8Array([...r.ciphertext, ...r.authTag])) });
  }

  process.stdout.write(JSON.stringify(out, null, 2) + "\n");
}

main().catch((e) => { console.error(e); process.exit(1); });
