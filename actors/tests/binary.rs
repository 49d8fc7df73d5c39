//! The `tollgate` binary's own surface: help and version. (Its being an integration test
//! also makes cargo build the binary that the end-to-end tests in `tests/` run.)

use std::process::Command;

#[test]
fn help_lists_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("--help")
        .output()
        .expect("run tollgate");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "serve",
        "check-config",
        "user",
        "token",
        "client",
        "radius-test",
    ] {
        assert!(text.contains(cmd), "`{cmd}` missing from --help:\n{text}");
    }
}

#[test]
fn an_unknown_command_fails_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("frobnicate")
        .output()
        .expect("run tollgate");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}
