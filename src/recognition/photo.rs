//! Photos for recognition: decoded and, when larger than the detector looks at, shrunk by a
//! whole factor while decoding, so an 8192-pixel photo never sits in memory whole.

use crate::error::{Error, Result};
use crate::recognition::frame::{decode_image, shrink, Frame, MAX_FILE_BYTES, MAX_SIDE};
use std::io::Cursor;
use std::path::Path;

/// A photo decoded for recognition, shrunk by a whole `factor` when it was larger than asked:
/// pixel (x, y) of `frame` is the mean of the `factor`×`factor` block at (x·factor,
/// y·factor) of the upright image in the file. Faces found in `frame` map back to the file's
/// pixels by multiplying by `factor` ([`crate::recognition::detect::Face::scaled`]).
#[derive(Debug, Clone)]
pub struct Photo {
    /// The (possibly shrunk) upright RGB8 image.
    pub frame: Frame,
    /// The whole shrink factor, 1 when the photo was small enough.
    pub factor: u32,
}

/// Decodes the image file at `path` like [`crate::recognition::frame::load_image`], shrunk by the smallest whole factor
/// that brings its longer side to at most `max_side`. Large PNG (8-bit, not interlaced) and
/// JPEG files are shrunk while decoding, so the full-size image is never in memory (an
/// 8192x8192 photo would be 201 MB); other files are decoded whole, then shrunk.
pub fn load_photo(path: impl AsRef<Path>, max_side: u32) -> Result<Photo> {
    let path = path.as_ref();
    let bytes = crate::files::read_capped(path, MAX_FILE_BYTES)?;
    decode_photo(&bytes, max_side).map_err(|reason| Error::Image {
        path: path.to_path_buf(),
        reason,
    })
}

/// [`load_photo`] on image bytes.
pub fn decode_photo(bytes: &[u8], max_side: u32) -> std::result::Result<Photo, String> {
    let max_side = max_side.max(1);
    let streamed = match image::guess_format(bytes) {
        Ok(image::ImageFormat::Png) => png_shrunk(bytes, max_side),
        Ok(image::ImageFormat::Jpeg) => jpeg_shrunk(bytes, max_side),
        _ => None,
    };
    if let Some(p) = streamed {
        return Ok(p);
    }
    let frame = decode_image(bytes)?;
    let side = frame.width().max(frame.height());
    if side <= max_side {
        return Ok(Photo { frame, factor: 1 });
    }
    let factor = side.div_ceil(max_side);
    Ok(Photo {
        frame: shrink(&frame, factor),
        factor,
    })
}

/// Sums of pixel blocks, fed one source row at a time: the streaming form of [`shrink`],
/// with the same rounding.
struct BlockShrinker {
    k: u32,
    src_w: u32,
    src_h: u32,
    sums: Vec<u32>,
    rows_in: u32,
    out: Vec<u8>,
}

impl BlockShrinker {
    fn new(src_w: u32, src_h: u32, k: u32) -> Self {
        let w = src_w.div_ceil(k) as usize;
        BlockShrinker {
            k,
            src_w,
            src_h,
            sums: vec![0; w * 3],
            rows_in: 0,
            out: Vec::with_capacity(w * src_h.div_ceil(k) as usize * 3),
        }
    }

    /// Adds one source row of `src_w` pixels of `channels` bytes (1 or 2: grey with or
    /// without alpha, 3 or 4: RGB with or without alpha; alpha is dropped).
    fn push_row(&mut self, row: &[u8], channels: usize) {
        let k = self.k as usize;
        for x in 0..self.src_w as usize {
            let p = &row[x * channels..];
            let rgb = if channels >= 3 {
                [p[0], p[1], p[2]]
            } else {
                [p[0]; 3]
            };
            let o = (x / k) * 3;
            for (sum, v) in self.sums[o..o + 3].iter_mut().zip(rgb) {
                *sum += v as u32;
            }
        }
        self.rows_in += 1;
        if self.rows_in.is_multiple_of(self.k) || self.rows_in == self.src_h {
            let block_rows = (self.rows_in - 1) % self.k + 1;
            for (ox, px) in self.sums.chunks_mut(3).enumerate() {
                let x0 = ox as u32 * self.k;
                let cols = (x0 + self.k).min(self.src_w) - x0;
                let n = cols * block_rows;
                for v in px.iter_mut() {
                    self.out.push(((*v + n / 2) / n) as u8);
                    *v = 0;
                }
            }
        }
    }

