//! The desk's requests and replies, whatever carries them ([`super::listen`]): every request
//! must carry the token; every change is a POST whose token is in the `X-Facegate-Token`
//! header (a page on another site can neither read the token nor send that header without a
//! CORS preflight, which is refused), with a JSON body of at most [`MAX_BODY`] bytes, and a
//! `Host` header naming this server (against DNS rebinding: with `--allow-remote`, exactly
//! one of the names given with `--allow-host`). The first visit's `?token=` is moved into a
//! cookie (`HttpOnly`, `SameSite=Strict`, and `Secure` over TLS) and the browser sent back to
//! `/`, so the token is not in every URL; the page's own script sends it in the header.
//! Every response carries a Content-Security-Policy that allows only this server's own
//! script and style, no inline code.

use super::state::{change_gallery, lock, EnrollStatus, Job, Shared};
use crate::desk::health;
use crate::error::Error;
use crate::identity::gallery::Gallery;
use crate::identity::identify::{identify_on_reference, MatchPolicy, DEFAULT_MIN_MARGIN};
use crate::identity::threshold::DEFAULT_TARGET_FPIR;
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

/// What the desk needs of a request before its body is read.
pub(super) struct Head {
    /// `GET`, `POST`, ...
    pub(super) method: String,
    /// The path, without the query.
    pub(super) path: String,
    /// The query, without the `?`.
    pub(super) query: String,
    /// The headers, names in lower case.
    pub(super) headers: Vec<(String, String)>,
    /// The declared body length (`None`: none declared).
    pub(super) content_length: Option<u64>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query_token(&self) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| v)
    }

    /// The value of cookie `name`, from every `Cookie` header.
    fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// An answer.
pub(super) struct Reply {
    /// HTTP status.
    pub(super) status: u16,
    /// Its Content-Type.
    pub(super) content_type: &'static str,
    /// Headers beyond the fixed ones (`Set-Cookie`, `Location`).
    pub(super) extra: Vec<(&'static str, String)>,
    /// The body.
    pub(super) body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            extra: Vec::new(),
            body: v.to_string().into_bytes(),
        }
    }
    pub(super) fn error(status: u16, why: &str) -> Reply {
        Reply::json(status, &json!({ "error": why }))
    }

    /// The headers every reply carries, then the reply's own.
    pub(super) fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h: Vec<(&'static str, String)> = vec![
            ("Content-Type", self.content_type.to_string()),
            ("Content-Security-Policy", CSP.to_string()),
            ("X-Content-Type-Options", "nosniff".into()),
            ("X-Frame-Options", "DENY".into()),
            ("Referrer-Policy", "no-referrer".into()),
            ("Cache-Control", "no-store".into()),
        ];
        h.extend(self.extra.iter().cloned());
        h
    }
}

/// The cookie that carries the token after the first visit (one per port: two desks on one
/// host do not overwrite each other's).
fn cookie_name(shared: &Shared) -> String {
    format!("facegate_desk_{}", shared.port)
}

/// The `Host` header names this server: a loopback name with its port, the address it
/// listens on, or (with `--allow-remote`) exactly one of the `--allow-host` names with the
/// port. Nothing else: a rebound DNS name pointing at this machine is refused.
fn host_ok(shared: &Shared, head: &Head) -> bool {
    let Some(host) = head.header("host") else {
        return false;
    };
    let port = shared.port;
    let listen = shared.opts.listen;
    let mut allowed = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("{}:{port}", listen.ip()),
    ];
    if shared.opts.allow_remote {
        for h in &shared.opts.allowed_hosts {
            allowed.push(format!("{h}:{port}"));
        }
    }
    allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
}

/// What can be decided from the request line and headers alone, before any of the body is
/// read: `Err` with the reply when the request is refused (wrong host, no token, a body that
/// is not JSON or too large), or the reply itself when no body is needed (the first visit's
/// redirect).
pub(super) fn check(shared: &Shared, head: &Head) -> Result<Option<Reply>, Reply> {
    if !host_ok(shared, head) {
        return Err(Reply::error(421, "wrong Host header"));
    }
    let token = &shared.opts.token;
    match head.method.as_str() {
        "GET" => {
            if let Some(given) = head.query_token() {
                if !token.matches(given) {
                    return Err(Reply::error(401, "missing or wrong token"));
                }
                if head.path == "/" {
                    // The token leaves the URL (history, screen, a photo of the screen) for a
                    // cookie only this server gets.
                    let secure = if shared.tls { "; Secure" } else { "" };
                    return Ok(Some(Reply {
                        status: 303,
                        content_type: "text/plain; charset=utf-8",
                        extra: vec![
                            ("Location", "/".into()),
                            (
                                "Set-Cookie",
                                format!(
                                    "{}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
                                    cookie_name(shared),
                                    token.as_str()
                                ),
                            ),
                        ],
                        body: b"see /".to_vec(),
                    }));
                }
                return Ok(None);
            }
            let given = head
                .header("x-facegate-token")
                .or_else(|| head.cookie(&cookie_name(shared)))
                .unwrap_or("");
            if !token.matches(given) {
                return Err(Reply::error(401, "missing or wrong token"));
            }
            Ok(None)
        }
        "POST" => {
            // The token only in the header: a form or link from another page cannot set it,
            // and the cookie alone is not enough.
            if !token.matches(head.header("x-facegate-token").unwrap_or("")) {
                return Err(Reply::error(401, "missing or wrong token"));
            }
            if !head
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
            {
                return Err(Reply::error(415, "the body must be application/json"));
            }
            if head.content_length.is_none_or(|n| n > MAX_BODY as u64) {
                return Err(Reply::error(413, "request body missing or too large"));
            }
            Ok(None)
        }
        _ => Err(Reply::error(405, "only GET and POST")),
    }
}

