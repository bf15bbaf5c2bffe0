//! `ferry worker` processes for a run with `--workers W`: the shipped binary, found beside
//! this one (both are built into the same target directory) or at `$FERRY_BIN`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::target::Target;

/// `ferry worker` processes, killed on drop; `exited` names each one whose stderr closed
/// (it ended).
pub(crate) struct Processes {
    children: Vec<Child>,
    pub(crate) exited: tokio::sync::mpsc::UnboundedReceiver<usize>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `n` `ferry worker` processes on `target` and waits until each has opened the store.
pub(crate) fn spawn_workers(target: &Target, n: usize) -> anyhow::Result<Processes> {
    let exe = ferry_binary()?;
    let (exit_tx, exited) = tokio::sync::mpsc::unbounded_channel();
    let mut processes = Processes {
        children: Vec::new(),
        exited,
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for i in 0..n {
        let mut child = Command::new(&exe)
            .arg("worker")
            .args(target.worker_args())
            .args(["--id", &format!("bench-worker-{i}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{} worker`", exe.display()))?;
        let stderr = child.stderr.take();
        processes.children.push(child);
        let ready = ready_tx.clone();
        let exit = exit_tx.clone();
        std::thread::spawn(move || {
            if let Some(stderr) = stderr {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("claiming from") {
                        let _ = ready.send(());
                    } else {
                        eprintln!("[worker {i}] {line}");
                    }
                }
            }
            let _ = exit.send(i);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..n {
        let left = deadline.saturating_duration_since(Instant::now());
        ready_rx
            .recv_timeout(left)
            .context("a ferry worker process did not open the store within 30 s")?;
    }
    Ok(processes)
}

/// The `ferry` binary: `$FERRY_BIN`, else `ferry` in this executable's directory or the one
/// above it (a test binary lives in `target/<profile>/deps/`).
pub(crate) fn ferry_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FERRY_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let name = format!("ferry{}", std::env::consts::EXE_SUFFIX);
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no `ferry` binary beside {}: build it (`cargo build -p ferry-cli`, with \
                 --release for a release bench) or set FERRY_BIN",
                exe.display()
            )
        })
}