    fn finish(self) -> Option<Frame> {
        let (w, h) = (self.src_w.div_ceil(self.k), self.src_h.div_ceil(self.k));
        Frame::from_raw(w, h, self.out)
    }
}

/// The upright photo for `orientation` (an EXIF chunk, if any).
fn upright(frame: Frame, exif: Option<&[u8]>) -> Frame {
    match exif.and_then(image::metadata::Orientation::from_exif_chunk) {
        Some(o) if o != image::metadata::Orientation::NoTransforms => {
            let mut img = image::DynamicImage::ImageRgb8(frame);
            img.apply_orientation(o);
            img.into_rgb8()
        }
        _ => frame,
    }
}

/// A large non-interlaced PNG (any bit depth) shrunk row by row; `None` when the file is small
/// enough or not of that kind (the whole-image path then decodes it, or says what is wrong).
fn png_shrunk(bytes: &[u8], max_side: u32) -> Option<Photo> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    // 16-bit samples keep their high byte, row by row (never a whole 16-bit image).
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().ok()?;
    let info = reader.info();
    let (w, h) = (info.width, info.height);
    if w.max(h) <= max_side || w > MAX_SIDE || h > MAX_SIDE || info.interlaced {
        return None;
    }
    let exif = info.exif_metadata.as_ref().map(|e| e.to_vec());
    let (color, depth) = reader.output_color_type();
    if depth != png::BitDepth::Eight {
        return None;
    }
    let channels = color.samples();
    let factor = w.max(h).div_ceil(max_side);
    let mut shrinker = BlockShrinker::new(w, h, factor);
    for _ in 0..h {
        let row = reader.next_row().ok()??;
        let data = row.data();
        if data.len() < w as usize * channels {
            return None;
        }
        shrinker.push_row(data, channels);
    }
    let frame = shrinker.finish()?;
    Some(Photo {
        frame: upright(frame, exif.as_deref()),
        factor,
    })
}

