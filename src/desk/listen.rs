//! The desk's listener: hyper's HTTP/1.1 on a one-thread tokio runtime (its own thread),
//! with the limits that keep one visitor, or one attacker on the same network, from taking
//! the page away from reception:
//!
//! - at most [`MAX_CONNECTIONS`] open connections; one more closes the oldest, so idle
//!   sockets can never lock the page out;
//! - the request line and headers at most [`MAX_HEAD`] bytes (hyper answers and closes);
//! - headers within [`HEAD_TIMEOUT`] of the connection or of the last reply (a slow drip, an
//!   idle keep-alive, a stalled TLS handshake are closed), a body within [`BODY_TIMEOUT`];
//! - a body is refused by its `Content-Length` before any of it is read, and never read
//!   past [`super::http::MAX_BODY`];
//! - handlers run on tokio's blocking pool (they take the desk's mutexes and the gallery's
//!   file lock), so a slow one never holds up another request.
//!
//! With TLS ([`super::tls`]) every connection is TLS; nothing is served in clear text.

use super::http::{self, Head, Reply, MAX_BODY};
use super::state::Shared;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Open connections at most; one more closes the oldest.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request line plus headers, bytes.
pub const MAX_HEAD: usize = 16 << 10;
/// Time for a request's headers (and for a TLS handshake).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a request's body once its headers are in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

type Open = Arc<Mutex<VecDeque<(u64, tokio::task::AbortHandle)>>>;

/// Serves `listener` on a new thread until `stop` is set.
pub(super) fn spawn(
    listener: std::net::TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("desk-http".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        log::error!("desk: cannot listen: {e}");
                        return;
                    }
                };
                accept_loop(
                    listener,
                    tls.map(tokio_rustls::TlsAcceptor::from),
                    shared,
                    stop,
                )
                .await
            });
        })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) {
    let open: Open = Arc::default();
    let mut next_id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Wake up now and then to see the stop flag.
        let accepted =
            match tokio::time::timeout(Duration::from_millis(200), listener.accept()).await {
                Err(_) => continue,
                Ok(Err(e)) => {
                    log::warn!("desk: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Ok(Ok((stream, _))) => stream,
            };
        let _ = accepted.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        {
            let mut list = open.lock().unwrap_or_else(|p| p.into_inner());
            list.retain(|(_, h)| !h.is_finished());
            while list.len() >= MAX_CONNECTIONS {
                if let Some((_, oldest)) = list.pop_front() {
                    oldest.abort();
                }
            }
        }
        let (tls, shared, open2) = (tls.clone(), shared.clone(), open.clone());
        let task = tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(accepted)).await {
                        Ok(Ok(s)) => serve(TokioIo::new(s), shared).await,
                        Ok(Err(e)) => log::debug!("desk: TLS handshake: {e}"),
                        Err(_) => log::debug!("desk: TLS handshake timed out"),
                    }
                }
                None => serve(TokioIo::new(accepted), shared).await,
            }
            let mut list = open2.lock().unwrap_or_else(|p| p.into_inner());
            list.retain(|(i, _)| *i != id);
        });
        open.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((id, task.abort_handle()));
    }
    for (_, h) in open.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        h.abort();
    }
}

/// One connection: HTTP/1.1 with the limits above.
async fn serve<I>(io: I, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| answer(shared.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true)
        .serve_connection(io, svc);
    if let Err(e) = conn.await {
        log::debug!("desk: connection: {e}");
    }
}

async fn answer(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let head = Head {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        content_length: parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse().ok()),
    };
    match http::check(&shared, &head) {
        // Refused before a byte of the body is read; the connection is closed rather than
        // drained.
        Err(reply) => return Ok(response(reply, true)),
        Ok(Some(reply)) => return Ok(response(reply, false)),
        Ok(None) => {}
    }
    let bytes = if head.method == "POST" {
        match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => {
                return Ok(response(
                    Reply::error(413, "request body too large or broken"),
                    true,
                ))
            }
            Err(_) => {
                return Ok(response(
                    Reply::error(408, "the request body did not arrive in time"),
                    true,
                ))
            }
        }
    } else {
        Bytes::new()
    };
    let reply = tokio::task::spawn_blocking(move || http::route(&shared, &head, &bytes))
        .await
        .unwrap_or_else(|_| Reply::error(500, "the request failed"));
    Ok(response(reply, false))
}

fn response(reply: Reply, close: bool) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(reply.status);
    for (k, v) in reply.headers() {
        r = r.header(k, v);
    }
    if close {
        r = r.header(hyper::header::CONNECTION, "close");
    }
    r.body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| {
            let mut fallback = Response::new(Full::new(Bytes::from_static(b"internal error")));
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}
