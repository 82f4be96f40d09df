//! Frames: decoding images into RGB8 and the resampling used by the detector.
//!
//! A [`Frame`] is an 8-bit RGB image. [`load_image`] decodes JPEG, PNG, WebP, BMP, TIFF and
//! GIF (its first frame) by their content, whatever the file is called (RGB, RGBA, grayscale,
//! 16-bit), honours the EXIF orientation and refuses corrupt, truncated, empty, oversized or
//! other files with an error naming the file and the format.

use crate::error::{Error, Result};
use image::{ImageDecoder, ImageReader, Limits};
use std::io::Cursor;
use std::path::Path;

pub mod jpeg;
mod resample;
use resample::{resample, Out, Region};
pub use resample::{taps, x_major_region, Taps};

/// An 8-bit RGB frame.
pub type Frame = image::RgbImage;

/// Largest accepted side in pixels: beyond it a frame is refused rather than run slowly.
pub const MAX_SIDE: u32 = 8192;

/// The formats [`decode_image`] reads.
pub const FORMATS: [image::ImageFormat; 6] = [
    image::ImageFormat::Jpeg,
    image::ImageFormat::Png,
    image::ImageFormat::WebP,
    image::ImageFormat::Bmp,
    image::ImageFormat::Tiff,
    image::ImageFormat::Gif,
];

