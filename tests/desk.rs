//! The reception desk in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), against `facegate desk` on the demo's real photos (public domain, so the
//! screenshots may be kept), with an audit log written by `facegate run` on the demo.
//!
//! The WebDriver client is a few plain HTTP/1.1 calls over a `TcpStream` (no async runtime,
//! no extra crate): WebDriver is JSON over HTTP, and the desk's own refusals are checked
//! with the same client. `FACEGATE_DESK_SCREENSHOTS=DIR` keeps a PNG of each screen there.
#![cfg(feature = "desk")]

mod common;

use common::web::{body_of, desk_args, free_port, http, start_desk};

use base64::Engine;
use facegate::identity::gallery::Gallery;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A chromedriver process and one browser session.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
    shots: Option<PathBuf>,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// A headless Chromium with its profile in `profile` and `extra` flags.
    fn start(profile: &Path, extra: &[String]) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        let addr = format!("127.0.0.1:{port}");
        let t0 = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1300,1500",
                         format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let mut caps = caps;
        if let Some(args) =
            caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["args"].as_array_mut()
        {
            args.extend(extra.iter().map(|a| json!(a)));
        }
        let (st, r) = http(
            &addr,
            "POST",
            "/session",
            &[("Content-Type", "application/json")],
            Some(&caps.to_string()),
        );
        assert_eq!(st, 200, "new session: {r}");
        let v: Value = serde_json::from_str(body_of(&r)).unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            addr,
            session,
            shots: std::env::var_os("FACEGATE_DESK_SCREENSHOTS").map(PathBuf::from),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        let b = body.map(|b| b.to_string());
        let (st, r) = http(
            &self.addr,
            method,
            &p,
            &[("Content-Type", "application/json")],
            b.as_deref(),
        );
        let v: Value = serde_json::from_str(body_of(&r)).unwrap_or(Value::Null);
        if st != 200 {
            return json!({"error": v["value"]["error"], "status": st});
        }
        v["value"].clone()
    }

    /// Navigates to `url` and returns once that document has loaded. A navigation the driver
    /// reports as failed (a renderer timeout on a loaded machine) is tried again, and the
    /// test fails with the driver's error if it never succeeds.
    fn go(&self, url: &str) {
        let mut last = Value::Null;
        for _ in 0..3 {
            last = self.call("POST", "/url", Some(json!({ "url": url })));
            if last.get("error").is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(last.get("error").is_none(), "navigation to {url}: {last}");
        // The first visit's `?token=` ends at `/` (the token moves into a cookie).
        let want = json!(url.split_once("?token=").map_or(url, |(u, _)| u));
        self.wait(&format!("{url} to load"), 60, |b| {
            b.js("return document.readyState") == json!("complete")
                && b.js("return location.href") == want
        });
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Waits until `cond` holds (checked every 200 ms), or fails with `what`.
    fn wait(&self, what: &str, secs: u64, mut cond: impl FnMut(&Browser) -> bool) {
        let t0 = Instant::now();
        while !cond(self) {
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}; page text: {}",
                self.js("return document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, name: &str) {
        let Some(dir) = &self.shots else { return };
        let v = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("desk_{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

struct DeskProcess(Child);
impl Drop for DeskProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the kiosk on the demo frames with its audit log in `dir`; the log's path.
fn demo_audit_log(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/demo.toml"))
        .unwrap()
        .replace(
            "path = \"demo/frames\"",
            &format!("path = {:?}", root.join("config/demo/frames")),
        )
        .replace(
            "path = \"../target/demo/gallery.toml\"",
            &format!("path = {:?}", dir.join("door-gallery.toml")),
        )
        .replace(
            "path = \"../target/demo/audit.jsonl\"",
            &format!("path = {:?}", dir.join("audit.jsonl")),
        );
    let cfg = dir.join("demo.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = common::facegate(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--enroll-first",
        "Astronaut",
        root.join("config/demo/enroll_astronaut.jpg")
            .to_str()
            .unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = dir.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"decision\":\"grant\""), "{text}");
    log
}

#[test]
fn the_desk_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let audit = demo_audit_log(dir.path());
    let gallery = dir.path().join("desk-gallery.toml");
    let (child, url, _) = start_desk(&gallery, &["--audit", audit.to_str().unwrap()]);
    let _desk = DeskProcess(child);
    let rest = url.strip_prefix("http://").expect(&url);
    let (addr, token) = rest.split_once("/?token=").expect(&url);
    assert_eq!(token.len(), 64, "{url}");

    // What an unauthenticated or cross-site request gets.
    let (st, r) = http(addr, "GET", "/", &[], None);
    assert_eq!(st, 401, "{r}");
    assert!(body_of(&r).contains("missing or wrong token"));
    assert!(!body_of(&r).contains("People"), "the page leaked: {r}");
    assert_eq!(http(addr, "GET", "/?token=0000", &[], None).0, 401);
    assert_eq!(http(addr, "GET", "/api/people", &[], None).0, 401);
    // The first visit moves the token from the URL into a cookie only this server gets, and
    // sends the browser to `/`.
    let (st, r) = http(addr, "GET", &format!("/?token={token}"), &[], None);
    assert_eq!(st, 303, "{r}");
    let lower = r.to_ascii_lowercase();
    assert!(lower.contains("\r\nlocation: /\r\n"), "{r}");
    let set_cookie = r
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie
        .split_once(':')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert!(cookie.ends_with(token), "{cookie}");
    let (st, r) = http(addr, "GET", "/", &[("Cookie", &cookie)], None);
    assert_eq!(st, 200);
    assert!(!r.contains("?token="), "a token in the page's URLs: {r}");
    // The cookie does not stand for the header on a change.
    let (st, _) = http(
        addr,
        "POST",
        "/api/people/remove",
        &[("Cookie", &cookie), ("Content-Type", "application/json")],
        Some("{\"name\":\"x\"}"),
    );
    assert_eq!(st, 401);
    let csp = r
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("content-security-policy:")
        })
        .expect("a CSP header");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    // A change with the token only in the URL (as a link or a form would carry it): refused.
    let remove = format!("/api/people/remove?token={token}");
    let json_ct = ("Content-Type", "application/json");
    let (st, _) = http(addr, "POST", &remove, &[json_ct], Some("{\"name\":\"x\"}"));
    assert_eq!(st, 401);
    // A form post (what another page can send without a preflight): refused.
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let hdr = ("X-Facegate-Token", token);
    let (st, _) = http(
        addr,
        "POST",
        "/api/people/remove",
        &[hdr, form],
        Some("name=x"),
    );
    assert_eq!(st, 415);
    let big = format!("{{\"name\":\"{}\"}}", "a".repeat(5000));
    let (st, _) = http(addr, "POST", "/api/enroll", &[hdr, json_ct], Some(&big));
    assert_eq!(st, 413);
    let long = format!("{{\"name\":\"{}\"}}", "a".repeat(65));
    let (st, r) = http(addr, "POST", "/api/enroll", &[hdr, json_ct], Some(&long));
    assert_eq!(st, 400, "{r}");
    // DNS rebinding: another Host name is refused even with the token.
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /?token={token} HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 421"), "{raw}");

    let profile = tempfile::tempdir().unwrap();
    let b = Browser::start(profile.path(), &[]);

    // Without the token the browser gets the refusal, not the page.
    b.go(&format!("http://{addr}/"));
    assert!(b
        .js("return document.body.innerText")
        .as_str()
        .unwrap()
        .contains("missing or wrong token"));

    b.go(&url);
    assert_eq!(
        b.js("return location.search"),
        json!(""),
        "the token stayed in the address bar"
    );
    assert_eq!(
        b.js("return document.cookie"),
        json!(""),
        "the cookie is readable by scripts"
    );
    assert_eq!(
        b.js("return document.title"),
        json!("facegate desk"),
        "page text: {}",
        b.js("return document.body.innerText")
    );
    // The preview shows a frame with one face box and the gates' verdict.
    b.wait("a preview with one good face", 60, |b| {
        b.js("const i = document.getElementById('preview'); return i.naturalWidth > 0 && i.dataset.faces === '1'")
            == json!(true)
            && b.text("#verdict").contains("good")
    });
    b.screenshot("preview");

    // Enroll the astronaut: 3 good frames from the playing folder.
    b.type_into("#enroll-name", "Astronaut");
    b.click("#enroll-start");
    b.wait("the enrollment to finish", 90, |b| {
        b.js("return document.getElementById('enroll-status').dataset.state") == json!("done")
    });
    assert!(
        b.text("#enroll-status").contains("enrolled"),
        "{}",
        b.text("#enroll-status")
    );
    b.wait("the person in the list", 10, |b| {
        b.text("#people-list").contains("Astronaut")
    });
    let g = Gallery::load_any(&gallery).unwrap();
    assert_eq!(g.people().len(), 1);
    assert_eq!(g.people()[0].name, "Astronaut");
    assert_eq!(g.people()[0].templates.len(), 3);
    b.screenshot("enrolled");

    // Who is this? (frames without a face answer so; the astronaut's are named).
    b.wait("the astronaut identified", 30, |b| {
        b.click("#identify-button");
        std::thread::sleep(Duration::from_millis(300));
        b.text("#identify-result")
            .starts_with("Astronaut (distance")
    });
    let answer = b.text("#identify-result");
    let d: f32 = answer
        .split("distance ")
        .nth(1)
        .and_then(|s| s.split([',', ')']).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{answer}"));
    assert!((0.0..0.5377).contains(&d), "{answer}");

    // A name that is markup shows as text: no element is made from it, no script runs.
    let evil = "<img src=x onerror=alert(1)>";
    b.click(".rename");
    b.type_into(".rename-input", evil);
    b.click(".rename-save");
    b.wait("the renamed person", 10, |b| b.text(".person-name") == evil);
    assert_eq!(
        b.js("return document.querySelectorAll('#people-list img').length"),
        json!(0)
    );
    let alert = b.call("GET", "/alert/text", None);
    assert_eq!(alert["error"], json!("no such alert"), "{alert}");
    assert_eq!(Gallery::load_any(&gallery).unwrap().people()[0].name, evil);
    b.screenshot("people");

    // The door's decisions from `facegate run` on the demo.
    b.wait("the audit view", 15, |b| {
        let t = b.text("#decisions");
        t.contains("grant") && t.contains("Astronaut")
    });
    assert!(b.text("#drift").contains("steady"), "{}", b.text("#drift"));

    // Remove, with confirmation.
    b.click(".remove");
    assert!(Gallery::load_any(&gallery).unwrap().people().len() == 1);
    b.click(".remove-confirm");
    b.wait("an empty list", 10, |b| b.text("#people-count") == "(0)");
    assert!(Gallery::load_any(&gallery).unwrap().people().is_empty());

    // Drift: a synthetic history of grants whose distances creep toward the threshold.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&audit)
        .unwrap();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 3000.0;
    for i in 0..40 {
        let d = if i < 30 {
            0.30 + 0.01 * (i % 4) as f64
        } else {
            0.46 + 0.003 * (i - 30) as f64
        };
        writeln!(
            log,
            "{}",
            json!({"time": t0 + 60.0 * i as f64, "decision": "grant", "person": "Synthetic", "distance": d, "margin": 0.2, "frames": 3})
        )
        .unwrap();
    }
    drop(log);
    b.go(&url);
    b.wait("the drift warning", 15, |b| {
        b.text("#drift").contains("drift toward the threshold")
    });
    b.screenshot("health");
}

#[test]
fn the_desk_refuses_a_network_address_without_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = desk_args(&dir.path().join("g.toml"));
    let listen = args.iter().position(|a| a == "127.0.0.1:0").unwrap();
    args[listen] = "0.0.0.0:0".into();
    let out = common::facegate_cmd().args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--allow-remote"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "an address was printed");
    assert!(!dir.path().join("g.toml").exists());
}

#[test]
fn the_desk_over_tls_in_a_real_browser() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    // A test certificate for the page's name; the browser trusts exactly its key.
    let made = rcgen::generate_simple_self_signed(vec!["desk.test".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("desk.crt"), dir.path().join("desk.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let spki = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(
        rcgen::PublicKeyData::subject_public_key_info(&made.signing_key),
    ));
    let gallery = dir.path().join("g.toml");
    let (child, url, fingerprint) = start_desk(
        &gallery,
        &[
            "--allow-remote",
            "--allow-host",
            "desk.test",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let _desk = DeskProcess(child);
    assert!(url.starts_with("https://desk.test:"), "{url}");
    let want = hex_colons(&sha2::Sha256::digest(made.cert.der()));
    assert!(fingerprint.contains(&want), "{fingerprint} vs {want}");
    let profile = tempfile::tempdir().unwrap();
    let b = Browser::start(
        profile.path(),
        &[
            "--host-resolver-rules=MAP desk.test 127.0.0.1".to_string(),
            format!("--ignore-certificate-errors-spki-list={spki}"),
        ],
    );
    b.go(&url);
    assert_eq!(b.js("return location.protocol"), json!("https:"));
    assert_eq!(b.js("return document.title"), json!("facegate desk"));
    assert_eq!(b.js("return document.cookie"), json!(""));
    // The preview and the API come with the Secure cookie and the page's header.
    b.wait("a preview over TLS", 60, |b| {
        b.js("return document.getElementById('preview').naturalWidth > 0") == json!(true)
    });
    b.wait("the people list over TLS", 10, |b| {
        b.text("#people-count") == "(0)"
    });
}

/// `AB:CD:...` of `bytes`.
fn hex_colons(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
