//! The desk's web server tried as an attacker on the same network (and a bored visitor at
//! reception) would, on loopback only, each attack bounded in count and time: after each,
//! an authorised request is answered within 1 s and the frame loop keeps running.
#![cfg(feature = "desk")]

mod common;

use common::web::{desk_args, http, start_desk};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// A running `facegate desk` on the demo frames.
struct Desk {
    child: Child,
    addr: String,
    token: String,
    second_line: String,
}

impl Drop for Desk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Desk {
    fn start(gallery: &Path, extra: &[&str]) -> Desk {
        let (child, url, second_line) = start_desk(gallery, extra);
        let rest = url.split_once("://").expect(&url).1;
        let (addr, token) = rest.split_once("/?token=").expect(&url);
        // With --allow-host the address printed is the page's name: it listens on loopback.
        let port = addr.rsplit(':').next().unwrap();
        Desk {
            child,
            addr: format!("127.0.0.1:{port}"),
            token: token.to_string(),
            second_line,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `/api/live` with the token, answered within `within` or the test fails; the JSON.
    fn live_within(&self, within: Duration) -> serde_json::Value {
        let t = Instant::now();
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(within)).unwrap();
        write!(
            s,
            "GET /api/live HTTP/1.1\r\nHost: {}\r\nX-Facegate-Token: {}\r\nConnection: close\r\n\r\n",
            self.addr, self.token
        )
        .unwrap();
        let mut raw = Vec::new();
        let r = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).to_string();
        assert!(
            r.is_ok() && text.starts_with("HTTP/1.1 200"),
            "no answer within {within:?} ({:?}): {r:?} {text}",
            t.elapsed()
        );
        serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
    }

