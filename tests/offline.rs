//! The door process opens no network socket: `facegate run` on the demo under strace, with
//! systemd's notify socket set, may create only that one Unix datagram socket.

mod common;

use std::path::Path;

#[test]
fn the_kiosk_opens_no_socket_but_the_systemd_notify_datagram() {
    assert!(
        std::process::Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "strace is needed for this test (apt-get install strace; .ci/run installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = common::demo_config_text();
    let cfg = dir.path().join("demo.toml");
    std::fs::write(&cfg, config).unwrap();
    let notify = dir.path().join("notify");
    let server = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    let trace = dir.path().join("trace.txt");
    let out = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=socket,connect,bind,listen", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_facegate"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--enroll-first")
        .arg("Astronaut")
        .arg(root.join("config/demo/enroll_astronaut.jpg"))
        .env("NOTIFY_SOCKET", &notify)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 grant"));
    let mut buf = [0u8; 64];
    server.set_nonblocking(true).unwrap();
    let got = server
        .recv(&mut buf)
        .map(|n| buf[..n].to_vec())
        .unwrap_or_default();
    assert_eq!(got, b"READY=1", "the notify socket was used");
    let calls: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| {
            l.split_once(" ")
                .map_or(l, |x| x.1)
                .trim_start()
                .to_string()
        })
        .collect();
    let sockets: Vec<&String> = calls.iter().filter(|c| c.starts_with("socket(")).collect();
    assert!(
        !sockets.is_empty(),
        "strace saw no socket at all: {calls:?}"
    );
    // `???( <detached ...>` is strace's mark for a thread (the matmul pool's) that ended
    // while traced, not a call.
    for c in calls.iter().filter(|c| !c.contains("<detached ...>")) {
        assert!(
            c.starts_with("socket(AF_UNIX, SOCK_DGRAM"),
            "a socket call other than the notify datagram: {c}"
        );
    }
    // The second demo run: the gallery is there, so nobody is enrolled again, and it says
    // who was not (not "nobody enrolled", which read as an empty gallery).
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_facegate"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--enroll-first")
        .arg("Astronaut")
        .arg(root.join("config/demo/enroll_astronaut.jpg"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(
        err.contains("exists already: Astronaut is not enrolled again"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("1 grant"));
}
