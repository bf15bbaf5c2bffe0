//! What the process-level tests share: the `ferry` binary under test and a child process
//! guard.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::OnceLock;

/// The `ferry` binary under test: `$FERRY_BIN`, else `ferry` built (or found up to date) by
/// cargo into the target directory and profile this test was built with
/// (`target/<profile>/deps/<test>-*` -> `target/<profile>/ferry`), so a stale binary is never
/// the one tested. Looked up once per test binary.
pub(crate) fn ferry_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(find_ferry_binary).clone()
}

fn find_ferry_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FERRY_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", "ferry-cli", "--bin", "ferry"]);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let target_dir = profile_dir.parent().unwrap();
    let status = build.env("CARGO_TARGET_DIR", target_dir).status().unwrap();
    assert!(status.success(), "building the ferry binary failed");
    profile_dir.join(format!("ferry{}", std::env::consts::EXE_SUFFIX))
}

/// A child process, SIGKILLed on drop if still running.
pub(crate) struct Process(pub(crate) Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
