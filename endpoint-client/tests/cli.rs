//! The binary's command line (this test also makes `cargo test --workspace` build the binary
//! that the end-to-end tests in `tests/` start).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_endpoint-client");

#[test]
fn run_without_a_credential_tells_to_enroll_and_bad_config_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .arg("run")
        .env("BANGBAN_ENDPOINT_CREDENTIAL_FILE", dir.path().join("missing"))
        .env("BANGBAN_ENDPOINT_HEADLESS", "1")
        .env("BANGBAN_ENDPOINT_KIOSK_LISTEN", "127.0.0.1:0")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("credential file"), "{err}");

    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "server_url = \"ftp://example\"\n").expect("write");
    let out = Command::new(BIN).args(["--config"]).arg(&cfg).arg("run").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server_url"));
}