/// A large JPEG decoded at 1/2, 1/4 or 1/8 scale by the decoder itself (the IDCT on fewer
/// coefficients), then shrunk by the remaining whole factor; `None` when the file is small
/// enough, does not end with the end-of-image marker, or is in a pixel format other than
/// 8-bit grey or RGB.
fn jpeg_shrunk(bytes: &[u8], max_side: u32) -> Option<Photo> {
    // This decoder fills a truncated file with grey; the whole-image path refuses it.
    if !bytes.ends_with(&[0xFF, 0xD9]) {
        return None;
    }
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let (w, h) = (info.width as u32, info.height as u32);
    if w.max(h) <= max_side || w > MAX_SIDE || h > MAX_SIDE {
        return None;
    }
    let want = w.max(h).div_ceil(max_side);
    // The decoder's own scale: the largest of 8, 4, 2 that divides the factor wanted (the
    // result is then exactly that factor), else the largest below it (a little smaller).
    let dct = [8u32, 4, 2]
        .into_iter()
        .find(|&s| want % s == 0)
        .or_else(|| [8u32, 4, 2].into_iter().find(|&s| s <= want))
        .unwrap_or(1);
    let (sw, sh) = decoder
        .scale(w.div_ceil(dct) as u16, h.div_ceil(dct) as u16)
        .ok()?;
    let (sw, sh) = (sw as u32, sh as u32);
    if sw != w.div_ceil(dct) || sh != h.div_ceil(dct) {
        return None;
    }
    let channels = match decoder.info()?.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        _ => return None,
    };
    let pixels = decoder.decode().ok()?;
    if pixels.len() != (sw * sh) as usize * channels {
        return None;
    }
    let exif = decoder.exif_data().map(|e| e.to_vec());
    let rest = want.div_ceil(dct);
    let mut shrinker = BlockShrinker::new(sw, sh, rest);
    for row in pixels.chunks_exact(sw as usize * channels) {
        shrinker.push_row(row, channels);
    }
    drop(pixels);
    let frame = shrinker.finish()?;
    Some(Photo {
        frame: upright(frame, exif.as_deref()),
        factor: dct * rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic RGB test pattern with edges and gradients.
    fn pattern(w: u32, h: u32) -> Frame {
        Frame::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 7 % 251) as u8,
                (y * 13 % 241) as u8,
                ((x ^ y) % 256) as u8,
            ])
        })
    }

    fn encode(f: &Frame, fmt: image::ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        f.write_to(&mut buf, fmt).unwrap();
        buf.into_inner()
    }

    #[test]
    fn a_large_png_is_shrunk_while_decoding_exactly_as_after() {
        // Sides that do not divide by the factor: partial blocks at the right and bottom.
        let f = pattern(1001, 703);
        let png = encode(&f, image::ImageFormat::Png);
        let p = decode_photo(&png, 300).unwrap();
        assert_eq!(p.factor, 4);
        assert_eq!(p.frame, shrink(&f, 4));
        assert_eq!(p.frame.dimensions(), (251, 176));
        // Grey PNGs too.
        let grey = image::DynamicImage::ImageRgb8(f.clone()).into_luma8();
        let mut buf = Cursor::new(Vec::new());
        grey.write_to(&mut buf, image::ImageFormat::Png).unwrap();
        let p = decode_photo(buf.get_ref(), 500).unwrap();
        let whole = image::DynamicImage::ImageLuma8(grey).into_rgb8();
        assert_eq!((p.factor, p.frame), (3, shrink(&whole, 3)));
        // Small enough: untouched.
        let p = decode_photo(&png, 1001).unwrap();
        assert_eq!((p.factor, p.frame), (1, f));
    }

    #[test]
    fn a_large_jpeg_is_shrunk_by_the_decoder_close_to_the_whole_image_path() {
        let f = pattern(1600, 1200);
        let jpg = encode(&f, image::ImageFormat::Jpeg);
        let whole = decode_image(&jpg).unwrap();
        for (max_side, factor) in [(400, 4), (300, 6), (150, 16)] {
            let p = decode_photo(&jpg, max_side).unwrap();
            assert_eq!(p.factor, factor, "max side {max_side}");
            let r = shrink(&whole, factor);
            assert_eq!(p.frame.dimensions(), r.dimensions());
            let diff: f64 = p
                .frame
                .as_raw()
                .iter()
                .zip(r.as_raw())
                .map(|(a, b)| (*a as f64 - *b as f64).abs())
                .sum::<f64>()
                / r.as_raw().len() as f64;
            // The IDCT at a lower scale filters a little differently from averaging blocks.
            assert!(diff < 4.0, "max side {max_side}: mean difference {diff}");
        }
    }

    #[test]
    fn damaged_large_files_are_treated_as_the_whole_image_path_treats_them() {
        let f = pattern(1200, 900);
        let png = encode(&f, image::ImageFormat::Png);
        let e = decode_photo(&png[..png.len() / 2], 300).unwrap_err();
        assert!(!e.is_empty());
        // A JPEG cut short goes the whole-image way, whatever that decides.
        let jpg = encode(&f, image::ImageFormat::Jpeg);
        let cut = &jpg[..jpg.len() / 2];
        match (decode_photo(cut, 300), decode_image(cut)) {
            (Ok(p), Ok(whole)) => assert_eq!(p.frame, shrink(&whole, p.factor)),
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("streamed {:?} vs whole {:?}", a.is_ok(), b.is_ok()),
        }
    }
}
