//! `facegate desk --gallery G (--camera N | --folder DIR)`: the reception desk's web page.

use super::{camera_source, parse_threshold, Global};
use clap::Args;
use facegate::desk::auth::Token;
use facegate::desk::{Desk, DeskOptions};
use facegate::identity::enroll::EnrollOptions;
use facegate::identity::threshold::DEFAULT_THRESHOLD;
use facegate::recognition::quality::QualityGates;
use facegate::recognition::source::{FolderSource, FrameSource};
use facegate::{Error, Result};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Arguments of `desk`.
#[derive(Args, Clone)]
pub struct DeskArgs {
    /// The gallery file to show and change (created on the first enrollment).
    #[arg(long)]
    pub gallery: PathBuf,
    /// Live camera /dev/videoN (needs the `camera` feature).
    #[arg(long, required_unless_present = "folder", conflicts_with = "folder")]
    pub camera: Option<u32>,
    /// A folder of images played in a loop instead of a camera.
    #[arg(long)]
    pub folder: Option<PathBuf>,
    /// Frames per second from the folder (0.1 to 30).
    #[arg(long, default_value_t = 2.0)]
    pub fps: f64,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Allow an address other than loopback (the whole network can then reach the page; it
    /// still needs the token). Needs --allow-host, and serves TLS only (--tls-cert and
    /// --tls-key, or a self-signed certificate made on first start beside the gallery).
    #[arg(long, requires = "allow_host")]
    pub allow_remote: bool,
    /// A host name the page is reached by from other machines (repeatable); any other `Host`
    /// is refused (DNS rebinding).
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// The TLS certificate chain (PEM); with --tls-key. Without them, --allow-remote makes
    /// a self-signed certificate on first start and keeps it beside the gallery.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM, mode 0600).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Read the token from this file (mode 0600) instead of making a new one.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The door's audit log, for the health view.
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// Good frames per enrollment.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub k: u32,
    /// Minimum eye distance in pixels for an enrollment frame.
    #[arg(long, default_value_t = QualityGates::PHOTOS.min_eye_distance)]
    pub min_eye_distance: f32,
    /// Distance under which a new person counts as someone already enrolled.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD, value_parser = parse_threshold)]
    pub duplicate_threshold: f32,
    /// A fixed threshold for "who is this?" and the health view (default: the one for the
    /// gallery's size, as the kiosk uses).
    #[arg(long, value_parser = parse_threshold)]
    pub threshold: Option<f32>,
    /// Where presentation samples (bona fide and attack recordings for the liveness check)
    /// are kept (default: presentation-samples beside the gallery).
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// The door's config: the page may write the texture threshold chosen from the samples
    /// into its [liveness] section (the previous text is kept as .bak).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Serves the desk page until Ctrl-C.
pub fn run(g: &Global, a: &DeskArgs) -> Result<ExitCode> {
    if !(a.fps >= 0.1 && a.fps <= 30.0) {
        return Err(Error::Invalid(format!(
            "--fps {} must be between 0.1 and 30",
            a.fps
        )));
    }
    if !(a.min_eye_distance.is_finite() && a.min_eye_distance >= 0.0) {
        return Err(Error::Invalid(
            "--min-eye-distance must be 0 or more".into(),
        ));
    }
    let token = match &a.token_file {
        Some(p) => Token::from_file(p)?,
        None => Token::generate()?,
    };
    let mut rec = g.recognizer()?;
    let mut source: Box<dyn FrameSource> = match (&a.folder, a.camera) {
        (Some(dir), _) => Box::new(FolderSource::from_dir(dir, a.fps, true)?),
        (None, Some(n)) => camera_source(n, 640, 480, 15)?,
        (None, None) => return Err(Error::Invalid("give --camera N or --folder DIR".into())),
    };
    for h in &a.allow_host {
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(Error::Invalid(format!(
                "--allow-host {h:?}: a host name or IPv4 address (letters, digits, '.', '-')"
            )));
        }
    }
    let dir = a
        .gallery
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let tls = if a.allow_remote || a.tls_cert.is_some() {
        let files = a.tls_cert.as_deref().zip(a.tls_key.as_deref());
        Some(facegate::desk::tls::load_or_make(
            files,
            &dir,
            &a.allow_host,
        )?)
    } else {
        None
    };
    let opts = DeskOptions {
        gallery: a.gallery.clone(),
        audit: a.audit.clone(),
        listen: a.listen,
        allow_remote: a.allow_remote,
        allowed_hosts: a.allow_host.clone(),
        tls: tls.as_ref().map(|t| t.config.clone()),
        token,
        signing_key: g.signing_key()?,
        enroll: EnrollOptions {
            k: a.k as usize,
            largest: false,
            force: false,
            duplicate_threshold: a.duplicate_threshold,
            gates: QualityGates {
                min_eye_distance: a.min_eye_distance,
                ..QualityGates::default()
            },
            max_frames: facegate::desk::server::ENROLL_MAX_FRAMES,
        },
        threshold: a.threshold,
        curve: facegate::identity::threshold::FarCurve::of(g.store()?.spec(g.model())?)?,
        samples_dir: a
            .samples
            .clone()
            .unwrap_or_else(|| dir.join("presentation-samples")),
        config: a.config.clone(),
        model_dir: g.store()?.dir().to_path_buf(),
    };
    let desk = Desk::bind(opts, &rec)?;
    // The first line of standard output: scripts and the installer read it.
    let mut out = std::io::stdout();
    writeln!(out, "{}", desk.url()).map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(t) = &tls {
        // The receptionist compares it with the browser's before accepting the certificate.
        writeln!(
            out,
            "TLS certificate {}{}: SHA-256 fingerprint {}",
            t.cert.display(),
            if t.made { " (made now)" } else { "" },
            t.fingerprint
        )
        .map_err(|e| Error::Invalid(e.to_string()))?;
    }
    out.flush().map_err(|e| Error::Invalid(e.to_string()))?;
    log::info!(
        "desk: {} on {}, gallery {}",
        source.describe(),
        desk.addr(),
        a.gallery.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| Error::Invalid(format!("cannot install the signal handler: {e}")))?;
    }
    desk.serve(&mut rec, source.as_mut(), stop)?;
    Ok(ExitCode::SUCCESS)
}
