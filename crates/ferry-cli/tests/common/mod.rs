//! What the `ferry` CLI's integration tests share: running `ferry` and other programs with
//! deadlines (never a bare sleep), reading a child's output line by line as it comes,
//! `ferry serve` on a fresh store and its address, blocking HTTP calls, polling a job until
//! it completed, and the planning database the board-update job reads.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a part.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The monday.com board-update job file, as its users wrote it (the example's copy).
pub const BOARD_UPDATE_TOML: &str =
    include_str!("../../../../examples/board-update/board_update.toml");

/// How long any one step may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A command for a client: no proxy may reroute its loopback requests.
pub fn client(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "*").env("no_proxy", "*");
    cmd
}

/// A child's stream read in the background (so the child never blocks on a full pipe): all
/// of it so far, and each line as it comes.
pub struct Collected {
    all: Arc<Mutex<String>>,
    lines: Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

pub fn collect(stream: impl Read + Send + 'static) -> Collected {
    let all = Arc::new(Mutex::new(String::new()));
    let (tx, lines) = mpsc::channel();
    let sink = Arc::clone(&all);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    Collected { all, lines, reader }
}

impl Collected {
    /// The next line, waiting up to [`DEADLINE`].
    pub fn next_line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}; output so far:\n{}", self.text()))
    }

    pub fn text(&self) -> String {
        self.all.lock().unwrap().clone()
    }

    /// Everything, once the stream has closed.
    pub fn finish(self) -> Vec<u8> {
        let Collected { all, reader, .. } = self;
        let _ = reader.join();
        let text = all.lock().unwrap().clone();
        text.into_bytes()
    }
}

/// A child process killed when dropped (a failing test leaves nothing running).
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit, for up to `deadline`.
pub fn wait(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `cmd` to its end, killing it and failing the test after `deadline`.
pub fn run(mut cmd: Command, deadline: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = Killed(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}")),
    );
    let stdout = collect(child.0.stdout.take().unwrap());
    let stderr = collect(child.0.stderr.take().unwrap());
    let Some(status) = wait(&mut child.0, deadline) else {
        panic!(
            "{shown} ran past {deadline:?}\nstdout:\n{}\nstderr:\n{}",
            stdout.text(),
            stderr.text()
        );
    };
    Output {
        status,
        stdout: stdout.finish(),
        stderr: stderr.finish(),
    }
}

/// Runs `cmd`, which must succeed within `deadline`, and returns its stdout.
pub fn run_ok(cmd: Command, deadline: Duration) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd, deadline);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A running `ferry` process (`serve` or `worker`) on `store`, killed when dropped, and its
/// stderr.
pub fn spawn_ferry(args: &[&str], store: &Path) -> (Killed, Collected) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .arg("--store")
        .arg(store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect(child.stderr.take().unwrap());
    (Killed(child), stderr)
}

/// A scratch directory under the system's temporary one, emptied first and removed when
/// dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `ferry-<name>-<pid>`, fresh.
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ferry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ferry serve` on `127.0.0.1:0`, its address (read from the line it prints when it
/// listens, so no test guesses how long start-up takes) and that line.
pub struct Server {
    // Declared first: dropped (killed) before the directory goes.
    ferry: (Killed, Collected),
    /// `host:port`.
    pub addr: String,
    /// The line `ferry serve` printed on listening.
    pub banner: String,
    /// The store it serves.
    pub store: PathBuf,
    _dir: Option<TempDir>,
}

impl Server {
    /// `ferry serve` with `extra` arguments on a fresh SQLite store in its own directory.
    pub fn start(name: &str, extra: &[&str]) -> Server {
        let dir = TempDir::new(&format!("serve-{name}"));
        let mut server = Server::on(&dir.0.join("x.db"), extra);
        server._dir = Some(dir);
        server
    }

    /// `ferry serve` with `extra` arguments on an existing `store`.
    pub fn on(store: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let ferry = spawn_ferry(&args, store);
        let (addr, banner) = loop {
            let line = ferry.1.next_line("`ferry serve` to listen");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break (rest.split_whitespace().next().unwrap().to_owned(), line);
            }
        };
        Server {
            ferry,
            addr,
            banner,
            store: store.to_owned(),
            _dir: None,
        }
    }

    /// `http://host:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Submits `texts` to the KubeSentiment-compatible batch API; the job id.
    pub fn submit(&self, texts: &[&str]) -> String {
        let body = serde_json::json!({ "texts": texts });
        let job: Value = http::post(&self.url("/api/v1/batch/predict"), &body);
        job["job_id"].as_str().unwrap().to_owned()
    }

    /// Polls the job's status until it is `completed`; the last status.
    pub fn until_completed(&self, id: &str) -> Value {
        let url = self.url(&format!("/api/v1/batch/status/{id}"));
        until_completed(|| {
            let (code, _, body) = http::get(&url, &[]);
            assert_eq!(code, 200, "{url}: {body}");
            serde_json::from_str(&body).unwrap()
        })
    }

    /// Everything the server printed on stderr so far.
    pub fn log(&self) -> String {
        self.ferry.1.text()
    }
}

/// Calls `status` (a job's status object, however fetched) until its `status` is
/// `completed`, at most [`DEADLINE`]; the last one. A `failed` job, or the deadline, fails
/// the test with the last status seen.
pub fn until_completed(mut status: impl FnMut() -> Value) -> Value {
    let end = Instant::now() + DEADLINE;
    loop {
        let now = status();
        match now["status"].as_str() {
            Some("completed") => return now,
            Some("pending" | "processing") => {}
            _ => panic!("the job ended otherwise: {now}"),
        }
        assert!(
            Instant::now() < end,
            "the job did not complete within {DEADLINE:?}: {now}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The planning database the monday.com board-update job reads: `rows` of
/// (`monday_item_id`, `fob_date`, `country_of_origin`), each needing an update. Written by
/// the example's own data generator (`examples/board-update/make_data.py --rows-json -`),
/// so the CLI's tests hold no SQL and need no database crate.
pub fn planning_db(path: &Path, rows: &[(i64, String, String)]) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/board-update/make_data.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(path)
        .args(["--rows-json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 is needed to write the planning database: {e}"));
    let rows = serde_json::to_vec(rows).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &rows).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "writing {} failed", path.display());
}

/// Blocking HTTP calls for the harness's own requests (a runtime per call keeps the tests
/// plain `#[test]`s: the clients under test are processes).
pub mod http {
    use serde_json::Value;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    pub fn post(url: &str, body: &Value) -> Value {
        runtime().block_on(async {
            let response = reqwest::Client::new()
                .post(url)
                .json(body)
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{url}: {}",
                response.status()
            );
            response.json().await.unwrap()
        })
    }

    /// Status, content type and body of a GET with `headers`.
    pub fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        runtime().block_on(async {
            let mut request = reqwest::Client::new().get(url);
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let kind = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (status, kind, response.text().await.unwrap())
        })
    }
}