/// The sub-folders of `root` (one per person in a labelled set), in name order.
pub fn person_folders(root: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The image files directly inside `dir` (recognised by their first bytes, not their
/// names; hidden files skipped), in name order.
pub fn list_images(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && sniff(p).is_some_and(|f| FORMATS.contains(&f))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The image format of the file at `p` from its first bytes.
fn sniff(p: &Path) -> Option<image::ImageFormat> {
    use std::io::Read;
    let mut head = [0u8; 32];
    let n = crate::files::open_regular(p, crate::files::Follow::Yes)
        .ok()?
        .read(&mut head)
        .ok()?;
    image::guess_format(&head[..n]).ok()
}

/// The largest image file read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Decodes the image file at `path` (at most [`MAX_FILE_BYTES`]) into an upright RGB8
/// [`Frame`].
pub fn load_image(path: impl AsRef<Path>) -> Result<Frame> {
    let path = path.as_ref();
    let bytes = crate::files::read_capped(path, MAX_FILE_BYTES)?;
    decode_image(&bytes).map_err(|reason| Error::Image {
        path: path.to_path_buf(),
        reason,
    })
}

/// Decodes image bytes (any of [`FORMATS`], recognised by content) into an upright RGB8
/// frame.
pub fn decode_image(bytes: &[u8]) -> std::result::Result<Frame, String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    match reader.format() {
        Some(f) if FORMATS.contains(&f) => {}
        Some(f) => {
            return Err(format!(
                "unsupported format {f:?} (facegate reads {})",
                names()
            ))
        }
        None => {
            return Err(format!(
                "unsupported format: not an image facegate reads ({})",
                names()
            ))
        }
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        jpeg::complete(bytes).map_err(|why| format!("a damaged or incomplete JPEG: {why}"))?;
    }
    if reader.format() == Some(image::ImageFormat::Png) {
        if let Some(frame) = png_rgb8(bytes)? {
            return Ok(frame);
        }
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(1 << 30);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(describe)?;
    // A wide pixel (16-bit or float) is decoded whole, then converted: two copies, the
    // first up to 4 times the RGB8 frame. Above the budget such files are refused.
    let ct = decoder.color_type();
    let (w, h) = decoder.dimensions();
    if ct.bytes_per_pixel() > ct.channel_count() && w as u64 * h as u64 > WIDE_PIXEL_BUDGET {
        return Err(format!(
            "a {w}x{h} image of {}-bit samples is above the {} megapixel budget for \
             wide samples (it would need {} MB to decode): save it with 8-bit samples",
            8 * ct.bytes_per_pixel() / ct.channel_count(),
            WIDE_PIXEL_BUDGET / 1_000_000,
            (w as u64 * h as u64 * (ct.bytes_per_pixel() as u64 + 3)) >> 20
        ));
    }
    let orientation = decoder.orientation().map_err(describe)?;
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(describe)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// The most pixels an image of wide samples (16-bit, float) may have: decoded whole they
/// take 2 to 4 times the memory of the RGB8 frame.
pub const WIDE_PIXEL_BUDGET: u64 = 16_000_000;

/// A non-interlaced PNG of any bit depth and colour type decoded row by row straight into
/// RGB8 (16-bit samples keep their high byte, palettes and grey expanded, alpha dropped), so
/// that nothing larger than the frame itself is ever held; `Ok(None)` for an interlaced file
/// (decoded whole instead).
fn png_rgb8(bytes: &[u8]) -> std::result::Result<Option<Frame>, String> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    decoder.set_limits(png::Limits { bytes: 1 << 30 });
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let info = reader.info();
    let (w, h) = (info.width, info.height);
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!(
            "image larger than the {MAX_SIDE}x{MAX_SIDE} pixel limit"
        ));
    }
    if info.interlaced {
        return Ok(None);
    }
    let exif = info.exif_metadata.as_ref().map(|e| e.to_vec());
    let (color, depth) = reader.output_color_type();
    if depth != png::BitDepth::Eight {
        return Ok(None);
    }
    let channels = color.samples();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for _ in 0..h {
        let row = reader
            .next_row()
            .map_err(|e| e.to_string().trim_end().to_string())?
            .ok_or("truncated: fewer rows than the header says")?;
        let data = row.data();
        if data.len() < w as usize * channels {
            return Err("a row shorter than the header says".into());
        }
        for p in data.chunks_exact(channels).take(w as usize) {
            if channels >= 3 {
                out.extend_from_slice(&p[..3]);
            } else {
                out.extend_from_slice(&[p[0]; 3]);
            }
        }
    }
    let frame = Frame::from_raw(w, h, out).ok_or("inconsistent size")?;
    Ok(Some(
        match exif
            .as_deref()
            .and_then(image::metadata::Orientation::from_exif_chunk)
        {
            Some(o) if o != image::metadata::Orientation::NoTransforms => {
                let mut img = image::DynamicImage::ImageRgb8(frame);
                img.apply_orientation(o);
                img.into_rgb8()
            }
            _ => frame,
        },
    ))
}

fn names() -> String {
    FORMATS
        .iter()
        .map(|f| format!("{f:?}").to_uppercase())
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(e: image::ImageError) -> String {
    match e {
        image::ImageError::Limits(_) => {
            format!("image larger than the {MAX_SIDE}x{MAX_SIDE} pixel limit")
        }
        // Some decoders end their message with a newline.
        e => e.to_string().trim_end().to_string(),
    }
}

/// `frame` shrunk by the whole factor `k`: each output pixel is the mean of a k×k block
/// (blocks at the right and bottom edges may be smaller). No buffer larger than the output.
pub fn shrink(frame: &Frame, k: u32) -> Frame {
    let k = k.max(1);
    let (w, h) = (frame.width().div_ceil(k), frame.height().div_ceil(k));
    Frame::from_fn(w, h, |x, y| {
        let (x0, y0) = (x * k, y * k);
        let (x1, y1) = ((x0 + k).min(frame.width()), (y0 + k).min(frame.height()));
        let mut sum = [0u32; 3];
        for yy in y0..y1 {
            for xx in x0..x1 {
                let p = frame.get_pixel(xx, yy);
                for c in 0..3 {
                    sum[c] += p[c] as u32;
                }
            }
        }
        let n = (x1 - x0) * (y1 - y0);
        image::Rgb(sum.map(|v| ((v + n / 2) / n) as u8))
    })
}

/// A float RGB image, row-major `[y][x][c]`, values 0..255 in f32 (the weights are computed
/// in f64; f32 sums of at most a few hundred taps stay well within 1e-3 of a grey level).
#[derive(Debug, Clone)]
pub struct FloatImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` values.
    pub data: Vec<f32>,
}

impl FloatImage {
    /// The frame as floats 0..255.
    pub fn from_frame(f: &Frame) -> Self {
        FloatImage {
            width: f.width() as usize,
            height: f.height() as usize,
            data: f.as_raw().iter().map(|&v| v as f32).collect(),
        }
    }

    /// The `w x h` crop whose top-left pixel is at (`x0`, `y0`) of `self` (may be outside
    /// the image); pixels outside are zero. The tests' reference for
    /// [`FloatImage::resize_region`].
    #[cfg(test)]
    pub fn crop(&self, x0: i64, y0: i64, w: usize, h: usize) -> FloatImage {
        let mut data = vec![0.0; w * h * 3];
        for v in 0..h {
            let y = y0 + v as i64;
            if y < 0 || y >= self.height as i64 {
                continue;
            }
            for u in 0..w {
                let x = x0 + u as i64;
                if x < 0 || x >= self.width as i64 {
                    continue;
                }
                let s = (y as usize * self.width + x as usize) * 3;
                let d = (v * w + u) * 3;
                data[d..d + 3].copy_from_slice(&self.data[s..s + 3]);
            }
        }
        FloatImage {
            width: w,
            height: h,
            data,
        }
    }

    /// Resized to `w x h` with [`taps`] on each axis.
    pub fn resize(&self, w: usize, h: usize) -> FloatImage {
        self.resize_region(0, 0, self.width, self.height, w, h)
    }

    /// The `w x h` region whose top-left pixel is at (`x0`, `y0`) (it may reach outside the
    /// image, where pixels are zero) resized to `dw x dh`: the values of
    /// `self.crop(x0, y0, w, h).resize(dw, dh)` (the same taps; the vertical pass runs first,
    /// so the sums differ from that order's only by f32 rounding), without the copy.
    pub fn resize_region(
        &self,
        x0: i64,
        y0: i64,
        w: usize,
        h: usize,
        dw: usize,
        dh: usize,
    ) -> FloatImage {
        let region = Region {
            width: self.width,
            height: self.height,
            x0,
            y0,
            w,
            h,
        };
        FloatImage {
            width: dw,
            height: dh,
            data: resample(&self.data, region, dw, dh, Out::RowMajor),
        }
    }

    /// The image as an x-major tensor `[x][y][c]` with `(p - mean) * scale` applied, appended
    /// to `out` (MTCNN's layout).
    pub fn push_x_major(&self, mean: f32, scale: f32, out: &mut Vec<f32>) {
        out.reserve(self.data.len());
        for x in 0..self.width {
            for y in 0..self.height {
                let s = (y * self.width + x) * 3;
                for c in 0..3 {
                    out.push((self.data[s + c] - mean) * scale);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_taps_sum_to_one_and_cover_the_source() {
        for (s, d) in [(10, 3), (250, 75), (7, 7), (5, 12), (1, 4)] {
            let t = taps(s, d);
            assert_eq!(t.len(), d);
            for i in 0..d {
                let sum: f32 = t.of(i).map(|p| p.1).sum();
                assert!((sum - 1.0).abs() < 1e-5, "{s}->{d}: {sum}");
                assert!(t.of(i).all(|p| p.0 < s));
            }
        }
    }

    #[test]
    fn halving_averages_pairs() {
        let img = FloatImage {
            width: 4,
            height: 1,
            data: vec![0., 0., 0., 2., 2., 2., 4., 4., 4., 6., 6., 6.],
        };
        let r = img.resize(2, 1);
        assert_eq!(r.data, vec![1., 1., 1., 5., 5., 5.]);
    }

    #[test]
    fn crop_outside_is_zero() {
        let img = FloatImage {
            width: 2,
            height: 2,
            data: vec![1.0; 12],
        };
        let c = img.crop(-1, -1, 3, 3);
        assert_eq!(c.data[0], 0.0);
        assert_eq!(c.data[(3 + 1) * 3], 1.0);
        assert_eq!(c.data.iter().filter(|&&v| v == 1.0).count(), 12);
    }

    #[test]
    fn a_resized_region_is_the_resized_crop() {
        let (w, h) = (37, 23);
        let mut seed = 7u32;
        let data = (0..w * h * 3)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as f32
            })
            .collect();
        let img = FloatImage {
            width: w,
            height: h,
            data,
        };
        // Inside, across every edge, enlarged and shrunk.
        for (x0, y0, cw, ch, dw, dh) in [
            (0, 0, 37, 23, 12, 9),
            (-5, -3, 20, 18, 24, 24),
            (30, 15, 20, 20, 24, 24),
            (4, 2, 11, 7, 48, 48),
            (-40, 0, 10, 10, 5, 5),
            (0, -30, 10, 10, 5, 5),
            (-3, -3, 43, 29, 17, 11),
        ] {
            let want = img.crop(x0, y0, cw, ch).resize(dw, dh);
            let got = img.resize_region(x0, y0, cw, ch, dw, dh);
            assert_eq!((got.width, got.height), (dw, dh));
            let d = got
                .data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                d <= 1e-3,
                "region {x0},{y0} {cw}x{ch} -> {dw}x{dh}: off by {d}"
            );
            // Straight from the bytes, x-major and normalised: the same values bit for bit.
            let bytes: Vec<u8> = img.data.iter().map(|&v| v as u8).collect();
            let frame = Frame::from_raw(w as u32, h as u32, bytes).unwrap();
            let mut want = Vec::new();
            got.push_x_major(127.5, 0.0078125, &mut want);
            let x_major = x_major_region(&frame, (x0, y0, cw, ch), dw, dh, 127.5, 0.0078125);
            assert_eq!(x_major, want, "region {x0},{y0} {cw}x{ch} -> {dw}x{dh}");
        }
    }

    #[test]
    fn empty_and_garbage_bytes_are_refused() {
        assert!(decode_image(&[]).unwrap_err().contains("empty"));
        assert!(decode_image(b"hello, this is not an image")
            .unwrap_err()
            .contains("unsupported format"));
    }
}
