//! A headless Chromium for browser tests, driven over W3C WebDriver: the
//! test starts `chromedriver` on a free loopback port, opens one session
//! with a fresh profile, and speaks the few WebDriver commands it needs as
//! JSON over HTTP (navigate, find, click, type, run a script, screenshot).
//!
//! Binaries: `PM_CHROMEDRIVER` / `PM_CHROMIUM`, else `chromedriver` and
//! `chromium` on the `PATH` (Debian's `chromium-driver` and `chromium`).
//! When one is missing the test fails under `PM_REQUIRE_SERVICES=1` and is
//! skipped, loudly, otherwise. Nothing the browser does leaves loopback:
//! every other destination goes to a proxy address where nothing listens.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long chromedriver may take to answer, and the page to reach a state.
pub const WAIT: Duration = Duration::from_secs(30);

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's flags: headless, no sandbox (tests run as root in CI), and
/// none of the background traffic a fresh profile would start.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    // Loopback always bypasses a proxy; everything else goes nowhere.
    "--proxy-server=http://127.0.0.1:9",
    "--window-size=1400,1200",
];

/// One browser session. Dropping it ends the session and the driver.
pub struct Browser {
    driver: Option<Child>,
    session: String,
    /// `http://127.0.0.1:PORT/session/ID`
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// The binary named by `variable` (if it exists), else the first of `names`
/// on the `PATH`.
fn find_binary(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|dir| names.iter().map(move |name| dir.join(name))).find(|p| p.is_file())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. `None` (skip) when one
    /// is not installed and services are not required; panics when they are.
    pub async fn start() -> Option<Browser> {
        let driver_path = find_binary("PM_CHROMEDRIVER", &["chromedriver"]);
        let chromium_path = find_binary("PM_CHROMIUM", &["chromium", "chromium-browser"]);
        let (Some(driver_path), Some(chromium_path)) = (driver_path.clone(), chromium_path.clone()) else {
            let missing: Vec<&str> = [(driver_path.is_none(), "chromedriver"), (chromium_path.is_none(), "chromium")]
                .into_iter()
                .filter_map(|(missing, name)| missing.then_some(name))
                .collect();
            let what = format!(
                "{} not installed (Debian: chromium, chromium-driver; scripts/browser.sh)",
                missing.join(" and ")
            );
            if pm_backends::testsuite::services_required() {
                panic!("{what} and PM_REQUIRE_SERVICES=1");
            }
            eprintln!("SKIPPED: {what}; set PM_REQUIRE_SERVICES=1 to make this a failure");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own process group, so that the browser it starts can be
            // ended with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{} cannot be started: {e}", driver_path.display()));
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let mut browser = Browser {
            driver: Some(driver),
            session: String::new(),
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder().timeout(WAIT * 2).build().expect("an HTTP client"),
            _profile: profile,
        };
        browser.wait_for_driver().await;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| flag.to_string()).collect();
        args.push(format!("--user-data-dir={}", browser._profile.path().display()));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium_path, "args": args },
        }}});
        let created = browser.command(reqwest::Method::POST, "/session", capabilities).await;
        browser.session = created["sessionId"].as_str().expect("a new session has an id").to_owned();
        browser.base = format!("{}/session/{}", browser.base, browser.session);
        Some(browser)
    }

    async fn wait_for_driver(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = self.http.get(format!("{}/status", self.base)).send().await;
            if let Ok(response) = status {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == json!(true) {
                    return;
                }
            }
            if let Some(exit) = self.driver.as_mut().and_then(|d| d.try_wait().ok().flatten()) {
                panic!("chromedriver exited at start: {exit}");
            }
            assert!(Instant::now() < deadline, "chromedriver was not ready within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One WebDriver command; returns its `value`, panicking on an error.
    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("WebDriver {method} {path} failed: {e}"));
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_else(|e| panic!("WebDriver {path} sent no JSON: {e}"));
        assert!(status.is_success(), "WebDriver {method} {path} answered {status}: {}", answer["value"]);
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url })).await;
    }

    /// The element matching a CSS selector; panics when there is none.
    async fn element(&self, css: &str) -> String {
        let found =
            self.command(reqwest::Method::POST, "/element", json!({ "using": "css selector", "value": css })).await;
        found[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("no element reference for {css}: {found}")).to_owned()
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/click"), json!({})).await;
    }

    /// Clears an input and types `text` into it, key by key.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/clear"), json!({})).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/value"), json!({ "text": text })).await;
    }

    /// Runs a script (a function body; `arguments` holds `args`) and returns
    /// what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// Runs a script that ends by calling `arguments[arguments.length - 1]`.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.command(reqwest::Method::POST, "/execute/async", json!({ "script": script, "args": args })).await
    }

    /// Polls a JavaScript expression until it is neither null nor false nor
    /// empty; returns its value. Panics after [`WAIT`] naming `what`, with
    /// what the page shows as an error.
    pub async fn wait_until(&self, what: &str, expression: &str) -> Value {
        let script = format!("return ({expression});");
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.execute(&script, json!([])).await;
            if !matches!(&value, Value::Null | Value::Bool(false)) && value != json!("") {
                return value;
            }
            if Instant::now() >= deadline {
                let error =
                    self.execute("return document.getElementById('error')?.textContent ?? null;", json!([])).await;
                panic!("{what}: not seen within {WAIT:?} (last value {value}, page error {error})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let png = self.command(reqwest::Method::GET, "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot is base64 text"))
            .expect("a screenshot is valid base64")
    }

    /// Ends the session (the browser exits) and the driver.
    pub async fn quit(mut self) {
        self.command(reqwest::Method::DELETE, "", Value::Null).await;
        self.session.clear();
        self.stop_driver();
    }

    fn stop_driver(&mut self) {
        if let Some(mut driver) = self.driver.take() {
            // The driver's group: chromedriver and any browser left behind.
            let group = nix::unistd::Pid::from_raw(driver.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = driver.wait();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop_driver();
    }
}
