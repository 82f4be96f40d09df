//! Drawing detections onto a frame: `facegate detect --draw` and the desk's preview.

use crate::error::{Error, Result};
use crate::recognition::detect::Face;
use crate::recognition::frame::Frame;
use image::Rgb;
use imageproc::drawing::{draw_filled_circle_mut, draw_hollow_rect_mut};
use imageproc::rect::Rect;
use std::path::Path;

/// Writes `frame` with each face's box and landmarks drawn to the PNG file `out`.
pub fn draw_faces(frame: &Frame, faces: &[Face], out: &Path) -> Result<()> {
    let ok = vec![true; faces.len()];
    annotate(frame, faces, &ok)
        .save_with_format(out, image::ImageFormat::Png)
        .map_err(|e| match e {
            image::ImageError::IoError(io) => Error::io(out, io),
            e => Error::Invalid(format!("{}: {e}", out.display())),
        })
}

/// `frame` with each face's box (green where `ok[i]`, else red) and landmarks, as a JPEG
/// (the desk's live preview).
pub fn annotated_jpeg(frame: &Frame, faces: &[Face], ok: &[bool]) -> Result<Vec<u8>> {
    let img = annotate(frame, faces, ok);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&img)
        .map_err(|e| Error::Invalid(format!("preview JPEG: {e}")))?;
    Ok(out)
}

fn annotate(frame: &Frame, faces: &[Face], ok: &[bool]) -> Frame {
    let mut img = frame.clone();
    for (i, f) in faces.iter().enumerate() {
        let colour = if ok.get(i).copied().unwrap_or(false) {
            Rgb([0, 255, 0])
        } else {
            Rgb([255, 64, 0])
        };
        let [x, y, w, h] = f.xywh();
        let rect = Rect::at(x as i32, y as i32).of_size((w.max(1.0)) as u32, (h.max(1.0)) as u32);
        draw_hollow_rect_mut(&mut img, rect, colour);
        draw_hollow_rect_mut(
            &mut img,
            Rect::at(x as i32 + 1, y as i32 + 1)
                .of_size((w.max(3.0) - 2.0) as u32, (h.max(3.0) - 2.0) as u32),
            colour,
        );
        for p in f.landmarks {
            draw_filled_circle_mut(&mut img, (p[0] as i32, p[1] as i32), 2, Rgb([255, 0, 0]));
        }
    }
    img
}
