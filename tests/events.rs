//! `facegate events` against a real broker (Debian's mosquitto, started here on a free
//! loopback port): the audit log's decisions arrive in order, none lost or repeated by id
//! across a broker restart and a SIGKILL of the shipper; Home Assistant discovery; a wrong
//! password is a clear error.

mod common;

use facegate::kiosk::audit::{now_secs, AuditLog};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "door";
const PASSWORD: &str = "s3cret-for-the-test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn need(tool: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is not installed (Debian: mosquitto, mosquitto-clients; .ci/run installs them)"
    );
}

struct Broker {
    child: Child,
    port: u16,
    conf: PathBuf,
}

impl Broker {
    /// mosquitto on `port` with a password file and persistence in `dir`.
    fn start(dir: &Path, port: u16) -> Broker {
        need("mosquitto");
        let pw = dir.join("passwd");
        if !pw.exists() {
            let st = Command::new("mosquitto_passwd")
                .args(["-b", "-c"])
                .arg(&pw)
                .args([USER, PASSWORD])
                .status()
                .unwrap();
            assert!(st.success());
        }
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence true\npersistence_location {}/\n{}",
                pw.display(),
                dir.display(),
                // As root mosquitto would switch to its own user, who cannot read the
                // test's folder.
                if unsafe { libc::geteuid() } == 0 { "user root\n" } else { "" }
            ),
        )
        .unwrap();
        Broker::run(conf, port)
    }

    fn run(conf: PathBuf, port: u16) -> Broker {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, port, conf }
    }

    /// SIGTERM (mosquitto saves its sessions) and wait.
    fn stop(mut self) -> (PathBuf, u16) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap();
        (self.conf.clone(), self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mosquitto_sub` on `facegate/#` and `homeassistant/#` with a persistent session (QoS 1):
/// lines `receive-time topic payload` into a file.
struct Subscriber {
    child: Child,
    out: PathBuf,
}

impl Subscriber {
    fn start(port: u16, out: &Path) -> Subscriber {
        need("mosquitto_sub");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .unwrap();
        let child = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-u",
                USER,
                "-P",
                PASSWORD,
            ])
            .args(["-i", "test-subscriber", "-c", "-q", "1"])
            .args([
                "-t",
                "facegate/#",
                "-t",
                "homeassistant/#",
                "-F",
                "%U %t %p",
            ])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Subscriber {
            child,
            out: out.to_path_buf(),
        };
        subscribed(port, true, out);
        s
    }

    /// `(receive time, topic, payload)` of every line so far.
    fn lines(&self) -> Vec<(f64, String, serde_json::Value)> {
        let Ok(f) = std::fs::File::open(&self.out) else {
            return Vec::new();
        };
        BufReader::new(f)
            .lines()
            .map_while(|l| l.ok())
            .filter_map(|l| {
                let mut it = l.splitn(3, ' ');
                let t = it.next()?.parse().ok()?;
                let topic = it.next()?.to_string();
                let payload = serde_json::from_str(it.next()?).ok()?;
                Some((t, topic, payload))
            })
            .collect()
    }

    /// The decisions received, first appearance of each id, in order.
    fn decisions(&self) -> (Vec<serde_json::Value>, usize) {
        let all: Vec<serde_json::Value> = self
            .lines()
            .into_iter()
            .filter(|(_, t, _)| t == "facegate/front/decision")
            .map(|(_, _, p)| p)
            .collect();
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<_> = all
            .iter()
            .filter(|p| seen.insert(p["id"].as_str().unwrap_or("").to_string()))
            .cloned()
            .collect();
        let repeats = all.len() - firsts.len();
        (firsts, repeats)
    }

    fn wait_for(&self, n: usize, what: &str) {
        let t = Instant::now();
        while self.decisions().0.len() < n {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{what}: {} of {n} decisions arrived",
                self.decisions().0.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Waits until the subscriber writing `out` receives a probe published on `facegate/probe`
/// (with the test's login when `login`): from then on it misses nothing.
fn subscribed(port: u16, login: bool, out: &Path) {
    let t = Instant::now();
    for n in 0.. {
        let mut pubc = Command::new("mosquitto_pub");
        pubc.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"]);
        if login {
            pubc.args(["-u", USER, "-P", PASSWORD]);
        }
        let _ = pubc
            .args(["-t", "facegate/probe", "-m", &format!("{{\"probe\":{n}}}")])
            .status();
        std::thread::sleep(Duration::from_millis(100));
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if text.lines().any(|l| l.contains("facegate/probe")) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the subscriber never subscribed"
        );
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A door config in `dir` (audit log of 4 KiB files, 3 kept) whose `[events]` section is
/// `events`.
fn door_config(dir: &Path, events: &str) -> PathBuf {
    let conf = dir.join("facegate.toml");
    std::fs::write(
        &conf,
        format!(
            "[recognition]\nthreshold = 0.55\n[source]\nkind = \"folder\"\npath = \"frames\"\n\
             [door]\nid = \"front\"\nkind = \"simulated\"\n[gallery]\npath = \"g.toml\"\n\
             [audit]\npath = \"audit.jsonl\"\nmax_bytes = 4096\nkeep = 3\n\
             [events]\n{events}journal = false\nstate_dir = \"events-state\"\n"
        ),
    )
    .unwrap();
    conf
}

/// [`door_config`] for the test broker on `port`, logging in with `password`.
fn login_config(dir: &Path, port: u16, password: &str) -> PathBuf {
    std::fs::write(dir.join("pw"), format!("{password}\n")).unwrap();
    door_config(
        dir,
        &format!(
            "mqtt = \"mqtt://127.0.0.1:{port}\"\nusername = \"{USER}\"\npassword_file = \"pw\"\n"
        ),
    )
}

fn shipper(conf: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_facegate"))
        .args(["events", "--config"])
        .arg(conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A decision as the kiosk writes it (`src/kiosk/runtime.rs`), numbered.
fn decide(log: &mut AuditLog, n: usize) {
    let r = match n % 3 {
        0 => {
            serde_json::json!({"time": now_secs(), "decision": "grant", "person": format!("p{n}"), "distance": 0.3, "margin": 0.2, "frames": 3})
        }
        1 => {
            serde_json::json!({"time": now_secs(), "decision": "deny", "person": format!("p{n}"), "reason": "outside its schedule"})
        }
        _ => {
            serde_json::json!({"time": now_secs(), "decision": "deny", "person": null, "reason": "unknown face"})
        }
    };
    log.write(r).unwrap();
}

#[test]
fn decisions_arrive_in_order_through_a_broker_restart_and_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = Broker::start(dir.path(), port);
    let sub = Subscriber::start(port, &dir.path().join("received"));
    let conf = login_config(dir.path(), port, PASSWORD);
    // The audit log as the door opens it (4 KiB, 3 kept: it rotates during the test).
    let mut log = AuditLog::open(&dir.path().join("audit.jsonl"), 4096, 3).unwrap();
    let mut events = shipper(&conf);
    std::thread::sleep(Duration::from_millis(500));
    let mut n = 0;

    // 1. 100 decisions, one at a time: each arrives; the latency from the audit write.
    let mut latency = Vec::new();
    for _ in 0..100 {
        decide(&mut log, n);
        n += 1;
        sub.wait_for(n, "steady");
        let (t, _, p) = sub
            .lines()
            .into_iter()
            .rfind(|(_, t, _)| t == "facegate/front/decision")
            .unwrap();
        latency.push(t - p["time"].as_f64().unwrap());
    }
    latency.sort_by(f64::total_cmp);
    eprintln!(
        "audit write → subscriber: median {:.1} ms, max {:.1} ms over {} decisions",
        latency[latency.len() / 2] * 1e3,
        latency[latency.len() - 1] * 1e3,
        latency.len()
    );

    // 2. The broker down while 30 decisions are made, then up again.
    drop(sub);
    let (bconf, bport) = broker.stop();
    for _ in 0..30 {
        decide(&mut log, n);
        n += 1;
    }
    std::thread::sleep(Duration::from_secs(1));
    let broker = Broker::run(bconf, bport);
    let sub = Subscriber::start(port, &dir.path().join("received"));
    sub.wait_for(n, "after the broker's restart");

    // 3. 60 decisions written at once, the shipper killed (SIGKILL) mid-way and restarted.
    for _ in 0..60 {
        decide(&mut log, n);
        n += 1;
    }
    let t = Instant::now();
    while sub.decisions().0.len() < n - 50 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
    }
    events.kill().unwrap();
    events.wait().unwrap();
    let before = sub.decisions().0.len();
    assert!(
        before < n,
        "all {n} arrived before the kill: the kill tested nothing"
    );
    let mut events = shipper(&conf);
    sub.wait_for(n, "after the kill");

    // Exactly the audit's decisions, in order, none lost; repeats only by id.
    let (got, repeats) = sub.decisions();
    let persons: Vec<Option<String>> = got
        .iter()
        .map(|p| p["person"].as_str().map(String::from))
        .collect();
    let want: Vec<Option<String>> = (0..n)
        .map(|i| (i % 3 != 2).then(|| format!("p{i}")))
        .collect();
    assert_eq!(persons, want);
    let kinds: Vec<&str> = got
        .iter()
        .map(|p| p["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(&kinds[..3], ["granted", "denied", "unknown"]);
    assert!(got
        .iter()
        .all(|p| p["door"] == "front" && p.get("embedding").is_none()));
    eprintln!("{n} decisions, {repeats} repeated by id after the kill (at-least-once), {before} before it");
    assert!(
        repeats <= 1,
        "{repeats} repeats: more than the one in flight at the kill"
    );

    // Discovery: an event entity and sensors, retained, with Home Assistant's keys.
    let lines = sub.lines();
    let config = |topic: &str| {
        lines
            .iter()
            .rfind(|(_, t, _)| t == topic)
            .map(|(_, _, p)| p.clone())
            .unwrap_or_else(|| panic!("no discovery message on {topic}"))
    };
    let event = config("homeassistant/event/facegate_front/decision/config");
    assert_eq!(
        event["event_types"],
        serde_json::json!(["granted", "denied", "unknown"])
    );
    assert_eq!(event["state_topic"], "facegate/front/decision");
    for (topic, kind) in [
        (
            "homeassistant/event/facegate_front/decision/config",
            "event",
        ),
        (
            "homeassistant/sensor/facegate_front/last_person/config",
            "sensor",
        ),
        (
            "homeassistant/sensor/facegate_front/enrolled/config",
            "sensor",
        ),
        (
            "homeassistant/binary_sensor/facegate_front/gallery_refused/config",
            "binary_sensor",
        ),
        (
            "homeassistant/binary_sensor/facegate_front/drift/config",
            "binary_sensor",
        ),
    ] {
        check_discovery(&config(topic), kind);
    }
    let state = config("facegate/front/state");
    assert_eq!(state["availability"], "online");

    // A clean stop says offline (retained).
    unsafe { libc::kill(events.id() as i32, libc::SIGTERM) };
    let st = events.wait().unwrap();
    assert!(st.success(), "events exited with {st}");
    let t = Instant::now();
    while config_last(&sub, "facegate/front/state")["availability"] != "offline" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no offline state after the stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(broker);
}

fn config_last(sub: &Subscriber, topic: &str) -> serde_json::Value {
    sub.lines()
        .into_iter()
        .rfind(|(_, t, _)| t == topic)
        .map(|(_, _, p)| p)
        .unwrap_or_default()
}

/// The keys Home Assistant's MQTT integration documents for each platform (full names, no
/// abbreviations), and the ones it requires.
fn check_discovery(c: &serde_json::Value, kind: &str) {
    let common = [
        "name",
        "unique_id",
        "object_id",
        "device",
        "availability_topic",
        "availability_template",
        "payload_available",
        "payload_not_available",
        "state_topic",
        "value_template",
        "json_attributes_topic",
        "json_attributes_template",
        "icon",
    ];
    let own: &[&str] = match kind {
        "event" => &["event_types", "device_class"],
        "sensor" => &["state_class", "unit_of_measurement", "device_class"],
        "binary_sensor" => &["device_class", "payload_on", "payload_off"],
        _ => unreachable!(),
    };
    let o = c.as_object().unwrap();
    for k in o.keys() {
        assert!(
            common.contains(&k.as_str()) || own.contains(&k.as_str()),
            "{kind}: {k} is not a documented key"
        );
    }
    assert!(o["state_topic"]
        .as_str()
        .is_some_and(|t| !t.contains(['+', '#'])));
    assert!(o["unique_id"].as_str().is_some());
    assert!(o["device"]["identifiers"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    if kind == "event" {
        assert!(o["event_types"].as_array().is_some_and(|a| !a.is_empty()));
    }
    if kind == "binary_sensor" {
        // Its template gives the default payload_on / payload_off.
        assert!(o["value_template"].as_str().unwrap().contains("'ON'"));
    }
}

#[test]
fn a_wrong_password_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port);
    let conf = login_config(dir.path(), port, "not-the-password");
    let mut log = AuditLog::open(&dir.path().join("audit.jsonl"), 4096, 3).unwrap();
    let events = shipper(&conf);
    decide(&mut log, 0);
    let out = events.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refused the login") && err.contains("password_file"),
        "{err}"
    );
    // The door's log is untouched and still written.
    decide(&mut log, 1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("audit.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}

/// The kiosk on the demo frames writes its audit log; `facegate events` ships exactly its
/// decisions, in order.
#[test]
fn the_kiosks_own_decisions_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = free_port();
    let _broker = Broker::start(dir.path(), port);
    let sub = Subscriber::start(port, &dir.path().join("received"));
    std::fs::write(dir.path().join("pw"), format!("{PASSWORD}\n")).unwrap();
    let config = common::demo_config_text()
        .replace("[door]\n", "[door]\nid = \"front\"\n")
        + &format!(
            "\n[events]\nmqtt = \"mqtt://127.0.0.1:{port}\"\nusername = \"{USER}\"\npassword_file = \"pw\"\njournal = false\n"
        );
    let cfg = dir.path().join("demo.toml");
    std::fs::write(&cfg, config).unwrap();
    // The shipper first: the log does not exist yet, so it sends it from its start.
    let mut events = shipper(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--enroll-first")
        .arg("Astronaut")
        .arg(root.join("config/demo/enroll_astronaut.jpg"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("state/audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|r: &serde_json::Value| r.get("decision").is_some())
            .collect();
    assert!(
        audit
            .iter()
            .any(|r| r["decision"] == "grant" && r["person"] == "Astronaut"),
        "the demo granted nobody: {audit:?}"
    );
    sub.wait_for(audit.len(), "the demo's decisions");
    let (got, _) = sub.decisions();
    assert_eq!(got.len(), audit.len());
    for (g, a) in got.iter().zip(&audit) {
        for key in ["time", "decision", "person", "reason", "distance"] {
            assert_eq!(g.get(key), a.get(key), "{key}");
        }
    }
    let _ = events.kill();
    let _ = events.wait();
}

/// `mqtts` to a broker whose certificate a test CA signed, trusted through `[events] ca`.
#[test]
fn tls_with_the_sites_own_ca() {
    need("openssl");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(d)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    ssl(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=facegate test CA",
        ],
    ]
    .concat());
    ssl(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    ssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    let (plain, tls) = (free_port(), free_port());
    let conf = d.join("mosquitto.conf");
    let root_user = if unsafe { libc::geteuid() } == 0 {
        "user root\n"
    } else {
        ""
    };
    let d_ = d.display();
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous true\n{root_user}\
             listener {plain} 127.0.0.1\nlistener {tls} 127.0.0.1\n\
             cafile {d_}/ca.pem\ncertfile {d_}/server.pem\nkeyfile {d_}/server.key\n"
        ),
    )
    .unwrap();
    need("mosquitto");
    let _broker = Broker::run(conf, tls);
    let received = d.join("received");
    let sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &plain.to_string(),
            "-t",
            "facegate/#",
            "-F",
            "%t %p",
        ])
        .stdout(std::fs::File::create(&received).unwrap())
        .spawn()
        .unwrap();
    subscribed(plain, false, &received);
    let cfg = door_config(
        d,
        &format!("mqtt = \"mqtts://127.0.0.1:{tls}\"\nca = \"ca.pem\"\n"),
    );
    let mut log = AuditLog::open(&d.join("audit.jsonl"), 4096, 3).unwrap();
    let mut events = shipper(&cfg);
    std::thread::sleep(Duration::from_millis(300));
    decide(&mut log, 0);
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(&received).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.starts_with("facegate/front/decision ") && l.contains("\"p0\""))
        {
            break;
        }
        if let Ok(Some(st)) = events.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            events
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("events exited ({st}): {err}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "nothing over TLS: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = events.kill();
    let _ = events.wait();
    let mut sub = sub;
    let _ = sub.kill();
    let _ = sub.wait();
}