    /// An authorised request answered within 1 s.
    fn answers(&self) -> serde_json::Value {
        self.live_within(Duration::from_secs(1))
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// A field of `/proc/PID/status` (`VmRSS` in kB, `Threads`).
fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{key} of {pid}"))
}

/// Waits (at most 60 s) for the frame loop to publish a frame past `seq`.
fn frames_move_on(d: &Desk, seq: u64) -> u64 {
    let t = Instant::now();
    loop {
        let now = d.answers()["seq"].as_u64().unwrap();
        if now > seq {
            return now;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the frame loop stopped at {seq}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn no_request_crashes_or_freezes_the_desk() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Desk::start(&dir.path().join("g.toml"), &[]);
    let seq = frames_move_on(&d, 0);
    // Without --audit the page still shows the threshold it identifies with (it read
    // "threshold )"): never looser than the default (FAR 1e-3).
    let (status, reply) = http(
        &d.addr,
        "GET",
        "/api/health",
        &[("X-Facegate-Token", &d.token)],
        None,
    );
    let body = common::web::body_of(&reply);
    let health: serde_json::Value = serde_json::from_str(body).expect(&reply);
    assert_eq!((status, &health["audit"]), (200, &serde_json::Value::Null));
    let t = health["threshold"].as_f64().expect(body);
    assert!(
        (0.3..=facegate::identity::threshold::DEFAULT_THRESHOLD as f64 + 1e-4).contains(&t),
        "{body}"
    );

    // A slow drip of a request line, one byte a second: it must not hold up anyone, and is
    // closed once the time for a request's headers is over (or to make room, below).
    let drip = |addr: String| {
        std::thread::spawn(move || {
            let t = Instant::now();
            let mut s = TcpStream::connect(&addr).unwrap();
            for b in b"GET /api/live HTTP/1.1\r\nHost: x\r\n".iter().cycle() {
                if s.write_all(&[*b]).is_err() || t.elapsed() > Duration::from_secs(40) {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            t.elapsed()
        })
    };
    let first_drip = drip(d.addr.clone());

    // 1. Content-Length of 99,999,999,999,999 bytes and no token: refused, nothing allocated.
    let mut s = TcpStream::connect(&d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let reply = String::from_utf8_lossy(&raw);
    assert!(reply.starts_with("HTTP/1.1 421"), "{reply}");
    d.answers();
    assert!(d.alive(), "the desk died");

    // 2. A body announced and never sent (left open), below and above the limit.
    let stalled: Vec<TcpStream> = [1000usize, 100_000]
        .iter()
        .map(|n| {
            let mut s = TcpStream::connect(&d.addr).unwrap();
            write!(
                s,
                "POST /api/enroll HTTP/1.1\r\nHost: {}\r\nX-Facegate-Token: {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n{{\"na",
                d.addr, d.token
            )
            .unwrap();
            s
        })
        .collect();
    for _ in 0..3 {
        d.answers();
    }

    // 3. A request line of up to 256 MiB without an end: the server stops reading after its
    // head limit and closes; memory does not grow with what was sent.
    let rss0 = proc_status(d.pid(), "VmRSS");
    let mut s = TcpStream::connect(&d.addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /").unwrap();
    let chunk = vec![b'a'; 64 << 10];
    let mut sent = 0usize;
    while sent < 256 << 20 {
        match s.write(&chunk) {
            Ok(n) if n > 0 => sent += n,
            _ => break,
        }
    }
    assert!(
        sent < 64 << 20,
        "{sent} bytes of request line were taken in"
    );
    let grew = proc_status(d.pid(), "VmRSS").saturating_sub(rss0);
    assert!(grew < 32 << 10, "RSS grew by {grew} kB");
    d.answers();
    println!(
        "huge request line: closed after {} KiB sent; RSS grew {grew} kB",
        sent >> 10
    );

    // 4. 500 idle sockets: the oldest are closed to make room; the page still answers, on a
    // few threads.
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(&d.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    d.answers();
    let (rss, threads) = (
        proc_status(d.pid(), "VmRSS"),
        proc_status(d.pid(), "Threads"),
    );
    println!("500 idle sockets: RSS {} MB, {threads} threads", rss >> 10);
    assert!(threads < 40, "{threads} threads");
    drop(idle);
    drop(stalled);

    let _ = first_drip.join().unwrap();
    // 5. A drip alone: answered around it, and closed by the header time limit (10 s).
    let second = drip(d.addr.clone());
    for _ in 0..10 {
        d.answers();
        std::thread::sleep(Duration::from_millis(300));
    }
    let dripped = second.join().unwrap();
    assert!(
        dripped >= Duration::from_secs(8) && dripped < Duration::from_secs(25),
        "the drip lasted {dripped:?}"
    );
    println!("slow drip closed after {dripped:?}");
    // The frame loop went on through all of it.
    frames_move_on(&d, seq);
    d.answers();
    assert!(d.alive());
}

#[test]
fn another_programs_lock_on_the_gallery_never_freezes_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dir.path().join("g.toml");
    let d = Desk::start(&gallery, &[]);
    // `facegate enroll` (here: this test) holds the gallery's lock while the desk enrolls.
    let held = facegate::files::lock(&gallery).unwrap();
    let (st, r) = http(
        &d.addr,
        "POST",
        "/api/enroll",
        &[
            ("X-Facegate-Token", &d.token),
            ("Content-Type", "application/json"),
        ],
        Some("{\"name\":\"Astronaut\"}"),
    );
    assert_eq!(st, 200, "{r}");
    let t = Instant::now();
    loop {
        let v = d.answers();
        if v["enroll"]["state"] == "saving" {
            break;
        }
        assert!(v["enroll"]["state"] == "running", "{v}");
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "never got to saving: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The save waits for the lock; the page answers all along.
    for _ in 0..10 {
        assert_eq!(d.answers()["enroll"]["state"], "saving");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(held);
    let t = Instant::now();
    loop {
        let v = d.answers();
        if v["enroll"]["state"] == "done" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let g = facegate::identity::gallery::Gallery::load_any(&gallery).unwrap();
    assert_eq!(g.people()[0].name, "Astronaut");
}

/// A TLS client that trusts only `cert` (PEM), for `name`.
fn tls_get(addr: &str, cert: &Path, name: &str, host: &str, path: &str) -> String {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), server).unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).to_string()
}

#[test]
fn from_another_machine_only_over_tls_and_only_by_its_names() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dir.path().join("g.toml");
    // --allow-remote without a name for the page, or without TLS: refused.
    let out = common::facegate_cmd()
        .args(desk_args(&gallery))
        .arg("--allow-remote")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-host"));

    // A self-signed certificate made on first start, its fingerprint printed.
    let d = Desk::start(&gallery, &["--allow-remote", "--allow-host", "desk.test"]);
    let cert: PathBuf = dir.path().join("desk-tls.crt");
    assert!(cert.exists() && dir.path().join("desk-tls.key").exists());
    assert!(
        d.second_line.contains("SHA-256 fingerprint") && d.second_line.contains("(made now)"),
        "{}",
        d.second_line
    );
    let port = d.addr.rsplit(':').next().unwrap().to_string();
    // Clear text gets no page.
    let (st, _) = http(&d.addr, "GET", &format!("/?token={}", d.token), &[], None);
    assert_ne!(st, 200);
    assert_ne!(st, 303);
    // The page's own name: the token moves into a Secure cookie.
    let r = tls_get(
        &d.addr,
        &cert,
        "desk.test",
        &format!("desk.test:{port}"),
        &format!("/?token={}", d.token),
    );
    assert!(r.starts_with("HTTP/1.1 303"), "{r}");
    let cookie = r
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // A rebound DNS name, even with the token: refused.
    let r = tls_get(
        &d.addr,
        &cert,
        "desk.test",
        &format!("evil.example:{port}"),
        &format!("/?token={}", d.token),
    );
    assert!(r.starts_with("HTTP/1.1 421"), "{r}");
}
