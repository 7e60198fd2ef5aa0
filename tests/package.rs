//! The Debian package: `cargo deb` builds it (from the binary the tests already built), and it
//! holds the binary, the unit, the default config as a conffile, and the scripts that create
//! the system user and enable the service. Second tier: needs cargo-deb (tools/tier2 installs
//! the version CI pins) and dpkg-deb.

mod tier2;

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deb_holds_binary_unit_conffile_and_user_setup() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let version = tier2::tool_output(
        Command::new("cargo").args(["deb", "--version"]),
        "cargo",
        "the Rust toolchain",
    );
    if !version.status.success() {
        tier2::missing(
            "cargo-deb",
            "cargo install cargo-deb --version 3.8.0 --locked",
        );
    }
    // The debug binary the test harness built: the package's layout is what is checked here,
    // not the release build (`cargo deb` without flags makes the real one).
    assert!(Path::new(env!("CARGO_BIN_EXE_zwlock")).exists());
    let out = tempfile::tempdir().unwrap();
    run(Command::new("cargo")
        .current_dir(root)
        .args([
            "deb",
            "--profile",
            "dev",
            "--no-build",
            "--no-strip",
            "--fast",
            "-o",
        ])
        .arg(out.path()));
    let deb = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");

    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for (path, mode) in [
        ("./usr/bin/zwlock", "-rwxr-xr-x"),
        ("./etc/zwlock/zwlock.toml", "-rw-r-----"),
        ("./usr/lib/systemd/system/zwlock.service", "-rw-r--r--"),
    ] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(path))
            .unwrap_or_else(|| panic!("{path} missing:\n{listing}"));
        assert!(line.starts_with(mode), "{line}");
    }
    let control = run(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .arg("Depends"));
    assert!(control.contains("adduser"), "{control}");
    let info = |file: &str| run(Command::new("dpkg-deb").arg("-I").arg(&deb).arg(file));
    assert_eq!(info("conffiles").trim(), "/etc/zwlock/zwlock.toml");
    let postinst = info("postinst");
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(postinst.contains("adduser zwlock dialout"), "{postinst}");
    assert!(
        postinst.contains("deb-systemd-helper enable zwlock.service"),
        "{postinst}"
    );

    // What is inside works: the packaged config passes the packaged binary's check, and the
    // unit is the one in the tree.
    let tree = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(tree.path()));
    let checked = run(Command::new(tree.path().join("usr/bin/zwlock"))
        .args(["config", "check"])
        .arg(tree.path().join("etc/zwlock/zwlock.toml")));
    assert!(checked.contains(": ok"), "{checked}");
    assert_eq!(
        std::fs::read(tree.path().join("usr/lib/systemd/system/zwlock.service")).unwrap(),
        std::fs::read(root.join("systemd/zwlock.service")).unwrap()
    );
}
