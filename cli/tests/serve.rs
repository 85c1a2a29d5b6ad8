//! `relevance serve` through HTTP on the loopback: the API's answers, its refusals (4xx with a
//! sentence, the server serving on), and a bounded load test (50 concurrent clients × 100
//! explain requests on the bundled digits model: no error, p99 latency printed, memory flat).
#![cfg(feature = "serve")]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server, stopped when dropped.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_relevance"))
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server prints its URL");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server { child, url }
    }

    /// Resident memory of the server process in kB (Linux).
    pub fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// POSTs `body` (a string, sent as it is) and returns the status and the JSON answer.
fn post(agent: &ureq::Agent, url: &str, body: &str) -> (u16, Value) {
    let mut r = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .expect("the server answers");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A POST written by hand: the server may answer (and close) before the body is sent.
fn raw_post(url: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("writes the head");
    let _ = stream.write_all(body.as_bytes());
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    let mut r = agent.get(url).call().expect("the server answers");
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().expect("a body"),
    )
}

/// A 140 × 140 drawing of a vertical bar (a "1"), base64 grey bytes.
fn bar_drawing() -> Value {
    let (w, h) = (140usize, 140usize);
    let mut bytes = vec![0u8; w * h];
    for y in 20..120 {
        for x in 64..76 {
            bytes[y * w + x] = 255;
        }
    }
    json!({ "width": w, "height": h, "data": b64(&bytes) })
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const SIX: &str = r#"[{"name":"lrp0"},{"name":"epsilon=0.25"},{"name":"gamma=0.25"},{"name":"alpha-beta=2,1"},
 {"composite":{"default":"epsilon=1e-6","groups":[{"select":"first","rule":"zbox"},{"select":"convolutions","rule":"gamma=0.25"}]}},
 {"name":"deeplift"}]"#;

