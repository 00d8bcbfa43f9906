//! End-to-end test through the real webview: tauri-driver + WebKitWebDriver (under Xvfb when there
//! is no display) drive the built app on a temp library with the tiny fixture CLIP model, which the
//! app fetches by hub id on first run from a local stand-in for the Hugging Face hub (the download's
//! progress bar is checked). It adds the shape images folder, waits for indexing, searches "a photo of a red circle", opens a result, uses
//! "find similar", and drops a file through the same Rust path as the window's drop event. Screenshots
//! of the main views go to `target/e2e-screenshots/`.
//!
//! Skips (with a message) when tauri-driver, WebKitWebDriver or Xvfb are missing, unless `CI` is set:
//! then it fails. `scripts/e2e.sh` installs what is missing and runs it.

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../../crates/shoebox-core/tests/support/fake_hub.rs"]
mod fake_hub;

/// The hub id the app is given; the local hub serves the fixture CLIP model under it.
const HUB_CLIP: &str = "shoebox-test/clip-dev";

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const QUERY: &str = "a photo of a red circle";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .canonicalize()
        .unwrap()
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("e2e-screenshots")
}

fn label_of(path: &str) -> (String, String) {
    let name = Path::new(path).file_name().unwrap().to_str().unwrap();
    let text = std::fs::read_to_string(fixtures().join("data/dev/labels.jsonl")).unwrap();
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        if v["file"] == name {
            return (
                v["color"].as_str().unwrap().into(),
                v["shape"].as_str().unwrap().into(),
            );
        }
    }
    panic!("{name} has no label")
}

