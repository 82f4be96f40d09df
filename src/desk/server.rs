//! The desk's frame loop; what it shares with the HTTP side is in [`super::state`].
//!
//! Two threads: the frame loop (the caller's) reads the source, detects, checks the quality
//! gates, draws the preview, embeds the largest face and, while an enrollment runs, collects
//! its templates and saves the gallery; the HTTP thread ([`super::listen`]) answers the page
//! from what the loop last published (its rules are in [`super::http`]). No mutex is held
//! while waiting for the gallery's file lock: the page keeps answering while another program
//! changes the gallery.

use super::state::{change_gallery, lock, Job, Live, Shared};
pub use super::state::{DeskOptions, EnrollStatus, FaceView, GALLERY_LOCK_WAIT};
use crate::error::{Error, Result};
use crate::identity::enroll::{add_checked, frame_template};
use crate::recognition::frame::Frame;
use crate::recognition::pipeline::{largest, Recognizer};
use crate::recognition::quality::check;
use crate::recognition::source::FrameSource;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Frames an enrollment may look at before it gives up.
pub const ENROLL_MAX_FRAMES: usize = 300;

/// A bound desk: the address is known (and printed) before the loop starts.
pub struct Desk {
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Desk {
    /// Binds `opts.listen` (port 0 picks a free one). Refuses an address other than loopback
    /// unless `opts.allow_remote`.
    pub fn bind(opts: DeskOptions, rec: &Recognizer) -> Result<Desk> {
        if !opts.listen.ip().is_loopback() && !opts.allow_remote {
            return Err(Error::Invalid(format!(
                "--listen {} is not a loopback address: anyone on that network could reach the desk; \
                 add --allow-remote if that is what you want",
                opts.listen
            )));
        }
        if opts.allow_remote && (opts.tls.is_none() || opts.allowed_hosts.is_empty()) {
            return Err(Error::Invalid(
                "--allow-remote needs TLS (the token and names would cross the network in clear \
                 text) and the host names the page is reached by (--allow-host NAME, against \
                 DNS rebinding)"
                    .into(),
            ));
        }
        let listener = std::net::TcpListener::bind(opts.listen)
            .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", opts.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", opts.listen)))?;
        let status = EnrollStatus {
            state: "idle".into(),
            ..Default::default()
        };
        Ok(Desk {
            listener,
            shared: Arc::new(Shared {
                model: rec.model_id().to_string(),
                dim: rec.dim(),
                port: addr.port(),
                tls: opts.tls.is_some(),
                samples: super::samples::Samples::new(
                    opts.samples_dir.clone(),
                    opts.config.clone(),
                    opts.model_dir.clone(),
                ),
                opts,
                live: Mutex::new(Live::default()),
                status: Mutex::new(status),
                job: Mutex::new(None),
                gallery_write: Mutex::new(()),
            }),
            addr,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's address with the token (the first visit moves it into a cookie): https
    /// with TLS, and the first `--allow-host` name when reached from other machines.
    pub fn url(&self) -> String {
        let o = &self.shared.opts;
        let scheme = if o.tls.is_some() { "https" } else { "http" };
        let host = match o.allowed_hosts.first() {
            Some(h) if o.allow_remote => format!("{h}:{}", self.addr.port()),
            _ => self.addr.to_string(),
        };
        format!("{scheme}://{host}/?token={}", o.token.as_str())
    }

    /// Serves until `stop` is set (or the source ends): HTTP on a second thread, frames on
    /// this one.
    pub fn serve(
        self,
        rec: &mut Recognizer,
        source: &mut dyn FrameSource,
        stop: Arc<AtomicBool>,
    ) -> Result<()> {
        let http = super::listen::spawn(
            self.listener,
            self.shared.opts.tls.clone(),
            self.shared.clone(),
            stop.clone(),
        )
        .map_err(|e| Error::Invalid(format!("desk: cannot start the web server: {e}")))?;
        let result = frame_loop(&self.shared, rec, source, &stop);
        stop.store(true, Ordering::Relaxed);
        let _ = http.join();
        result
    }
}

fn frame_loop(
    shared: &Shared,
    rec: &mut Recognizer,
    source: &mut dyn FrameSource,
    stop: &AtomicBool,
) -> Result<()> {
    let mut failures = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let frame = match source.next_frame() {
            Ok(Some(f)) => {
                failures = 0;
                f
            }
            Ok(None) => {
                log::info!("desk: the source ended");
                return Ok(());
            }
            Err(e) => {
                failures += 1;
                lock(&shared.live).source_error = Some(e.to_string());
                log::warn!("desk: {e}");
                std::thread::sleep(Duration::from_millis(250 * failures.min(20) as u64));
                continue;
            }
        };
        if let Err(e) = analyse(shared, rec, &frame) {
            log::warn!("desk: {e}");
            lock(&shared.live).source_error = Some(e.to_string());
        }
    }
    Ok(())
}

