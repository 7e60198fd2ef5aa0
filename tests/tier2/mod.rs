//! What the second-tier tests need from outside the Rust toolchain, found or failed with what
//! to install. `tools/tier2` installs the pinned npm and PyPI packages into the target
//! directory and checks the system tools; these helpers never download anything, and a tool
//! that is missing fails the test (it is never skipped).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target directory this test was built in (honours CARGO_TARGET_DIR): the zwlock
/// binary under test is `<target>/<profile>/zwlock`.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_zwlock"))
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/")
        .to_path_buf()
}

/// Fail with what is missing and how to get it.
pub fn missing(what: &str, how: &str) -> ! {
    panic!("{what} is missing: {how}\n(`tools/tier2 --setup-only` checks and installs what the second tier needs)")
}

/// The output of `cmd`, or a failure naming `what` and `how` when it cannot run.
pub fn tool_output(cmd: &mut Command, what: &str, how: &str) -> std::process::Output {
    match cmd.output() {
        Ok(o) => o,
        Err(e) => missing(what, &format!("{how} ({e})")),
    }
}

/// The first number of a version line ("v20.20.2" -> 20).
pub fn major(version: &str) -> Option<u32> {
    version
        .trim()
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Node.js 20 or newer (the pinned zwave-js refuses older ones).
pub fn check_node() {
    let out = tool_output(
        Command::new("node").arg("--version"),
        "Node.js >= 20",
        "install Node.js 20 or newer (Debian 12's nodejs is 18: use NodeSource's packages or nvm)",
    );
    let v = String::from_utf8_lossy(&out.stdout).to_string();
    match major(&v) {
        Some(m) if m >= 20 => {}
        _ => missing(
            "Node.js >= 20",
            &format!("found node {} (zwave-js 15 needs 20 or newer)", v.trim()),
        ),
    }
}

/// Where tools/tier2 installed tests/interop/package-lock.json's packages.
pub fn node_modules() -> PathBuf {
    let dir = target_dir().join("interop/node_modules");
    let pin = std::fs::read_to_string(root().join("tests/interop/package.json")).unwrap();
    let installed = dir.join("zwave-js/package.json");
    let Ok(text) = std::fs::read_to_string(&installed) else {
        missing(
            "the zwave-js packages (tests/interop/package-lock.json)",
            &format!(
                "{} does not exist; tools/tier2 runs npm ci there",
                installed.display()
            ),
        )
    };
    let version = |t: &str, key: &str| -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(t).ok()?;
        let x = if key.is_empty() {
            v["version"].as_str()?.to_string()
        } else {
            v["dependencies"][key].as_str()?.to_string()
        };
        Some(x)
    };
    let want = version(&pin, "zwave-js");
    let have = version(&text, "");
    if want != have {
        missing(
            "the pinned zwave-js",
            &format!(
                "target/interop has zwave-js {have:?}, tests/interop/package.json pins {want:?}; run tools/tier2 --setup-only"
            ),
        );
    }
    dir
}

/// `node` in tests/interop, resolving packages from the target directory's install.
pub fn node() -> Command {
    check_node();
    let modules = node_modules();
    let mut c = Command::new("node");
    c.current_dir(root().join("tests/interop"))
        .env("NODE_PATH", modules);
    c
}

/// The Seam SDK's virtualenv python (tools/tier2 creates it with tests/sdk/requirements.txt).
pub fn seam_python() -> PathBuf {
    let venv = target_dir().join("seam-sdk-venv");
    let python = venv.join("bin/python");
    let requirements = std::fs::read(root().join("tests/sdk/requirements.txt")).unwrap();
    if !python.exists() {
        missing(
            "the Seam SDK virtualenv",
            &format!("{} does not exist; tools/tier2 creates it (needs python3 >= 3.9 with venv: apt-get install python3-venv)", venv.display()),
        );
    }
    if std::fs::read(venv.join("requirements.txt")).ok() != Some(requirements) {
        missing(
            "the pinned Seam SDK",
            &format!(
                "{} was made from another tests/sdk/requirements.txt; run tools/tier2 --setup-only",
                venv.display()
            ),
        );
    }
    python
}

/// `node` resolving packages from Seam's JavaScript SDK, which tools/tier2 installs from
/// tests/sdk/package-lock.json into <target>/seam-js-sdk.
pub fn seam_node() -> Command {
    check_node();
    let dir = target_dir().join("seam-js-sdk/node_modules");
    let pin: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/sdk/package.json")).unwrap(),
    )
    .unwrap();
    let want = pin["dependencies"]["@seamapi/http"]
        .as_str()
        .map(str::to_string);
    let installed = dir.join("@seamapi/http/package.json");
    let Ok(text) = std::fs::read_to_string(&installed) else {
        missing(
            "Seam's JavaScript SDK (tests/sdk/package-lock.json)",
            &format!(
                "{} does not exist; tools/tier2 runs npm ci there",
                installed.display()
            ),
        )
    };
    let have = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_string));
    if want != have {
        missing(
            "the pinned @seamapi/http",
            &format!(
                "target/seam-js-sdk has @seamapi/http {have:?}, tests/sdk/package.json pins {want:?}; run tools/tier2 --setup-only"
            ),
        );
    }
    let mut c = Command::new("node");
    c.env("NODE_PATH", dir);
    c
}

/// schemathesis's `st`, from the virtualenv tools/tier2 creates with
/// tests/openapi/requirements.txt.
pub fn schemathesis() -> PathBuf {
    let venv = target_dir().join("schemathesis-venv");
    let st = venv.join("bin/st");
    let requirements = std::fs::read(root().join("tests/openapi/requirements.txt")).unwrap();
    if !st.exists() {
        missing(
            "the schemathesis virtualenv",
            &format!(
                "{} does not exist; tools/tier2 creates it (needs python3 >= 3.9 with venv)",
                venv.display()
            ),
        );
    }
    if std::fs::read(venv.join("requirements.txt")).ok() != Some(requirements) {
        missing(
            "the pinned schemathesis",
            &format!(
                "{} was made from another tests/openapi/requirements.txt; run tools/tier2 --setup-only",
                venv.display()
            ),
        );
    }
    st
}
