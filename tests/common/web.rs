//! A few plain HTTP/1.1 calls over a `TcpStream` (no async runtime): the desk's tests speak
//! to the desk and to chromedriver with them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 request; the status and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).unwrap();
    // Headers, then the body by its Content-Length, chunks, or up to the end of the stream
    // (a server may keep the connection open after a sized reply).
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head += &line;
    }
    let head = head.trim_end().to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut raw = Vec::new();
    if let Some(n) = length {
        raw.resize(n, 0);
        r.read_exact(&mut raw).unwrap();
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut len = String::new();
            r.read_line(&mut len).unwrap();
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            raw.extend_from_slice(&chunk[..n]);
        }
    } else {
        let _ = r.read_to_end(&mut raw);
    }
    let body = String::from_utf8_lossy(&raw).to_string();
    (status, format!("{head}\r\n\r\n{body}"))
}

pub fn body_of(reply: &str) -> &str {
    reply.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `facegate desk`'s arguments for `gallery` on the demo frames (played in a loop, 4 fps,
/// K = 3), listening on a free loopback port.
pub fn desk_args(gallery: &std::path::Path) -> Vec<String> {
    let frames = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/frames");
    [
        "desk",
        "--gallery",
        gallery.to_str().unwrap(),
        "--folder",
        frames.to_str().unwrap(),
        "--fps",
        "4",
        "--k",
        "3",
        "--listen",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec()
}

/// `facegate desk` started with [`desk_args`] and `extra`: the child, the first line it
/// printed (the page's address with the token) and, with TLS, the second (the certificate's
/// fingerprint; empty otherwise).
pub fn start_desk(
    gallery: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, String, String) {
    let mut child = super::facegate_cmd()
        .args(desk_args(gallery))
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut url, mut second) = (String::new(), String::new());
    out.read_line(&mut url).unwrap();
    if url.starts_with("https://") {
        out.read_line(&mut second).unwrap();
    }
    (child, url.trim().to_string(), second)
}
