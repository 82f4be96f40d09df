//! The desk's HTTP side: every request must carry the token; every change is a POST whose
//! token is in the `X-Facegate-Token` header (a page on another site can neither read the
//! token nor send that header without a CORS preflight, which is refused), with a JSON body
//! of at most [`MAX_BODY`] bytes, and a `Host` header naming this server (against DNS
//! rebinding). Every response carries a Content-Security-Policy that allows only this
//! server's own script and style, no inline code.

use super::server::{change_gallery, lock, EnrollStatus, Job, Shared};
use crate::desk::health;
use crate::error::Error;
use crate::identity::gallery::Gallery;
use crate::identity::identify::{identify, MatchPolicy, DEFAULT_MIN_MARGIN};
use crate::identity::threshold::{open_set_threshold, DEFAULT_TARGET_FPIR};
use serde_json::{json, Value};

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 4096;
/// Longest person name accepted, in characters.
pub const MAX_NAME: usize = crate::identity::names::MAX_NAME_CHARS;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
        }
    }
    fn error(status: u16, why: &str) -> Reply {
        Reply::json(status, &json!({ "error": why }))
    }
}

/// Answers one request.
pub(super) fn handle(shared: &Shared, mut req: tiny_http::Request) {
    let reply = route(shared, &mut req);
    let mut resp = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    for (k, v) in [
        ("Content-Type", reply.content_type),
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    ] {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    if let Err(e) = req.respond(resp) {
        log::debug!("desk: reply not sent: {e}");
    }
}

fn header<'a>(req: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn query_token(url: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_string())
}

/// The `Host` header names this server: its address, or `localhost` with its port.
fn host_ok(shared: &Shared, req: &tiny_http::Request, port: u16) -> bool {
    let Some(host) = header(req, "Host") else {
        return false;
    };
    let listen = shared.opts.listen;
    let allowed = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("{}:{port}", listen.ip()),
    ];
    allowed.iter().any(|a| a == host)
        || (shared.opts.allow_remote && host.ends_with(&format!(":{port}")))
}

fn route(shared: &Shared, req: &mut tiny_http::Request) -> Reply {
    if !host_ok(shared, req, shared.port) {
        return Reply::error(421, "wrong Host header");
    }
    let url = req.url().to_string();
    let path = url.split('?').next().unwrap_or("").to_string();
    let method = req.method().clone();
    let token = &shared.opts.token;
    match method {
        tiny_http::Method::Get => {
            let given = query_token(&url)
                .or_else(|| header(req, "X-Facegate-Token").map(String::from))
                .unwrap_or_default();
            if !token.matches(&given) {
                return Reply::error(401, "missing or wrong token");
            }
            get(shared, &path)
        }
        tiny_http::Method::Post => {
            // The token only in the header: a form or link from another page cannot set it.
            if !token.matches(header(req, "X-Facegate-Token").unwrap_or("")) {
                return Reply::error(401, "missing or wrong token");
            }
            if !header(req, "Content-Type").is_some_and(|c| c.starts_with("application/json")) {
                return Reply::error(415, "the body must be application/json");
            }
            if req.body_length().is_none_or(|n| n > MAX_BODY) {
                return Reply::error(413, "request body missing or too large");
            }
            let mut body = Vec::new();
            use std::io::Read;
            if req
                .as_reader()
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut body)
                .is_err()
                || body.len() > MAX_BODY
            {
                return Reply::error(413, "request body too large");
            }
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return Reply::error(400, "the body is not JSON");
            };
            post(shared, &path, &v)
        }
        _ => Reply::error(405, "only GET and POST"),
    }
}

fn get(shared: &Shared, path: &str) -> Reply {
    let page = |ct: &'static str, body: &str| Reply {
        status: 200,
        content_type: ct,
        body: body.as_bytes().to_vec(),
    };
    match path {
        "/" => page(
            "text/html; charset=utf-8",
            &INDEX_HTML.replace("{{TOKEN}}", shared.opts.token.as_str()),
        ),
        "/app.js" => page("text/javascript; charset=utf-8", APP_JS),
        "/style.css" => page("text/css; charset=utf-8", STYLE_CSS),
        "/api/frame.jpg" => {
            let live = lock(&shared.live);
            if live.jpeg.is_empty() {
                return Reply::error(503, "no frame yet");
            }
            Reply {
                status: 200,
                content_type: "image/jpeg",
                body: live.jpeg.clone(),
            }
        }
        "/api/live" => {
            let live = lock(&shared.live);
            let status = lock(&shared.status).clone();
            Reply::json(
                200,
                &json!({
                    "seq": live.seq, "width": live.width, "height": live.height,
                    "faces": live.faces, "verdict": live.verdict,
                    "source_error": live.source_error, "enroll": status,
                }),
            )
        }
        "/api/people" => {
            match Gallery::load_or_new(&shared.opts.gallery, &shared.model, shared.dim) {
                Ok(g) => Reply::json(
                    200,
                    &json!({
                        "model": g.model,
                        "people": g.people().iter().map(|p| json!({
                            "id": p.id, "name": p.name, "templates": p.templates.len(),
                            "created": p.created, "model": g.model,
                            // Templates of a newer network added on grants (the upgrade).
                            "migrated": p.migrated.iter()
                                .map(|m| json!({"model": m.model, "templates": m.templates.len()}))
                                .collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    }),
                ),
                Err(e) => Reply::error(500, &e.to_string()),
            }
        }
        "/api/health" => {
            let Some(audit) = &shared.opts.audit else {
                return Reply::json(200, &json!({ "audit": null }));
            };
            let people = Gallery::load_or_new(&shared.opts.gallery, &shared.model, shared.dim)
                .map(|g| g.people().len())
                .unwrap_or(0);
            let threshold = shared
                .opts
                .threshold
                .unwrap_or_else(|| open_set_threshold(people, DEFAULT_TARGET_FPIR));
            match health::read_log(audit) {
                Ok((records, skipped)) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0);
                    let h = health::health(&records, skipped, threshold, now);
                    Reply::json(200, &json!({ "audit": audit, "health": h }))
                }
                Err(e) => Reply::error(500, &e.to_string()),
            }
        }
        _ => Reply::error(404, "not found"),
    }
}

