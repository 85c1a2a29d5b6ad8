//! The explanation page in a real browser: headless Chromium driven through WebDriver
//! (Debian's `chromium` and `chromium-driver`). It draws a "1" on the canvas, waits for the
//! prediction and the heatmaps, reads heatmap pixels (red on the stroke), moves the ε slider
//! with the keyboard and sees the map change, uploads a JPEG and sees the top-5 list, and saves
//! screenshots at a desktop and a phone width (target/serve-screenshots/).
//!
//! Without `chromedriver` the test says so and passes, unless `RELEVANCE_BROWSER_TEST=1`
//! (set by CI), where a missing browser fails it.
#![cfg(feature = "serve")]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Driver {
    agent: ureq::Agent,
    base: String,
}

impl Driver {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut r = match body {
            Some(b) => self.agent.post(&url).send_json(&b),
            None if method == "DELETE" => self.agent.delete(&url).call(),
            None => self.agent.get(&url).call(),
        }
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let v: Value = r.body_mut().read_json().expect("WebDriver answers JSON");
        if let Some(err) = v["value"].get("error") {
            panic!("WebDriver {method} {path}: {err}: {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    fn script(&self, session: &str, code: &str, args: Value) -> Value {
        self.call(
            "POST",
            &format!("/session/{session}/execute/sync"),
            Some(json!({ "script": code, "args": args })),
        )
    }

    fn wait(&self, session: &str, code: &str, what: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.script(session, code, json!([]));
            if !v.is_null() && v != json!(false) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&self, session: &str, css: &str) -> String {
        let v = self.call(
            "POST",
            &format!("/session/{session}/element"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element id")
            .to_string()
    }

    fn screenshot(&self, session: &str, path: &std::path::Path) {
        let b64 = self.call("GET", &format!("/session/{session}/screenshot"), None);
        let bytes = decode_b64(b64.as_str().expect("base64"));
        std::fs::write(path, bytes).expect("writes the screenshot");
    }
}

fn decode_b64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | (u32::from(val(c)) << (18 - 6 * i)));
        for k in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * k)) as u8);
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Counts, in a heatmap canvas, red and blue pixels in the middle third of its columns.
const COUNT: &str = "const c = document.querySelector(arguments[0]); if (!c || !c.dataset.ready) return null;
 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let red = 0, blue = 0, hash = 0;
 for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) { const i = 4 * (y * c.width + x);
   hash = (hash * 31 + d[i] + 7 * d[i + 2]) % 1000000007;
   if (x < c.width / 3 || x >= 2 * c.width / 3) continue;
   if (d[i] > 200 && d[i + 1] < 170 && d[i + 2] < 170) red++; if (d[i + 2] > 200 && d[i] < 170 && d[i + 1] < 170) blue++; }
 return {red, blue, hash, w: c.width, ready: c.dataset.ready};";