#[test]
fn the_api_explains_a_drawing_with_every_method_and_option() {
    let server = Server::start(&[]);
    let a = agent();
    let (status, page) = get(&a, &format!("{}/", server.url));
    assert_eq!(status, 200);
    assert!(page.contains("<canvas id=\"draw\"") && page.contains("/app.js"));
    let (status, js) = get(&a, &format!("{}/app.js", server.url));
    assert!(status == 200 && js.contains("/api/explain"));
    let (_, models) = get(&a, &format!("{}/api/models", server.url));
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["models"][0]["input_shape"], json!([1, 28, 28]));
    assert_eq!(models["models"][0]["drawable"], json!(true));

    let body = format!(
        r#"{{"input":{{"drawing":{}}},"methods":{SIX},"layers":true,"flipping":true,"npy":true}}"#,
        bar_drawing()
    );
    let (status, r) = post(&a, &format!("{}/api/explain", server.url), &body);
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["prediction"]["label"], "1",
        "a vertical bar is a 1: {}",
        r["prediction"]["top"]
    );
    assert_eq!(r["prediction"]["top"].as_array().unwrap().len(), 5);
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for m in results {
        let (total, sum, gap) = (
            m["total"].as_f64().unwrap(),
            m["sum"].as_f64().unwrap(),
            m["gap"].as_f64().unwrap(),
        );
        assert!(
            (total - sum - gap).abs() < 1e-3 * total.abs().max(1.0),
            "{}: gap is total − Σ R",
            m["method"]
        );
        // the input, 11 nodes (conv, relu, pool, conv, relu, pool, flatten, dense, relu, dense, ...)
        assert!(m["layers"].as_array().unwrap().len() >= 8);
        let curve = m["flipping"]["curve"].as_array().unwrap();
        assert!(curve.len() > 10 && m["npy"].as_str().unwrap().len() > 100);
    }
    // DeepLIFT's summation-to-delta, to f32 rounding
    assert!(results[5]["gap"].as_f64().unwrap().abs() < 1e-3, "{}", results[5]);
    // the relevant pixels matter more than a random order
    let random = r["random_flipping"]["aopc"].as_f64().unwrap();
    for m in results {
        assert!(
            m["flipping"]["aopc"].as_f64().unwrap() > random,
            "{} beats random",
            m["method"]
        );
    }
    println!(
        "server time for 6 methods with layers and flipping: {} ms",
        r["server_ms"]
    );

    // a contrast, another baseline, an example input
    for (target, baseline) in [
        (r#"{"class":1,"versus":7}"#, r#"{"kind":"blur"}"#),
        (r#"{"class":3}"#, r#"{"kind":"mean"}"#),
        (
            "{}",
            &*format!(r#"{{"kind":"drawn","drawing":{}}}"#, bar_drawing()),
        ),
    ] {
        let body = format!(
            r#"{{"input":{{"sample":2}},"methods":[{{"name":"deeplift"}}],"target":{target},"baseline":{baseline}}}"#
        );
        let (status, r) = post(&a, &format!("{}/api/explain", server.url), &body);
        assert_eq!(status, 200, "{body}: {r}");
    }
    // an uploaded JPEG goes through the image path (resize, crop)
    let jpeg = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/seven_56x70.jpg")).unwrap();
    let body = format!(r#"{{"input":{{"image":"{}"}}}}"#, b64(&jpeg));
    let (status, r) = post(&a, &format!("{}/api/predict", server.url), &body);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["label"], "7");
    assert!(r["note"].as_str().unwrap().contains("resized"));
}

#[test]
fn bad_requests_get_a_sentence_and_the_server_serves_on() {
    let server = Server::start(&["--max-upload", "1"]);
    let a = agent();
    let explain = format!("{}/api/explain", server.url);
    let draw = bar_drawing().to_string();
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "not the JSON expected"),
        (r#"{"input":{"sample":0},"methods":[]}"#.into(), 400, "1 to 12 methods"),
        (r#"{"input":{"sample":0},"methods":[{"name":"gama"}]}"#.into(), 400, "gama"),
        (r#"{"input":{"sample":0},"methods":[{"name":"epsilon=-1"}]}"#.into(), 400, "epsilon"),
        (r#"{"input":{"sample":0},"methods":[{"name":"gamma=nan"}]}"#.into(), 400, "gamma"),
        (r#"{"input":{"sample":0},"methods":[{"name":"lrp0"}],"target":{"class":10}}"#.into(), 400, "class 10 does not exist"),
        (r#"{"input":{"sample":0},"methods":[{"name":"lrp0"}],"target":{"class":3,"versus":3}}"#.into(), 400, "itself"),
        (r#"{"input":{"sample":99},"methods":[{"name":"lrp0"}]}"#.into(), 400, "example 99"),
        (r#"{"input":{},"methods":[{"name":"lrp0"}]}"#.into(), 400, "give the input"),
        (r#"{"model":4,"input":{"sample":0},"methods":[{"name":"lrp0"}]}"#.into(), 400, "model 4"),
        (r#"{"input":{"sample":0},"methods":[{"name":"lrp0"}],"baseline":{"kind":"noise"}}"#.into(), 400, "unknown baseline"),
        (r#"{"input":{"sample":0},"methods":[{"name":"lrp0"}],"oops":1}"#.into(), 400, "unknown field"),
        (r#"{"input":{"sample":0},"methods":[{"composite":{"default":"deeplift"}}]}"#.into(), 400, "not a single LRP rule"),
        (r#"{"input":{"sample":0},"methods":[{"composite":{"default":"lrp0","groups":[{"select":"middle","rule":"lrp0"}]}}]}"#.into(), 400, "unknown group"),
        (r#"{"input":{"image":"!!!"},"methods":[{"name":"lrp0"}]}"#.into(), 400, "base64"),
        (r#"{"input":{"image":"aGVsbG8="},"methods":[{"name":"lrp0"}]}"#.into(), 400, "not a PNG or JPEG"),
        (r#"{"input":{"drawing":{"width":5000,"height":1,"data":""}},"methods":[{"name":"lrp0"}]}"#.into(), 400, "2048"),
        (r#"{"input":{"drawing":{"width":10,"height":10,"data":"AAAA"}},"methods":[{"name":"lrp0"}]}"#.into(), 400, "100"),
        (format!(r#"{{"input":{{"drawing":{draw}}},"methods":[{{"name":"lrp0"}}],"baseline":{{"kind":"blur","sigma":1e9}}}}"#), 400, "sigma"),
    ];
    for (body, status, words) in &cases {
        let (got, r) = post(&a, &explain, body);
        let message = r["error"].as_str().unwrap_or_default();
        assert_eq!(got, *status, "{}: {r}", &body[..body.len().min(120)]);
        assert!(
            message.contains(words),
            "{:?} should say {words:?}: {message}",
            &body[..body.len().min(120)]
        );
    }
    // over the upload limit: refused from its Content-Length, before the body is read
    let big = format!(
        r#"{{"input":{{"image":"{}"}},"methods":[{{"name":"lrp0"}}]}}"#,
        "A".repeat(2 << 20)
    );
    let (status, answer) = raw_post(&server.url, "/api/explain", &big);
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("1 MB"), "{answer}");
    let (status, _) = get(&a, &format!("{}/etc/passwd", server.url));
    assert_eq!(status, 404);
    let (status, _) = get(&a, &format!("{}/../../etc/passwd", server.url));
    assert_eq!(status, 404);
    // still serving
    let (status, r) = post(
        &a,
        &explain,
        r#"{"input":{"sample":0},"methods":[{"name":"lrp0"}]}"#,
    );
    assert_eq!(status, 200, "{r}");
}

#[test]
fn fifty_clients_times_a_hundred_requests_without_error_and_with_flat_memory() {
    let server = Server::start(&[]);
    let url = format!("{}/api/explain", server.url);
    let body = format!(r#"{{"input":{{"drawing":{}}},"methods":{SIX}}}"#, bar_drawing());
    // warm up: allocator pools, the rayon pool, buffers
    let a = agent();
    for _ in 0..200 {
        assert_eq!(post(&a, &url, &body).0, 200);
    }
    let before = server.rss_kb();
    let start = Instant::now();
    let latencies: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                s.spawn(|| {
                    let a = agent();
                    (0..100)
                        .map(|_| {
                            let t = Instant::now();
                            let (status, r) = post(&a, &url, &body);
                            assert_eq!(status, 200, "{r}");
                            t.elapsed().as_secs_f64() * 1e3
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a client")).collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut all: Vec<f64> = latencies.into_iter().flatten().collect();
    assert_eq!(all.len(), 5000);
    all.sort_by(f64::total_cmp);
    let p = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    let after = server.rss_kb();
    println!(
        "5000 requests (6 methods each) in {wall:.1} s: {:.0} requests/s, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; server memory {before:?} kB → {after:?} kB",
        5000.0 / wall,
        p(0.5),
        p(0.99),
        p(1.0)
    );
    if let (Some(b), Some(a)) = (before, after) {
        assert!(a < b + 64 * 1024, "memory grew from {b} kB to {a} kB under load");
    }
}

#[test]
fn two_models_from_files_are_served_side_by_side() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
    let onnx = format!("{dir}/digits.onnx");
    let st = format!("{dir}/digits.safetensors");
    let server = Server::start(&[&onnx, &st, "--preprocess", "none"]);
    let a = agent();
    let (_, models) = get(&a, &format!("{}/api/models", server.url));
    let models: Value = serde_json::from_str(&models).unwrap();
    let names: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["digits.onnx", "digits.safetensors"]);
    let mut totals = Vec::new();
    for model in [0, 1] {
        let body = format!(
            r#"{{"model":{model},"input":{{"drawing":{}}},"methods":[{{"name":"epsilon=0.25"}}]}}"#,
            bar_drawing()
        );
        let (status, r) = post(&a, &format!("{}/api/explain", server.url), &body);
        assert_eq!(status, 200, "{r}");
        totals.push(r["results"][0]["sum"].as_f64().unwrap());
    }
    // the same weights in two formats: the same explanation
    assert!(
        (totals[0] - totals[1]).abs() < 1e-4 * totals[0].abs().max(1.0),
        "{totals:?}"
    );
}
