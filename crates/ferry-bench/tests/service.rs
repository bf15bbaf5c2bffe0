//! `ferry-bench service` as a user runs it, small: two jobs of five items through the
//! in-process worker on a fresh SQLite store, with the plain-SQL baseline, and the figures
//! printed in the documented shape.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::process::Command;

#[test]
fn service_bench_prints_ferry_and_baseline_figures() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry-bench"))
        .args(["service", "--store", "sqlite", "--handler", "echo"])
        .args(["--jobs", "2", "--items", "5", "--clients", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0]
            .starts_with("store sqlite (a new file), handler echo, 2 jobs x 5 items, 2 clients"),
        "{stdout}"
    );
    assert!(lines[1].starts_with("  ferry:    10 items in "), "{stdout}");
    assert!(lines[1].contains("submit-to-done p50"), "{stdout}");
    assert!(
        lines[2].starts_with("  baseline: the same rows by plain SQL on the same tables"),
        "{stdout}"
    );
    assert!(lines[3].starts_with("  ferry / baseline: "), "{stdout}");
}

#[test]
fn bad_sizes_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry-bench"))
        .args(["service", "--store", "sqlite", "--jobs", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must be at least 1"), "{stderr}");
}
