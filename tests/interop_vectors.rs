//! The crypto fixture is what zwave-js computes now: tests/interop/crypto-vectors.cjs, run on
//! the pinned @zwave-js/core, prints exactly fixtures/crypto/zwave-js.json (which
//! tests/security_vectors.rs checks zwlock against in the first tier). Second tier.

mod tier2;

use serde_json::Value;

#[test]
fn the_fixture_is_what_zwave_js_computes_now() {
    let out = tier2::node().arg("crypto-vectors.cjs").output().unwrap();
    assert!(
        out.status.success(),
        "crypto-vectors.cjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text =
        std::fs::read_to_string(tier2::root().join("fixtures/crypto/zwave-js.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        live, fixture,
        "zwave-js now computes something else than the fixture"
    );
}
