//! The `ferry` binary, run as a user would.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::process::Command;

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

#[test]
fn demo_isolates_poison_items_and_exits_3() {
    let dir = std::env::temp_dir().join(format!("ferry-cli-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dead = dir.join("dead.jsonl");
    let out = ferry()
        .args([
            "demo",
            "--items",
            "3000",
            "--poison-every",
            "997",
            "--base-ms",
            "1",
            "--per-item-us",
            "10",
        ])
        .arg("--dead-letters")
        .arg(&dead)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Keys 0, 997, 1994, 2991 are poison.
    assert!(
        stdout.contains("3000 accepted, 2996 succeeded, 4 dead-lettered, 0 cancelled"),
        "{stdout}"
    );
    assert!(stdout.contains("2996 items applied"), "{stdout}");
    let lines = std::fs::read_to_string(&dead).unwrap();
    let mut keys: Vec<u64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["payload"]
                .as_u64()
                .unwrap()
        })
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, vec![0, 997, 1994, 2991]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn demo_without_poison_exits_0() {
    let dir = std::env::temp_dir().join(format!("ferry-cli-ok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = ferry()
        .args([
            "demo",
            "--items",
            "2000",
            "--base-ms",
            "1",
            "--per-item-us",
            "10",
        ])
        .arg("--dead-letters")
        .arg(dir.join("dead.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_preset_is_a_clear_error() {
    let out = ferry()
        .args(["demo", "--preset", "turbo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown preset `turbo`"), "{stderr}");
}

#[test]
fn bad_flag_is_a_usage_error_and_help_explains() {
    let out = ferry().args(["demo", "--items", "many"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let help = ferry().args(["demo", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--poison-every"), "{text}");
    assert!(text.contains("simulated API"), "{text}");
}
