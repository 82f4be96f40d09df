//! Frames from another program's standard output as an MJPEG stream (JPEG after JPEG):
//! `rpicam-vid --codec mjpeg -t 0 -o -` for every Raspberry Pi camera module, `ffmpeg -i
//! rtsp://… -f mjpeg -` for IP cameras, `gst-launch-1.0 … ! jpegenc ! fdsink`.
//!
//! The program is started from an argv list (no shell). A reader thread cuts its output
//! into JPEGs by their markers (segment by segment, so a thumbnail inside an EXIF segment
//! does not end a frame), keeps only the newest complete frame when the kiosk is slower
//! than the camera (every error is kept), and reports a frame cut short (a new start of image before the end, the
//! stream ending mid-frame, a frame over
//! [`crate::recognition::frame::jpeg::MAX_FRAME_BYTES`]) and bytes that are no JPEG as
//! errors: each is one source error, and the door stays locked. When the program exits or
//! stalls (no frame for `stall`), it is killed and started again after a back-off (0.5 s,
//! doubling to 30 s, reset by a good frame). Its standard error goes to the log.

use crate::error::{Error, Result};
use crate::recognition::frame::jpeg::{read_rest, to_start_of_image, NEXT_FRAME};
use crate::recognition::frame::{decode_image, Frame};
use crate::recognition::source::FrameSource;
use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Items waiting for the kiosk at most (errors beyond it drop the oldest).
const MAX_WAITING: usize = 64;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the reader thread hands over.
type Item = std::result::Result<Vec<u8>, String>;

/// A program whose standard output is an MJPEG stream.
pub struct CommandSource {
    argv: Vec<String>,
    stall: Duration,
    running: Option<Running>,
    backoff: Duration,
    next_start: Option<Instant>,
    starts: u64,
}

struct Running {
    child: Child,
    frames: Arc<Handover>,
}

/// From the reader thread to the kiosk: every error in order, and of the frames only the
/// newest (a frame waiting when a newer one arrives is replaced: the kiosk wants the
/// present, not a backlog).
#[derive(Default)]
struct Handover {
    state: Mutex<(VecDeque<Item>, bool)>,
    ready: Condvar,
}

impl Handover {
    fn put(&self, item: Item) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if item.is_ok() && matches!(s.0.back(), Some(Ok(_))) {
            s.0.pop_back();
        }
        // A program spewing broken frames faster than they are read cannot fill memory.
        if s.0.len() >= MAX_WAITING {
            s.0.pop_front();
        }
        s.0.push_back(item);
        self.ready.notify_one();
    }

    /// The stream ended: nothing more will come.
    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.ready.notify_one();
    }

    /// The next item; `Err(true)` when the stream ended, `Err(false)` after `wait`.
    fn take(&self, wait: Duration) -> std::result::Result<Item, bool> {
        let deadline = Instant::now() + wait;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(item) = s.0.pop_front() {
                return Ok(item);
            }
            if s.1 {
                return Err(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(false);
            }
            s = self
                .ready
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl CommandSource {
    /// `argv[0]` with the rest as its arguments, restarted when no frame came for `stall`.
    pub fn new(argv: Vec<String>, stall: Duration) -> Result<Self> {
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(Error::Invalid("the frame command is empty".into()));
        }
        Ok(CommandSource {
            argv,
            stall,
            running: None,
            backoff: FIRST_BACKOFF,
            next_start: None,
            starts: 0,
        })
    }

    /// How many times the program was started.
    pub fn starts(&self) -> u64 {
        self.starts
    }

    fn start(&mut self) -> Result<()> {
        if let Some(at) = self.next_start {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
        }
        let prog = self.argv[0].clone();
        let spawned = Command::new(&prog)
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                self.failed();
                return Err(Error::Hardware(format!(
                    "frame command {prog}: cannot start it: {e}"
                )));
            }
        };
        self.starts += 1;
        let handover = Arc::new(Handover::default());
        let tx = handover.clone();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let name = prog.clone();
        if let Some(out) = stdout {
            std::thread::spawn(move || {
                split_jpegs(out, &|item| tx.put(item));
                tx.close();
            });
        }
        if let Some(err) = stderr {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(err).lines().map_while(|l| l.ok()) {
                    log::info!("{name}: {line}");
                }
            });
        }
        log::info!("frame command started: {}", self.argv.join(" "));
        self.running = Some(Running {
            child,
            frames: handover,
        });
        Ok(())
    }

    /// The program failed: the next start waits for the back-off, which doubles.
    fn failed(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        self.next_start = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

impl Drop for CommandSource {
    fn drop(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

impl FrameSource for CommandSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.running.is_none() {
            self.start()?;
        }
        let prog = self.argv[0].clone();
        let got = match self.running.as_ref() {
            Some(r) => r.frames.take(self.stall),
            None => Err(true),
        };
        match got {
            Ok(Ok(jpeg)) => match decode_image(&jpeg) {
                Ok(frame) => {
                    self.backoff = FIRST_BACKOFF;
                    Ok(Some(frame))
                }
                Err(why) => Err(Error::Hardware(format!(
                    "frame command {prog}: a frame: {why}"
                ))),
            },
            Ok(Err(why)) => Err(Error::Hardware(format!("frame command {prog}: {why}"))),
            Err(false) => {
                self.failed();
                Err(Error::Hardware(format!(
                    "frame command {prog}: no frame for {:.1} s; restarting it",
                    self.stall.as_secs_f64()
                )))
            }
            Err(true) => {
                let status = self
                    .running
                    .as_mut()
                    .and_then(|r| r.child.wait().ok())
                    .map_or("ended".to_string(), |s| s.to_string());
                self.failed();
                Err(Error::Hardware(format!(
                    "frame command {prog}: {status}; starting it again in {:.1} s",
                    self.next_start.map_or(0.0, |t| t
                        .saturating_duration_since(Instant::now())
                        .as_secs_f64())
                )))
            }
        }
    }

    fn describe(&self) -> String {
        format!("the MJPEG output of `{}`", self.argv.join(" "))
    }
}

/// Hands each complete JPEG of `input` to `send`, and each broken one as an error, until the
/// stream ends.
fn split_jpegs(input: impl Read, send: &dyn Fn(Item)) {
    let mut r = std::io::BufReader::with_capacity(1 << 16, input);
    // Whether the last frame was cut short by the start of the next one (already read).
    let mut at_start = false;
    loop {
        if !at_start {
            let (skipped, found) = to_start_of_image(&mut r);
            if skipped > 0 {
                send(Err(format!(
                    "{skipped} bytes that are no JPEG in the stream"
                )));
            }
            if !found {
                return;
            }
        }
        let frame = read_rest(&mut r);
        at_start = matches!(&frame, Err(why) if why.ends_with(NEXT_FRAME));
        send(frame);
    }
}
