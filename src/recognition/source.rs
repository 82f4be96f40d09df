//! Frame sources: where the kiosk's frames come from.
//!
//! [`FolderSource`] plays a list of image files at a set rate (tests, the demo, replaying a
//! recording); [`command::CommandSource`] reads another program's MJPEG output (the Pi
//! camera modules through `rpicam-vid`, IP cameras through `ffmpeg`); a USB camera is
//! `camera::CameraSource` behind the cargo feature `camera`.

use crate::error::{Error, Result};
use crate::recognition::frame::{load_image, Frame};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub mod command;

/// Anything that yields frames.
pub trait FrameSource {
    /// The next frame, `Ok(None)` at the end of the stream. An error means the device failed;
    /// the caller keeps the door locked and may retry.
    fn next_frame(&mut self) -> Result<Option<Frame>>;
    /// What to call the source in logs.
    fn describe(&self) -> String;
}

/// Image files played in order at `fps` (0 = as fast as possible), optionally looping.
pub struct FolderSource {
    files: Vec<PathBuf>,
    next: usize,
    period: Duration,
    last: Option<Instant>,
    looping: bool,
}

impl FolderSource {
    /// Every image file directly in `dir` (see [`crate::recognition::frame::list_images`]),
    /// in name order.
    pub fn from_dir(dir: &Path, fps: f64, looping: bool) -> Result<Self> {
        let files = crate::recognition::frame::list_images(dir)?;
        if files.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no image files (JPEG, PNG, WebP, BMP, TIFF, GIF)",
                dir.display()
            )));
        }
        Ok(Self::from_files(files, fps, looping))
    }

    /// The given files in order.
    pub fn from_files(files: Vec<PathBuf>, fps: f64, looping: bool) -> Self {
        let period = if fps > 0.0 {
            Duration::from_secs_f64(1.0 / fps)
        } else {
            Duration::ZERO
        };
        FolderSource {
            files,
            next: 0,
            period,
            last: None,
            looping,
        }
    }

    /// The file the next frame comes from.
    pub fn peek_path(&self) -> Option<&Path> {
        self.files.get(self.next).map(|p| p.as_path())
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.next >= self.files.len() {
            if !self.looping || self.files.is_empty() {
                return Ok(None);
            }
            self.next = 0;
        }
        if let Some(last) = self.last {
            let due = last + self.period;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        self.last = Some(Instant::now());
        let path = &self.files[self.next];
        self.next += 1;
        load_image(path).map(Some)
    }

    fn describe(&self) -> String {
        format!("{} image files", self.files.len())
    }
}

/// The live camera through nokhwa (V4L2 on Linux).
#[cfg(feature = "camera")]
pub mod camera {
    use super::FrameSource;
    use crate::error::{Error, Result};
    use crate::recognition::frame::Frame;
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{CameraIndex, RequestedFormat, RequestedFormatType, Resolution};
    use nokhwa::Camera;
    use std::time::Duration;

    /// A V4L2 camera that reopens itself with backoff when it disappears.
    pub struct CameraSource {
        index: u32,
        width: u32,
        height: u32,
        fps: u32,
        camera: Option<Camera>,
        backoff: Duration,
    }

    impl CameraSource {
        /// Camera `/dev/video{index}` at the requested size and rate (opened lazily).
        pub fn new(index: u32, width: u32, height: u32, fps: u32) -> Self {
            CameraSource {
                index,
                width,
                height,
                fps,
                camera: None,
                backoff: Duration::from_millis(250),
            }
        }

        fn open(&mut self) -> Result<()> {
            let fmt = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(
                nokhwa::utils::CameraFormat::new(
                    Resolution::new(self.width, self.height),
                    nokhwa::utils::FrameFormat::MJPEG,
                    self.fps,
                ),
            ));
            let mut cam = Camera::new(CameraIndex::Index(self.index), fmt)
                .map_err(|e| Error::Hardware(format!("camera {}: {e}", self.index)))?;
            cam.open_stream()
                .map_err(|e| Error::Hardware(format!("camera {}: {e}", self.index)))?;
            log::info!("camera {} open: {}", self.index, cam.camera_format());
            self.camera = Some(cam);
            self.backoff = Duration::from_millis(250);
            Ok(())
        }
    }

    impl FrameSource for CameraSource {
        fn next_frame(&mut self) -> Result<Option<Frame>> {
            if self.camera.is_none() {
                if let Err(e) = self.open() {
                    std::thread::sleep(self.backoff);
                    self.backoff = (self.backoff * 2).min(Duration::from_secs(10));
                    return Err(e);
                }
            }
            let cam = self
                .camera
                .as_mut()
                .ok_or_else(|| Error::Hardware("camera not open".into()))?;
            match cam.frame().and_then(|b| b.decode_image::<RgbFormat>()) {
                Ok(img) => Ok(Some(img)),
                Err(e) => {
                    self.camera = None;
                    Err(Error::Hardware(format!(
                        "camera {}: {e}; reconnecting",
                        self.index
                    )))
                }
            }
        }

        fn describe(&self) -> String {
            format!(
                "camera /dev/video{} {}x{}@{}",
                self.index, self.width, self.height, self.fps
            )
        }
    }
}
