//! The two test tiers stay apart: every test target that needs a tool from outside the Rust
//! toolchain is declared with `required-features = ["interop"]` in Cargo.toml (so plain
//! `cargo test` does not compile it) and is run by tools/tier2; no other test starts such a
//! tool.

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Test targets Cargo.toml puts behind the interop feature.
fn gated() -> BTreeSet<String> {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    manifest["test"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t.get("required-features")
                .and_then(|f| f.as_array())
                .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("interop")))
        })
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// The tests tools/tier2 runs (its TESTS=(…) line).
fn run_by_tier2() -> BTreeSet<String> {
    let script = std::fs::read_to_string(root().join("tools/tier2")).unwrap();
    let line = script
        .lines()
        .find_map(|l| l.strip_prefix("TESTS=("))
        .expect("tools/tier2 has a TESTS=(...) line");
    line.trim_end_matches(')')
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn second_tier_tests_are_gated_and_run_by_tools_tier2() {
    let gated = gated();
    assert!(
        gated.contains("interop") && gated.contains("seam_sdk"),
        "{gated:?}"
    );
    assert_eq!(gated, run_by_tier2(), "Cargo.toml and tools/tier2 disagree");
    let outside = [
        "Command::new(\"node\"",
        "Command::new(\"npm\"",
        "Command::new(\"python3\"",
        "Command::new(\"systemd-analyze\"",
        "Command::new(\"dpkg-deb\"",
        "\"deb\"",
        "\"qemu-",
        "mod tier2;",
    ];
    for entry in std::fs::read_dir(root().join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        if name == "tiers" {
            continue;
        }
        if gated.contains(&name) {
            assert!(
                text.contains("mod tier2;"),
                "{name}: second tier without tests/tier2"
            );
            continue;
        }
        for needle in outside {
            assert!(
                !text.contains(needle),
                "tests/{name}.rs is in the first tier but has {needle}: gate it (Cargo.toml [[test]] required-features = [\"interop\"], tools/tier2 TESTS)"
            );
        }
    }
    for name in &gated {
        assert!(root().join(format!("tests/{name}.rs")).exists(), "{name}");
    }
}
