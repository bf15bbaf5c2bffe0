//! Headless Chromium driven over the DevTools protocol, for the dashboard tests: open a page,
//! evaluate JavaScript in it, take a screenshot.
//!
//! Needs Chromium: `FERRY_CHROMIUM`, else `chromium` on the PATH (Debian: `apt-get install
//! chromium`; `scripts/test.sh` installs it). Without it the tests fail and say so, rather
//! than skip.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The Chromium binary to run (fails the test when there is none).
pub fn chromium() -> String {
    let candidate = std::env::var("FERRY_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&candidate)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "the dashboard test needs Chromium: install it (`apt-get install chromium`, as \
         scripts/test.sh does) or set FERRY_CHROMIUM to its path"
    );
    candidate
}

/// Headless Chromium showing one page, killed on drop, with a DevTools connection to it.
pub struct Browser {
    child: std::process::Child,
    socket: Socket,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium on `url` (a window of 1280 x 900) with its profile in `profile`.
    pub async fn open(url: &str, profile: &std::path::Path) -> Browser {
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
        let stderr = child.stderr.take().unwrap();
        let port = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stderr).lines();
            for line in lines.by_ref() {
                let line = line.unwrap();
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    let port = rest.split('/').next().unwrap().parse::<u16>().unwrap();
                    // Keep draining stderr so Chromium never blocks on a full pipe.
                    std::thread::spawn(move || lines.for_each(drop));
                    return port;
                }
            }
            panic!("Chromium did not print its DevTools address");
        });
        let port = tokio::time::timeout(Duration::from_secs(30), port)
            .await
            .unwrap()
            .unwrap();
        let targets: Vec<Value> = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = targets
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap()
            .to_owned();
        let (socket, _) = tokio_tungstenite::connect_async(page).await.unwrap();
        Browser {
            child,
            socket,
            next_id: 1,
        }
    }

    /// Calls the DevTools method `method` and returns its `result`.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let call = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::Text(call.to_string().into()))
            .await
            .unwrap();
        loop {
            let Message::Text(text) = self.socket.next().await.unwrap().unwrap() else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The value of the JavaScript `expression` in the page.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until `accept` takes its value (30 s at most); returns it.
    pub async fn eval_until(&mut self, expression: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.eval(expression).await;
            if accept(&value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page never gave an accepted answer to {expression}: last {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub async fn screenshot(&mut self, path: &std::path::Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}