/// A program on PATH or in ~/.cargo/bin.
fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process stopped with SIGTERM (tauri-driver must get SIGTERM, not SIGKILL, or its
/// WebKitWebDriver child keeps running), then killed if it lingers.
struct Guard {
    name: &'static str,
    child: Child,
}

impl Guard {
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start Xvfb on a free display; returns (guard, ":N").
fn start_xvfb(xvfb: &Path) -> (Guard, String) {
    for n in 90..140 {
        let sock = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        if sock.exists() || Path::new(&format!("/tmp/.X{n}-lock")).exists() {
            continue;
        }
        let child = Command::new(xvfb)
            .args([
                &format!(":{n}"),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut g = Guard {
            name: "Xvfb",
            child,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if sock.exists() {
                return (g, format!(":{n}"));
            }
            if let Ok(Some(_)) = g.child.try_wait() {
                break; // lost a race for this display: try the next
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        g.stop();
    }
    panic!("could not start Xvfb on any display :90..:139");
}

/// A minimal synchronous W3C WebDriver client (all this test needs).
struct WebDriver {
    agent: ureq::Agent,
    base: String,
    session: String,
    shots: PathBuf,
}

impl WebDriver {
    fn connect(port: u16, app: &Path, shots: PathBuf) -> Result<WebDriver, String> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            // Session creation starts the app: it hangs forever when the app cannot start.
            .timeout(Duration::from_secs(90))
            .build();
        let base = format!("http://127.0.0.1:{port}");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "wry",
            "tauri:options": { "application": app },
        }}});
        let resp: Value = agent
            .post(&format!("{base}/session"))
            .send_json(caps)
            .map_err(|e| format!("creating the WebDriver session: {e}"))?
            .into_json()
            .map_err(|e| e.to_string())?;
        let session = resp["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {resp}"))?
            .to_string();
        Ok(WebDriver {
            agent,
            base,
            session,
            shots,
        })
    }

    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let req = self.agent.request(method, &url);
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let v: Value = match resp {
            Ok(r) => r.into_json().map_err(|e| e.to_string())?,
            Err(ureq::Error::Status(_, r)) => {
                let v: Value = r.into_json().map_err(|e| e.to_string())?;
                return Err(format!(
                    "{}: {}",
                    v["value"]["error"], v["value"]["message"]
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        Ok(v["value"].clone())
    }

    fn exec(&self, script: &str, args: Value) -> Value {
        self.request(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Run an async script: it calls `arguments[arguments.length - 1]` with its result.
    fn exec_async(&self, script: &str, args: Value) -> Value {
        self.request(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    fn find(&self, css: &str) -> Option<String> {
        self.request(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(str::to_string))
    }

    /// Click an element once it is shown (a view switched to a moment ago may still be hidden
    /// on a busy machine); "not interactable" is retried until the wait runs out.
    fn click(&self, css: &str) {
        let mut last = String::new();
        let clicked = self.wait(&format!("{css} to click"), 30, |d| {
            let shown = d.exec(
                "const e = document.querySelector(arguments[0]);
                 return !!e && e.getClientRects().length > 0 && !e.disabled;",
                json!([css]),
            );
            if shown != json!(true) {
                return None;
            }
            let id = d.find(css)?;
            match d.request("POST", &format!("/element/{id}/click"), Some(json!({}))) {
                Ok(_) => Some(Ok(())),
                Err(e) if e.contains("not interactable") => {
                    last = e;
                    None
                }
                Err(e) => Some(Err(e)),
            }
        });
        clicked.unwrap_or_else(|e| panic!("click {css}: {e} {last}"));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.wait(&format!("{css} to type into"), 20, |d| d.find(css));
        self.request(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Poll `f` until it gives a value; on timeout, save a screenshot and fail.
    fn wait<T>(&self, what: &str, secs: u64, mut f: impl FnMut(&Self) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if start.elapsed() > Duration::from_secs(secs) {
                self.screenshot("failure");
                let errors = self.exec(
                    "return document.querySelector('#errors').innerText + ' | ' + document.querySelector('#activity').innerText",
                    json!([]),
                );
                panic!("timed out after {secs} s waiting for {what}; the UI says: {errors}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) {
        // WebDriver screenshots can lag the DOM a little.
        std::thread::sleep(Duration::from_millis(1500));
        match self.request("GET", "/screenshot", None) {
            Ok(v) => {
                let png = decode_base64(v.as_str().unwrap_or(""));
                std::fs::create_dir_all(&self.shots).unwrap();
                let path = self.shots.join(format!("{name}.png"));
                std::fs::write(&path, png).unwrap();
                eprintln!("screenshot: {}", path.display());
            }
            Err(e) => eprintln!("screenshot {name} failed: {e}"),
        }
    }

    fn close(&self) {
        let _ = self.request("DELETE", "", None);
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    let mut map = [255u8; 256];
    for (i, c) in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        .iter()
        .enumerate()
    {
        map[*c as usize] = i as u8;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in s.as_bytes() {
        let v = map[c as usize];
        if v == 255 {
            continue;
        }
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The paths of the rendered grid cells, in result order.
fn grid_paths(d: &WebDriver) -> Vec<String> {
    let v = d.exec(
        "return [...document.querySelectorAll('#grid .cell:not(.placeholder)')]
            .sort((a, b) => a.dataset.index - b.dataset.index).map(c => c.dataset.path);",
        json!([]),
    );
    serde_json::from_value(v).unwrap()
}

fn dataset(d: &WebDriver, css: &str, key: &str) -> Option<String> {
    d.exec(
        "const n = document.querySelector(arguments[0]); return n ? (n.dataset[arguments[1]] ?? null) : null;",
        json!([css, key]),
    )
    .as_str()
    .map(str::to_string)
}

#[test]
fn e2e_app_searches_opens_finds_similar_and_takes_drops() {
    let ci = std::env::var_os("CI").is_some();
    let need_display = std::env::var_os("DISPLAY").is_none();
    let driver = find_tool("tauri-driver");
    let native = find_tool("WebKitWebDriver");
    let xvfb = find_tool("Xvfb");
    let mut missing = Vec::new();
    if driver.is_none() {
        missing.push("tauri-driver (cargo install tauri-driver --locked)");
    }
    if native.is_none() {
        missing.push("WebKitWebDriver (apt-get install webkit2gtk-driver)");
    }
    if need_display && xvfb.is_none() {
        missing.push("Xvfb (apt-get install xvfb)");
    }
    if !missing.is_empty() {
        let msg = format!(
            "end-to-end test needs {}; scripts/e2e.sh installs them",
            missing.join(", ")
        );
        if ci {
            panic!("{msg}");
        }
        eprintln!("skipping: {msg}");
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("library");
    let shots = screenshots_dir();
    let _ = std::fs::remove_dir_all(&shots);

    let (_xvfb, display) = if need_display {
        let (g, d) = start_xvfb(xvfb.as_deref().unwrap());
        (Some(g), d)
    } else {
        (None, std::env::var("DISPLAY").unwrap())
    };
    // 60 ms every 256 KiB: the fixture CLIP's weights take about 3.5 s to arrive.
    let (hub_url, _) = fake_hub::serve(
        HashMap::from([(HUB_CLIP.to_string(), fixtures().join("models/clip-dev"))]),
        Duration::from_millis(60),
    );
    let port = free_port();
    let native_port = free_port();
    let log_path = tmp.path().join("tauri-driver.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(driver.unwrap())
        .args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native_port.to_string(),
            "--native-driver",
        ])
        .arg(native.unwrap())
        .env("DISPLAY", &display)
        .env("SHOEBOX_LIBRARY", &lib)
        .env("SHOEBOX_CLIP_MODEL", HUB_CLIP)
        .env("HF_ENDPOINT", &hub_url)
        .env("HF_HOME", tmp.path().join("hf"))
        .env("SHOEBOX_CAPTION_MODEL", fixtures().join("models/blip-dev"))
        .env("SHOEBOX_DEVICE", "cpu")
        .env("SHOEBOX_TEST_DROP", "1")
        // Typed folders are confirmed in a native dialog, which WebDriver cannot click: this debug
        // build answers yes itself (and logs the question).
        .env("SHOEBOX_TEST_CONFIRM", "1")
        // The system trash (the Duplicates view) of this run only.
        .env("XDG_DATA_HOME", tmp.path().join("xdg"))
        .env_remove("HF_HUB_OFFLINE")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start tauri-driver");
    let mut driver_guard = Guard {
        name: "tauri-driver",
        child,
    };
    let dump_log = || {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    };
    // Wait for tauri-driver to listen.
    let probe = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    let t = Instant::now();
    while probe
        .get(&format!("http://127.0.0.1:{port}/status"))
        .call()
        .is_err()
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "tauri-driver did not start:\n{}",
            dump_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let app = PathBuf::from(env!("CARGO_BIN_EXE_shoebox-app"));
    let d = match WebDriver::connect(port, &app, shots.clone()) {
        Ok(d) => d,
        Err(e) => panic!("{e}\ntauri-driver log:\n{}", dump_log()),
    };
    let session_started = started.elapsed();

    // First run: the welcome view.
    d.wait("the UI", 30, |d| {
        (d.exec("return document.body.dataset.ready || null", json!([])) == "true").then_some(())
    });
    assert_eq!(dataset(&d, "body", "view").as_deref(), Some("welcome"));

    // The search model is fetched on first run, with a progress bar in the status line.
    let mut shot = false;
    let (mut seen_midway, mut bar_shown, mut last_bar) = (0, 0, Value::Null);
    d.wait("the model download to finish", 120, |d| {
        let st = |k| dataset(d, "#download", k).unwrap_or_default();
        let (done, total) = (
            st("done").parse::<u64>().unwrap_or(0),
            st("total").parse::<u64>().unwrap_or(0),
        );
        if st("file") == "model.safetensors"
            && st("finished") == "false"
            && done > 0
            && done < total
        {
            assert_eq!(st("model"), HUB_CLIP);
            let bar = d.exec(
                "const b = document.querySelector('#download-progress');
                 return [b.hidden, b.value, b.max, b.offsetWidth]",
                json!([]),
            );
            let (value, max) = (
                bar[1].as_f64().unwrap_or(0.0),
                bar[2].as_f64().unwrap_or(0.0),
            );
            if bar[0] == false && value > 0.0 && value < max && bar[3].as_f64() > Some(0.0) {
                bar_shown += 1;
            }
            last_bar = bar;
            seen_midway += 1;
            if !shot {
                d.screenshot("00-download");
                shot = true;
            }
        }
        (st("file") == "model.safetensors" && st("finished") == "true" && done == total)
            .then_some(())
    });
    assert!(
        seen_midway >= 2,
        "progress seen {seen_midway} times during the download"
    );
    let text = d.exec(
        "return document.querySelector('#download-text').textContent",
        json!([]),
    );
    assert!(
        text.as_str().is_some_and(|t| t.contains(HUB_CLIP)),
        "{text}"
    );
    assert!(tmp
        .path()
        .join("hf/hub/models--shoebox-test--clip-dev")
        .is_dir());
    d.screenshot("01-welcome");

    // Any script in the webview can call any command, but cannot widen its own reach: folders
    // nobody chose (and files nobody handed over) are refused, whether they exist or not.
    let refused = d.exec_async(
        "const done = arguments[arguments.length - 1];
         const calls = [
           ['add_folder', { path: '/' }],
           ['add_folder', { path: arguments[0] }],
           ['classify_preview', { folder: '/etc', labels: 'a, b' }],
           ['classify_preview', { folder: '/no/such/folder', labels: 'a, b' }],
           ['photo', { path: '/etc/hostname' }],
           ['photo', { path: '/no/such/file.jpg' }],
         ];
         (async () => {
           const out = [];
           for (const [cmd, args] of calls) {
             try { await window.__TAURI__.core.invoke(cmd, args); out.push(cmd + ': ok'); }
             catch (e) { out.push(cmd + ': ' + e.code); }
           }
           done(out);
         })();",
        json!([fixtures().join("data/dev").to_str().unwrap()]),
    );
    let refused: Vec<String> = serde_json::from_value(refused).unwrap();
    assert!(
        refused.iter().all(|r| r.ends_with(": not_allowed")),
        "{refused:?}"
    );

    // Add the shape images by typing the folder (the native dialog is the other way); the app asks
    // to confirm it in a native dialog (answered by this test build).
    let folder = fixtures().join("data/dev");
    d.type_into("#welcome-path", folder.to_str().unwrap());
    d.click("#welcome-form button[type=submit]");
    d.wait("200 photos indexed", 180, |d| {
        (dataset(d, "body", "indexed").as_deref() == Some("200")).then_some(())
    });
    let indexed_at = started.elapsed();

    // Before anything is typed, the search view shows the library as a timeline, newest first.
    d.wait("the timeline of 200 photos", 60, |d| {
        (dataset(d, "#grid", "mode").as_deref() == Some("timeline")
            && dataset(d, "#grid", "count").as_deref() == Some("200")
            && d.find("#grid .month-header").is_some())
        .then_some(())
    });

    // Search as you type.
    d.click("#q");
    d.type_into("#q", QUERY);
    let paths = d.wait("results for the query", 60, |d| {
        let done = dataset(d, "#grid", "query").as_deref() == Some(QUERY);
        let paths = grid_paths(d);
        (done && paths.len() >= 5).then_some(paths)
    });
    let count: usize = dataset(&d, "#grid", "count").unwrap().parse().unwrap();
    assert!(count >= 100, "{count} results");
    assert!(
        paths.len() < count,
        "the grid is virtualized: {} of {count} rendered",
        paths.len()
    );
    for p in &paths[..3] {
        assert_eq!(
            label_of(p),
            ("red".to_string(), "circle".to_string()),
            "top results: {:?}",
            &paths[..5]
        );
    }
    assert!(
        thumbs_loaded(&d) >= 6,
        "thumbnails load through the photo: protocol"
    );
    d.screenshot("02-search");

    // Open the first result.
    d.click("#grid .cell[data-index='0']");
    d.wait("the photo view", 20, |d| {
        let shown = d.exec(
            "const v = document.querySelector('#photo-view');
             return !v.hidden && document.querySelector('#pv-caption').textContent !== '…' ? v.dataset.path : null;",
            json!([]),
        );
        shown.as_str().map(str::to_string)
    });
    assert_eq!(
        dataset(&d, "#photo-view", "path").as_deref(),
        Some(paths[0].as_str())
    );
    let img_ok = d.wait("the full image", 20, |d| {
        d.exec(
            "const i = document.querySelector('#pv-img'); return i.complete ? i.naturalWidth : null;",
            json!([]),
        )
        .as_u64()
    });
    assert!(
        img_ok > 0,
        "the full image loaded through the photo: protocol"
    );
    let shown = d.exec(
        "return document.querySelector('#pv-img').getBoundingClientRect().height",
        json!([]),
    );
    assert!(
        shown.as_f64().unwrap_or(0.0) > 100.0,
        "the full image is shown: {shown}"
    );
    d.screenshot("03-photo");

    // Find similar: a search by this photo, which comes first.
    d.click("#pv-similar");
    let similar = d.wait("similar photos", 30, |d| {
        let like = dataset(d, "#grid", "like");
        let found = grid_paths(d);
        (like.as_deref() == Some(paths[0].as_str()) && !found.is_empty()).then_some(found)
    });
    assert_eq!(similar[0], paths[0]);
    assert!(
        thumbs_loaded(&d) >= 6,
        "thumbnails load through the photo: protocol"
    );
    d.screenshot("04-similar");

    // Drag-in, through the same Rust path as the window's drop event (a webview cannot fake an
    // OS drop): a red circle from outside the library.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let dropped = outside.join("dropped.jpg");
    std::fs::copy(folder.join("dev_0000.jpg"), &dropped).unwrap();
    assert_eq!(label_of("dev_0000.jpg").1, "circle");
    d.exec(
        "window.__TAURI__.core.invoke('test_drop', { paths: [arguments[0]] }); return true;",
        json!([dropped.to_str().unwrap()]),
    );
    let (caption, similar) = d.wait("the drop result", 60, |d| {
        let v = d.exec(
            "const n = document.querySelector('.drop-item[data-state=\"done\"]');
             return n ? [n.querySelector('.drop-caption').textContent,
                         [...n.querySelectorAll('.similar .cell')].map(c => c.dataset.path)] : null;",
            json!([]),
        );
        serde_json::from_value::<(String, Vec<String>)>(v).ok()
    });
    assert!(
        caption.starts_with('“') && caption.chars().count() > 2,
        "caption: {caption}"
    );
    assert_eq!(
        similar
            .first()
            .map(|p| Path::new(p).file_name().unwrap().to_owned()),
        Some("dev_0000.jpg".into()),
        "{similar:?}"
    );
    assert_eq!(
        dataset(&d, "body", "indexed").as_deref(),
        Some("200"),
        "not added"
    );
    d.screenshot("05-drop");
    d.click("#dv-close");

    // Folders and settings.
    d.click(".navbtn[data-view='folders']");
    d.wait("the folder list", 20, |d| {
        d.find("#folder-rows tr[data-path]")
    });
    d.screenshot("06-folders");
    d.click(".navbtn[data-view='settings']");
    d.wait("the settings", 20, |d| {
        let v = d.exec("return document.querySelector('#s-clip').value", json!([]));
        v.as_str()
            .filter(|s| s.ends_with("clip-dev"))
            .map(str::to_string)
    });
    // The model menu fills the model fields' suggestions; the library's coverage is listed.
    let menu = d.wait("the model menu and coverage", 20, |d| {
        let v = d.exec(
            "return [document.querySelectorAll('#ml-image-text option').length, \
             document.querySelectorAll('#s-menu tbody tr').length, \
             document.querySelector('#s-coverage').textContent]",
            json!([]),
        );
        (v[0].as_u64()? > 0 && v[1].as_u64()? > 0 && v[2].as_str()?.contains("clip-dev"))
            .then_some(v)
    });
    assert!(
        menu[2]
            .as_str()
            .unwrap()
            .contains("searches answer from this one"),
        "{menu}"
    );
    d.screenshot("07-settings");

    // Sort a folder outside the library into labels: preview, copy, undo.
    let unsorted = tmp.path().join("unsorted");
    std::fs::create_dir_all(&unsorted).unwrap();
    let labels_text = std::fs::read_to_string(fixtures().join("data/dev/labels.jsonl")).unwrap();
    for l in labels_text.lines().take(12) {
        let v: Value = serde_json::from_str(l).unwrap();
        let name = v["file"].as_str().unwrap();
        std::fs::copy(fixtures().join("data/dev").join(name), unsorted.join(name)).unwrap();
    }
    let mut twelve = Vec::new();
    for c in ["red", "green", "blue", "yellow"] {
        for sh in ["circle", "square", "triangle"] {
            twelve.push(format!("{c}-{sh}=a photo of a {c} {sh}"));
        }
    }
    d.click(".navbtn[data-view='classify']");
    d.type_into("#c-folder", unsorted.to_str().unwrap());
    d.type_into("#c-labels", &twelve.join(", "));
    d.click("#classify-form button[type='submit']");
    let groups = d.wait("the sort preview", 60, |d| {
        d.exec(
            "const g = [...document.querySelectorAll('#c-groups .c-group')];
             return g.length ? g.map(s => [s.dataset.label, [...s.querySelectorAll('.cell')].map(c => c.dataset.path)]) : null;",
            json!([]),
        )
        .as_array()
        .cloned()
    });
    let mut right = 0;
    let mut total = 0;
    for g in &groups {
        let label = g[0].as_str().unwrap();
        for p in g[1].as_array().unwrap() {
            let (c, sh) = label_of(p.as_str().unwrap());
            total += 1;
            right += usize::from(label == format!("{c}-{sh}"));
        }
    }
    assert_eq!(total, 12, "{groups:?}");
    assert!(right >= 11, "{right}/12 sorted right: {groups:?}");
    assert_eq!(thumbs_in(&d, "#c-groups"), 12, "preview thumbnails");
    d.screenshot("08-sort");
    let dest = tmp.path().join("sorted");
    d.type_into("#c-dest", dest.to_str().unwrap());
    d.click("#c-copy");
    d.wait("the copy", 30, |d| d.find("#c-undo:not([hidden])"));
    let copied = walk_files(&dest);
    assert_eq!(copied.len(), 12, "{copied:?}");
    d.click("#c-undo");
    d.wait("the undo", 30, |d| {
        let t = d.exec(
            "return document.querySelector('#c-status').textContent",
            json!([]),
        );
        t.as_str()
            .filter(|t| t.starts_with("Undone"))
            .map(str::to_string)
    });
    assert!(walk_files(&dest).is_empty(), "undo removes the copies");
    assert_eq!(
        std::fs::read_dir(&unsorted).unwrap().count(),
        12,
        "originals untouched"
    );

    // Places and time: a second folder of photos with capture dates and GPS positions.
    d.click(".navbtn[data-view='folders']");
    d.type_into(
        "#folders-path",
        fixtures().join("data/places").to_str().unwrap(),
    );
    d.click("#folders-form button[type=submit]");
    d.wait("213 photos indexed", 120, |d| {
        (dataset(d, "body", "indexed").as_deref() == Some("213")).then_some(())
    });
    d.exec(
        "const like = document.querySelector('#like-chip');
         if (!like.hidden) document.querySelector('#like-clear').click();
         const q = document.querySelector('#q');
         q.value = '';
         q.dispatchEvent(new Event('input', { bubbles: true }));
         return true;",
        json!([]),
    );
    d.wait("the timeline of 213 photos", 60, |d| {
        (dataset(d, "#grid", "mode").as_deref() == Some("timeline")
            && dataset(d, "#grid", "count").as_deref() == Some("213")
            && d.find("#scrubber .month-btn[data-month='2017-09']")
                .is_some())
        .then_some(())
    });
    let months = d.exec(
        "return [...document.querySelectorAll('#scrubber .month-btn')].map(b => b.dataset.month)",
        json!([]),
    );
    let months: Vec<String> = serde_json::from_value(months).unwrap();
    assert!(
        months.windows(2).all(|w| w[0] > w[1]),
        "newest first: {months:?}"
    );
    assert!(months.contains(&"2014-07".to_string()), "{months:?}");
    // The scrubber jumps: September 2017's header comes to the top, Cape Town's photo under it.
    d.click("#scrubber .month-btn[data-month='2017-09']");
    let jumped = d.wait("the jump to September 2017", 20, |d| {
        let v = d.exec(
            "const g = document.querySelector('#grid');
             const h = document.querySelector('#grid .month-header[data-month=\"2017-09\"]');
             const c = [...document.querySelectorAll('#grid .cell')].find(c => (c.dataset.date || '').startsWith('2017-09'));
             if (!h || !c || g.dataset.section !== '2017-09') return null;
             return [g.scrollTop, h.getBoundingClientRect().top - g.getBoundingClientRect().top, c.dataset.path];",
            json!([]),
        );
        v.as_array().cloned()
    });
    assert!(jumped[0].as_f64().unwrap() > 200.0, "scrolled: {jumped:?}");
    assert!(
        jumped[1].as_f64().unwrap().abs() <= 2.0,
        "the month's header is at the top: {jumped:?}"
    );
    assert!(
        jumped[2].as_str().unwrap().ends_with("capetown_2017.jpg"),
        "{jumped:?}"
    );
    d.screenshot("09-timeline");

    // The Places facet: Japan's two photos, newest first; the photo view says where.
    d.wait("the places facet", 20, |d| {
        d.find("#f-place option[value='Japan']")
    });
    d.exec(
        "const s = document.querySelector('#f-place');
         s.value = 'Japan';
         s.dispatchEvent(new Event('change', { bubbles: true }));
         return true;",
        json!([]),
    );
    let japan = d.wait("photos taken in Japan", 30, |d| {
        let paths = grid_paths(d);
        (dataset(d, "#grid", "count").as_deref() == Some("2") && paths.len() == 2).then_some(paths)
    });
    assert!(japan[0].ends_with("kyoto_2023.jpg"), "{japan:?}");
    assert!(japan[1].ends_with("tokyo_2019.jpg"), "{japan:?}");
    d.click("#grid .cell[data-index='0']");
    let place = d.wait("the photo's place", 20, |d| {
        let t = d.exec(
            "return document.querySelector('#photo-view').hidden ? null : document.querySelector('#pv-place').textContent",
            json!([]),
        );
        t.as_str().filter(|t| *t != "…").map(str::to_string)
    });
    assert_eq!(place, "Kyoto, Japan");
    let date = d.exec(
        "return document.querySelector('#pv-date').textContent",
        json!([]),
    );
    assert_eq!(date, "2023-11-20 15:45:00 (UTC+09:00)");
    d.screenshot("10-place");
    d.click("#pv-close");

    // Duplicates: two copies of a shape photo in a third folder; keep the original (a fixture file
    // that must never move), trash the copies, undo.
    let used: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("data/places/places.json")).unwrap(),
    )
    .unwrap();
    let used: Vec<&str> = used.iter().filter_map(|p| p["source"].as_str()).collect();
    let original_name = labels_text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["format"] == "jpg" && !used.contains(&v["file"].as_str().unwrap()))
        .map(|v| v["file"].as_str().unwrap().to_string())
        .unwrap();
    let original = folder.join(&original_name);
    let dups = tmp.path().join("dups");
    std::fs::create_dir_all(&dups).unwrap();
    for n in ["copy-1.jpg", "copy-2.jpg"] {
        std::fs::copy(&original, dups.join(n)).unwrap();
    }
    add_typed_folder(&d, &dups, 215);
    d.click(".navbtn[data-view='duplicates']");
    d.click("#d-find");
    let group = d.wait("the duplicate groups", 60, |d| {
        let v = d.exec(
            "const g = [...document.querySelectorAll('#d-groups .d-group')]
               .find(g => g.querySelector('.d-photo[data-path$=\"copy-1.jpg\"]'));
             return g ? [g.dataset.index, g.dataset.kind,
               [...g.querySelectorAll('.d-photo')].map(p => p.dataset.path)] : null;",
            json!([]),
        );
        v.as_array().cloned()
    });
    assert_eq!(group[1], "exact", "{group:?}");
    let members: Vec<String> = serde_json::from_value(group[2].clone()).unwrap();
    assert_eq!(members.len(), 3, "{members:?}");
    let canon_original = original.canonicalize().unwrap();
    assert!(
        members.iter().any(|m| Path::new(m) == canon_original),
        "{members:?}"
    );
    // Near-duplicates too: the places photos are re-encoded copies of shape photos.
    let near = d.exec(
        "return document.querySelectorAll('#d-groups .d-group[data-kind=\"near\"]').length",
        json!([]),
    );
    assert!(near.as_u64() >= Some(10), "near groups: {near}");
    d.screenshot("11-duplicates");
    let gi = group[0].as_str().unwrap().to_string();
    d.exec(
        "const g = document.querySelector(`#d-groups .d-group[data-index=\"${arguments[0]}\"]`);
         const keep = [...g.querySelectorAll('input[type=radio]')].find(r => r.value === arguments[1]);
         keep.checked = true;
         g.querySelector('.d-trash-group').click();
         return true;",
        json!([gi, canon_original.to_str().unwrap()]),
    );
    d.wait("the copies in the trash", 30, |d| {
        let t = d.exec(
            "return document.querySelector('#d-status').textContent",
            json!([]),
        );
        t.as_str()
            .filter(|t| t.starts_with("Put 2"))
            .map(str::to_string)
    });
    assert!(original.is_file(), "the kept original stays");
    assert!(!dups.join("copy-1.jpg").exists() && !dups.join("copy-2.jpg").exists());
    let in_trash = std::fs::read_dir(tmp.path().join("xdg/Trash/files"))
        .unwrap()
        .count();
    assert_eq!(in_trash, 2);
    d.click("#d-undo");
    d.wait("the undo", 30, |d| {
        let t = d.exec(
            "return document.querySelector('#d-status').textContent",
            json!([]),
        );
        t.as_str()
            .filter(|t| t.starts_with("Undone: 2"))
            .map(str::to_string)
    });
    assert!(dups.join("copy-1.jpg").is_file() && dups.join("copy-2.jpg").is_file());

    // Text in photos: a receipt added to the library is read in the background (newest first);
    // its words find it, and the photo view shows its text with them marked.
    let receipts = tmp.path().join("receipts");
    std::fs::create_dir_all(&receipts).unwrap();
    std::fs::copy(
        fixtures().join("data/ocr/img_11.jpg"),
        receipts.join("scan-0001.jpg"),
    )
    .unwrap();
    add_typed_folder(&d, &receipts, 216);
    d.click(".navbtn[data-view='search']");
    d.exec(
        "const place = document.querySelector('#f-place');
         place.value = '';
         place.dispatchEvent(new Event('change', { bubbles: true }));
         const q = document.querySelector('#q');
         q.value = 'acme 4711';
         q.dispatchEvent(new Event('input', { bubbles: true }));
         return true;",
        json!([]),
    );
    // The search reruns when the library changes (the text was read).
    d.wait("the receipt first for its words", 240, |d| {
        grid_paths(d)
            .first()
            .filter(|p| p.ends_with("scan-0001.jpg"))
            .cloned()
    });
    d.click("#grid .cell[data-index='0']");
    let marked = d.wait("the receipt's text in the photo view", 30, |d| {
        let v = d.exec(
            "const b = document.querySelector('#pv-text-box');
             if (document.querySelector('#photo-view').hidden || b.hidden) return null;
             return [...document.querySelectorAll('#pv-text mark')].map(m => m.textContent);",
            json!([]),
        );
        v.as_array().filter(|a| !a.is_empty()).cloned()
    });
    let marked: Vec<String> = marked
        .iter()
        .map(|m| m.as_str().unwrap().to_lowercase())
        .collect();
    assert!(
        marked.contains(&"acme".to_string()) && marked.contains(&"4711".to_string()),
        "{marked:?}"
    );
    let text = d.exec(
        "return document.querySelector('#pv-text').textContent",
        json!([]),
    );
    assert!(
        text.as_str().unwrap().contains("HARDWARE"),
        "the whole text is shown: {text}"
    );
    d.screenshot("12-text");
    d.click("#pv-copy-text");
    d.wait("the copy button's answer", 10, |d| {
        let t = d.exec(
            "return document.querySelector('#pv-copied').textContent",
            json!([]),
        );
        t.as_str().filter(|t| !t.is_empty()).map(str::to_string)
    });

    d.close();
    driver_guard.stop();
    // Each typed folder went through the native confirmation: adding, sorting, sorting into.
    let log = dump_log();
    for title in [
        "Add this folder to Shoebox?",
        "Sort this folder?",
        "Sort into this folder?",
    ] {
        assert!(
            log.contains(&format!("test: answering yes to \"{title}\"")),
            "no confirmation \"{title}\" in the app's log:\n{log}"
        );
    }
    let mut timings = HashMap::new();
    timings.insert("session", session_started.as_secs_f64());
    timings.insert("indexed", indexed_at.as_secs_f64());
    timings.insert("total", started.elapsed().as_secs_f64());
    eprintln!(
        "e2e timings (s): {timings:?}; screenshots in {}",
        shots.display()
    );
}

/// Files under `dir` (recursively; none when it does not exist), hidden ones (the journal) aside.
/// Add a folder by typing its path in the Folders view, and wait until the library has `indexed`
/// photos.
fn add_typed_folder(d: &WebDriver, folder: &Path, indexed: usize) {
    d.click(".navbtn[data-view='folders']");
    d.exec(
        "document.querySelector('#folders-path').value = ''; return true;",
        json!([]),
    );
    d.type_into("#folders-path", folder.to_str().unwrap());
    d.click("#folders-form button[type=submit]");
    let want = indexed.to_string();
    d.wait(&format!("{indexed} photos indexed"), 120, |d| {
        (dataset(d, "body", "indexed").as_deref() == Some(want.as_str())).then_some(())
    });
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                out.push(p);
            }
        }
    }
    out
}

/// How many thumbnails under `css` loaded (waits until all finished, well or not).
fn thumbs_in(d: &WebDriver, css: &str) -> u64 {
    d.wait("thumbnails", 30, |d| {
        d.exec(
            "const imgs = [...document.querySelectorAll(arguments[0] + ' img')];
             return imgs.length && imgs.every(i => i.complete) ? imgs.filter(i => i.naturalWidth > 0).length : null;",
            json!([css]),
        )
        .as_u64()
    })
}

/// How many of the first six grid thumbnails loaded (waits until they finished, well or not).
fn thumbs_loaded(d: &WebDriver) -> u64 {
    d.wait("thumbnails", 30, |d| {
        d.exec(
            "const imgs = [...document.querySelectorAll('#grid .cell')]
                .sort((a, b) => a.dataset.index - b.dataset.index).slice(0, 6).map(c => c.querySelector('img'));
             return imgs.length && imgs.every(i => i.complete) ? imgs.filter(i => i.naturalWidth > 0).length : null;",
            json!([]),
        )
        .as_u64()
    })
}