/// Answers a request that passed [`check`], with its `body` (at most [`MAX_BODY`] bytes,
/// read by the caller).
pub(super) fn route(shared: &Shared, head: &Head, body: &[u8]) -> Reply {
    match head.method.as_str() {
        "POST" => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return Reply::error(400, "the body is not JSON");
            };
            post(shared, &head.path, &v)
        }
        _ => get(shared, &head.path),
    }
}

fn get(shared: &Shared, path: &str) -> Reply {
    let page = |ct: &'static str, body: &str| Reply {
        status: 200,
        content_type: ct,
        extra: Vec::new(),
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
                extra: Vec::new(),
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
                    "samples": shared.samples.status(),
                }),
            )
        }
        "/api/people" => {
            // Lenient: a person whose name breaks the rule (an older file) is listed, so that
            // the desk can rename or remove them.
            let path = &shared.opts.gallery;
            let loaded = match std::fs::symlink_metadata(path) {
                Ok(_) => Gallery::load_lenient(path),
                Err(_) => Ok(Gallery::new(shared.model.clone())),
            };
            match loaded {
                Ok(g) => Reply::json(
                    200,
                    &json!({
                        "model": g.model,
                        "people": g.people().iter().map(|p| json!({
                            "id": p.id, "name": p.name, "templates": p.templates.len(),
                            "created": p.created, "model": g.model,
                            "valid_from": p.access.valid_from.map(crate::identity::access::stamp),
                            "valid_until": p.access.valid_until.map(crate::identity::access::stamp),
                            "groups": p.access.groups,
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
            let people = Gallery::load_or_new(&shared.opts.gallery, &shared.model, shared.dim)
                .map(|g| g.people().len())
                .unwrap_or(0);
            let threshold = MatchPolicy::open_set(
                people,
                DEFAULT_TARGET_FPIR,
                shared.opts.threshold,
                DEFAULT_MIN_MARGIN,
            )
            .threshold;
            let Some(audit) = &shared.opts.audit else {
                return Reply::json(200, &json!({ "audit": null, "threshold": threshold }));
            };
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
            if job.is_some() || lock(&shared.status).state == "saving" {
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
        "/api/people/access" => {
            let name = match existing_name_field(v, "name") {
                Ok(n) => n,
                Err(r) => return r,
            };
            let time = |key: &str| -> std::result::Result<Option<i64>, Reply> {
                match v.get(key).and_then(|t| t.as_str()).unwrap_or("") {
                    "" => Ok(None),
                    t => crate::identity::access::parse_stamp(t)
                        .map(Some)
                        .map_err(|e| Reply::error(400, &format!("{key}: {e}"))),
                }
            };
            let (from, until) = match (time("valid_from"), time("valid_until")) {
                (Ok(f), Ok(u)) => (f, u),
                (Err(r), _) | (_, Err(r)) => return r,
            };
            let groups: Vec<String> = v
                .get("groups")
                .and_then(|g| g.as_str())
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect();
            let access = crate::identity::access::PersonRules {
                valid_from: from,
                valid_until: until,
                groups,
            };
            change_gallery(shared, |g| g.set_access(&name, access.clone()))
                .map(|_| json!({"name": name, "access": access}))
        }
        "/api/samples/record" => {
            let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            let frames = v.get("frames").and_then(|k| k.as_u64()).unwrap_or(0) as usize;
            shared
                .samples
                .start_recording(kind, frames)
                .map(|_| json!({"recording": kind, "frames": frames}))
        }
        "/api/samples/evaluate" | "/api/samples/apply" => {
            let Some(t) = v.get("threshold").and_then(|t| t.as_f64()) else {
                return Reply::error(400, "threshold: a number is needed");
            };
            let t = t as f32;
            if path.ends_with("evaluate") {
                shared
                    .samples
                    .start_evaluation(t)
                    .map(|_| json!({"evaluating": true}))
            } else {
                shared
                    .samples
                    .apply_threshold(t)
                    .map(|p| json!({"written": p, "texture_threshold": t}))
            }
        }
        "/api/identify" => {
            let probe = lock(&shared.live).probe.clone();
            let Some(probe) = probe else {
                return Reply::json(200, &json!({"face": false}));
            };
            Gallery::load_or_new(&shared.opts.gallery, &shared.model, shared.dim).map(|g| {
                // As the door decides: distances on the reference scale, the same policy.
                let policy = MatchPolicy::open_set(
                    g.people().len(),
                    DEFAULT_TARGET_FPIR,
                    shared.opts.threshold,
                    DEFAULT_MIN_MARGIN,
                );
                let id = identify_on_reference(&g, &probe, &shared.opts.curve, policy);
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