/// One frame: detection, gates, preview, the probe for "who is this?", enrollment.
fn analyse(shared: &Shared, rec: &mut Recognizer, frame: &Frame) -> Result<()> {
    let faces = rec.detect(frame)?;
    let gates = &shared.opts.enroll.gates;
    let views: Vec<FaceView> = faces
        .iter()
        .map(|f| FaceView {
            xywh: f.xywh(),
            problem: check(gates, f, &rec.chip(frame, f)),
        })
        .collect();
    let verdict = match views.as_slice() {
        [] => "no face".to_string(),
        [v] => v
            .problem
            .clone()
            .unwrap_or_else(|| "good: ready to enroll".into()),
        v => format!(
            "{} faces: only one person may be in front of the camera",
            v.len()
        ),
    };
    let probe = match largest(&faces) {
        Some(i) => Some(rec.embed_face(frame, &faces[i])?),
        None => None,
    };
    let ok: Vec<bool> = views.iter().map(|v| v.problem.is_none()).collect();
    let jpeg = crate::recognition::draw::annotated_jpeg(frame, &faces, &ok)?;
    {
        let mut live = lock(&shared.live);
        live.seq += 1;
        live.jpeg = jpeg;
        live.width = frame.width();
        live.height = frame.height();
        live.faces = views;
        live.verdict = verdict;
        live.probe = probe;
        live.source_error = None;
    }
    enroll_step(shared, rec, frame, &faces);
    shared.samples.step(rec, frame, &faces);
    Ok(())
}

fn enroll_step(
    shared: &Shared,
    rec: &Recognizer,
    frame: &Frame,
    faces: &[crate::recognition::detect::Face],
) {
    let mut job = lock(&shared.job);
    let Some(j) = job.as_mut() else { return };
    let opts = shared.opts.enroll;
    let taken = frame_template(rec, frame, faces, &opts, &j.templates);
    let mut st = lock(&shared.status);
    st.frames += 1;
    match taken {
        Ok(e) => {
            j.templates.push(e);
            j.frames.push(format!("frame {}", st.frames));
            st.got = j.templates.len();
            st.message = format!("frame {} taken", st.frames);
        }
        Err(why) => st.message = why,
    }
    if j.templates.len() >= opts.k {
        let Some(j) = job.take() else { return };
        st.state = "saving".into();
        st.message = format!("saving {} (waiting for the gallery file)", j.name);
        // Neither the job nor the status is held while the gallery is saved: the save may
        // wait for another program's lock on the file, and the page must keep answering.
        drop(st);
        drop(job);
        let outcome = save_enrolled(shared, &j);
        let mut st = lock(&shared.status);
        match outcome {
            Ok(id) => {
                st.state = "done".into();
                st.message = format!("{} enrolled (id {id}) with {} templates", j.name, opts.k);
                log::info!("desk: {}", st.message);
            }
            Err(e) => {
                st.state = "failed".into();
                st.message = format!("{} not enrolled: {e}", j.name);
                log::warn!("desk: {}", st.message);
            }
        }
    } else if st.frames >= ENROLL_MAX_FRAMES {
        *job = None;
        st.state = "failed".into();
        st.message = format!(
            "only {} of {} good frames after {} frames; nothing saved",
            st.got, st.needed, st.frames
        );
    }
}

fn save_enrolled(shared: &Shared, j: &Job) -> Result<u32> {
    change_gallery(shared, |g| {
        add_checked(
            g,
            &j.name,
            j.templates.clone(),
            &j.frames,
            &shared.opts.enroll,
            now_secs(),
        )
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
