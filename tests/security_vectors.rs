//! zwlock's S0 and S2 crypto against zwave-js's (an independent implementation):
//! fixtures/crypto/zwave-js.json holds what @zwave-js/core computes for fixed inputs
//! (tests/interop/crypto-vectors.cjs). tests/interop_vectors.rs (second tier) runs the script
//! again and checks it still prints exactly the fixture.

use std::path::Path;

use serde_json::Value;
use zwlock::security::primitives;
use zwlock::security::s0::{self, S0Keys};
use zwlock::security::s2::{ckdf, drbg::CtrDrbg};
use zwlock::util::hex;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> Value {
    let text = std::fs::read_to_string(root().join("fixtures/crypto/zwave-js.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn b<const N: usize>(v: &Value) -> [u8; N] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn x(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn s0_keys_and_encapsulation_match_zwave_js() {
    let f = fixture();
    for case in f["s0"].as_array().unwrap() {
        let keys = S0Keys::derive(&b(&case["network_key"]));
        let (src, dst) = (
            case["src"].as_u64().unwrap() as u8,
            case["dst"].as_u64().unwrap() as u8,
        );
        let plain = x(&case["plaintext"]);
        assert_eq!(plain[0], 0, "fixture plaintext starts with frame control");
        let frame = s0::encapsulate(
            &keys,
            &b(&case["sender_nonce"]),
            &b(&case["receiver_nonce"]),
            src,
            dst,
            &plain[1..],
            false,
        );
        assert_eq!(hex::encode(&frame), case["frame"].as_str().unwrap());
        let parsed = s0::parse(&frame).unwrap();
        let (cmd, _) =
            s0::decapsulate(&keys, &parsed, &b(&case["receiver_nonce"]), src, dst).unwrap();
        assert_eq!(cmd, plain[1..]);
    }
}

#[test]
fn s2_network_keys_match_zwave_js() {
    for case in fixture()["network_keys"].as_array().unwrap() {
        let k = ckdf::network_keys(&b(&case["pnk"]));
        assert_eq!(hex::encode(&k.ccm), case["ccm"].as_str().unwrap());
        assert_eq!(
            hex::encode(&k.personalization),
            case["personalization"].as_str().unwrap()
        );
        assert_eq!(hex::encode(&k.mpan), case["mpan"].as_str().unwrap());
    }
}

#[test]
fn x25519_and_temporary_keys_match_zwave_js() {
    use x25519_dalek::{PublicKey, StaticSecret};
    for case in fixture()["inclusion"].as_array().unwrap() {
        let a = StaticSecret::from(b::<32>(&case["private_a"]));
        let bb = StaticSecret::from(b::<32>(&case["private_b"]));
        let (pa, pb) = (PublicKey::from(&a), PublicKey::from(&bb));
        assert_eq!(
            hex::encode(pa.as_bytes()),
            case["public_a"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(pb.as_bytes()),
            case["public_b"].as_str().unwrap()
        );
        let shared = a.diffie_hellman(&pb);
        assert_eq!(
            hex::encode(shared.as_bytes()),
            case["shared"].as_str().unwrap()
        );
        assert_eq!(bb.diffie_hellman(&pa).as_bytes(), shared.as_bytes());
        let prk = ckdf::temp_prk(shared.as_bytes(), pa.as_bytes(), pb.as_bytes());
        assert_eq!(hex::encode(&prk), case["prk"].as_str().unwrap());
        let t = ckdf::temp_keys(&prk);
        assert_eq!(hex::encode(&t.ccm), case["temp_ccm"].as_str().unwrap());
        assert_eq!(
            hex::encode(&t.personalization),
            case["temp_personalization"].as_str().unwrap()
        );
    }
}

#[test]
fn span_nonces_match_zwave_js() {
    for case in fixture()["span"].as_array().unwrap() {
        let prk = ckdf::nonce_prk(&b(&case["sender_ei"]), &b(&case["receiver_ei"]));
        assert_eq!(hex::encode(&prk), case["nonce_prk"].as_str().unwrap());
        let mei = ckdf::mei(&prk);
        assert_eq!(hex::encode(&mei), case["mei"].as_str().unwrap());
        let keys = ckdf::network_keys(&b(&case["pnk"]));
        let mut d = CtrDrbg::new(&mei, &keys.personalization);
        for n in case["nonces"].as_array().unwrap() {
            assert_eq!(hex::encode(&d.next_nonce()), n.as_str().unwrap());
        }
    }
}

#[test]
fn ccm_with_s2_sizes_matches_zwave_js() {
    for case in fixture()["ccm"].as_array().unwrap() {
        let sealed = primitives::ccm_encrypt(
            &b(&case["key"]),
            &b(&case["nonce"]),
            &x(&case["aad"]),
            &x(&case["plaintext"]),
        );
        assert_eq!(hex::encode(&sealed), case["sealed"].as_str().unwrap());
    }
}