/// A new name from the page (to enroll, or to rename to): brought to Unicode NFC, then
/// held to the one name rule ([`crate::identity::names`]), the same as the command line's.
fn name_field(v: &Value, key: &str) -> std::result::Result<String, Reply> {
    let s = crate::identity::names::normalize(v.get(key).and_then(|s| s.as_str()).unwrap_or(""));
    crate::identity::names::check(&s).map_err(|why| Reply::error(400, &format!("{key}: {why}")))?;
    Ok(s)
}

/// An enrolled person's name from the page, exactly as stored (never trimmed or changed: a
/// name the page could not send back unchanged could not be removed).
fn existing_name_field(v: &Value, key: &str) -> std::result::Result<String, Reply> {
    match v.get(key).and_then(|s| s.as_str()) {
        Some(s) if !s.is_empty() && s.len() <= 1 << 16 => Ok(s.to_string()),
        _ => Err(Reply::error(400, &format!("{key}: a name is needed"))),
    }
}

fn post(shared: &Shared, path: &str, v: &Value) -> Reply {
    let result = match path {
        "/api/enroll" => {
            let name = match name_field(v, "name") {
                Ok(n) => n,
                Err(r) => return r,
            };
            match Gallery::load_or_new(&shared.opts.gallery, &shared.model, shared.dim) {
                Ok(g) if g.check_new_name(&name, None).is_err() => {
                    let why = g.check_new_name(&name, None).err().map(|e| e.to_string());
                    return Reply::error(409, &why.unwrap_or_default());
                }
                Err(e) => return Reply::error(500, &e.to_string()),
                Ok(_) => {}
            }
            let mut job = lock(&shared.job);
            if job.is_some() {
                return Reply::error(409, "an enrollment is already running");
            }
            *job = Some(Job {
                name: name.clone(),
                templates: Vec::new(),
                frames: Vec::new(),
            });
            *lock(&shared.status) = EnrollStatus {
                state: "running".into(),
                name,
                got: 0,
                needed: shared.opts.enroll.k,
                frames: 0,
                message: "look at the camera".into(),
            };
            Ok(json!({"started": true}))
        }
        "/api/enroll/cancel" => {
            let was = lock(&shared.job).take();
            let mut st = lock(&shared.status);
            if was.is_some() {
                st.state = "failed".into();
                st.message = "cancelled; nothing saved".into();
            }
            Ok(json!({"cancelled": was.is_some()}))
        }
        "/api/people/rename" => {
            let (old, new) = match (existing_name_field(v, "old"), name_field(v, "new")) {
                (Ok(o), Ok(n)) => (o, n),
                (Err(r), _) | (_, Err(r)) => return r,
            };
            change_gallery(shared, |g| g.rename(&old, &new))
                .map(|_| json!({"renamed": old, "to": new}))
        }
        "/api/people/remove" => {
            let name = match existing_name_field(v, "name") {
                Ok(n) => n,
                Err(r) => return r,
            };
            change_gallery(shared, |g| {
                if g.remove(&name) {
                    Ok(())
                } else {
                    Err(Error::Invalid(format!("{name:?} is not enrolled")))
                }
            })
            .map(|_| json!({"removed": name}))
        }
        "/api/identify" => {
            let probe = lock(&shared.live).probe.clone();
            let Some(probe) = probe else {
                return Reply::json(200, &json!({"face": false}));
            };
            Gallery::load_or_new(&shared.opts.gallery, &shared.model, shared.dim).map(|g| {
                let policy = MatchPolicy {
                    threshold: shared.opts.threshold.unwrap_or_else(|| {
                        open_set_threshold(g.people().len(), DEFAULT_TARGET_FPIR)
                    }),
                    min_margin: DEFAULT_MIN_MARGIN,
                };
                let id = identify(&g, &probe, policy);
                json!({"face": true, "result": id, "threshold": policy.threshold})
            })
        }
        _ => return Reply::error(404, "not found"),
    };
    match result {
        Ok(v) => Reply::json(200, &v),
        Err(e) => Reply::error(400, &e.to_string()),
    }
}