#[test]
fn the_page_draws_explains_reacts_and_uploads_in_chromium() {
    let required = std::env::var("RELEVANCE_BROWSER_TEST").is_ok_and(|v| v == "1");
    let driver_bin = [
        "chromedriver",
        "/usr/bin/chromedriver",
        "/usr/lib/chromium/chromedriver",
    ]
    .into_iter()
    .find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(driver_bin) = driver_bin else {
        assert!(
            !required,
            "RELEVANCE_BROWSER_TEST=1 but chromedriver is missing: apt-get install chromium chromium-driver"
        );
        eprintln!("SKIPPED: no chromedriver (apt-get install chromium chromium-driver); CI sets RELEVANCE_BROWSER_TEST=1 and runs it");
        return;
    };
    // the server
    let mut server = Command::new(env!("CARGO_BIN_EXE_relevance"))
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Kill(server);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("a URL")
        .to_string();
    // the browser
    let port = free_port();
    let _driver = Kill(
        Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let d = Driver {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    while d.agent.get(&format!("{}/status", d.base)).call().is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let chrome = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let mut options = json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"] });
    if let Some(c) = chrome {
        options["binary"] = json!(c);
    }
    let session = d.call(
        "POST",
        "/session",
        Some(json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": options } } })),
    );
    let sid = session["sessionId"].as_str().expect("a session").to_string();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-screenshots");
    std::fs::create_dir_all(&out).unwrap();

    d.call(
        "POST",
        &format!("/session/{sid}/url"),
        Some(json!({ "url": url })),
    );
    d.wait(
        &sid,
        "return document.body.dataset.ready === '1';",
        "the page to load its models",
    );

    // 1. draw a "1": a vertical stroke through the canvas's centre
    let rect = d.script(
        &sid,
        "const r = document.getElementById('draw').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2, r.height];",
        json!([]),
    );
    let (cx, cy, side) = (
        rect[0].as_f64().unwrap(),
        rect[1].as_f64().unwrap(),
        rect[2].as_f64().unwrap(),
    );
    let at = |k: i32| {
        let y = cy + side * (-0.32 + 0.64 * f64::from(k) / 18.0);
        json!({"type": "pointerMove", "origin": "viewport", "x": cx.round() as i64, "y": y.round() as i64, "duration": 20})
    };
    let mut actions = vec![at(0), json!({"type": "pointerDown", "button": 0})];
    for k in 1..=18 {
        actions.push(at(k));
    }
    actions.push(json!({"type": "pointerUp", "button": 0}));
    d.call(
        "POST",
        &format!("/session/{sid}/actions"),
        Some(json!({ "actions": [{ "type": "pointer", "id": "pen", "parameters": {"pointerType": "mouse"}, "actions": actions }] })),
    );
    let prediction = d.wait(
        &sid,
        "const t = document.getElementById('prediction').textContent; return t.startsWith('Predicted') ? t : null;",
        "the prediction",
    );
    println!("prediction after drawing: {prediction}");
    assert!(
        prediction.as_str().unwrap().starts_with("Predicted: 1"),
        "{prediction}"
    );
    // wait for the last update (drawing stopped) to be painted, then read the γ heatmap
    std::thread::sleep(Duration::from_millis(800));
    let gamma = d.wait(
        &sid,
        &format!("return (function(){{ {COUNT} }}).apply(null, ['canvas[data-method=gamma]']);"),
        "the γ heatmap",
    );
    println!("γ heatmap, middle third: {gamma}");
    let (red, blue) = (gamma["red"].as_u64().unwrap(), gamma["blue"].as_u64().unwrap());
    assert!(red >= 10 && red > 2 * blue, "red along the stroke: {gamma}");
    let timing = d.script(
        &sid,
        "return document.getElementById('timing').textContent;",
        json!([]),
    );
    println!("timing shown on the page: {timing}");

    // 2. the ε slider, by keyboard: the ε heatmap changes
    let count_eps = format!("return (function(){{ {COUNT} }}).apply(null, ['canvas[data-method=epsilon]']);");
    let before = d.wait(&sid, &count_eps, "the ε heatmap");
    let slider = d.element(&sid, "#epsilon");
    let keys = "\u{E014}".repeat(6); // ArrowRight × 6: ε from 10^-0.5 to 10^1
    d.call(
        "POST",
        &format!("/session/{sid}/element/{slider}/value"),
        Some(json!({ "text": keys })),
    );
    let eps = d.script(
        &sid,
        "return document.getElementById('epsilon-value').textContent;",
        json!([]),
    );
    let start = Instant::now();
    loop {
        let now = d.script(&sid, &count_eps, json!([]));
        if !now.is_null() && now["hash"] != before["hash"] {
            println!(
                "ε = {eps}: heatmap changed ({} → {})",
                before["hash"], now["hash"]
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the ε heatmap did not change after the slider moved to {eps}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    d.screenshot(&sid, &out.join("desktop.png"));

    // 3. upload a JPEG: the top-5 list
    let file = d.element(&sid, "#file");
    let jpeg = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/seven_56x70.jpg");
    d.call(
        "POST",
        &format!("/session/{sid}/element/{file}/value"),
        Some(json!({ "text": jpeg })),
    );
    let top = d.wait(
        &sid,
        "const l = [...document.querySelectorAll('#top5 li')].map(e => e.textContent); const p = document.getElementById('prediction').textContent; return l.length === 5 && p.startsWith('Predicted: 7') ? l : null;",
        "the top-5 list of the uploaded JPEG",
    );
    println!("top-5 of the JPEG: {top}");

    // 4. a phone's width: nothing wider than the screen
    d.call(
        "POST",
        &format!("/session/{sid}/window/rect"),
        Some(json!({ "width": 390, "height": 844 })),
    );
    std::thread::sleep(Duration::from_millis(500));
    let overflow = d.script(
        &sid,
        "return document.documentElement.scrollWidth - window.innerWidth;",
        json!([]),
    );
    assert!(
        overflow.as_i64().unwrap_or(0) <= 1,
        "the page is wider than a phone by {overflow} px"
    );
    d.screenshot(&sid, &out.join("narrow.png"));
    println!("screenshots in {}", out.display());
    d.call("DELETE", &format!("/session/{sid}"), None);
}
