//! Drawing detections onto a frame, for `facegate detect --draw`.

use crate::error::{Error, Result};
use crate::recognition::detect::Face;
use crate::recognition::frame::Frame;
use image::Rgb;
use imageproc::drawing::{draw_filled_circle_mut, draw_hollow_rect_mut};
use imageproc::rect::Rect;
use std::path::Path;

/// Writes `frame` with each face's box and landmarks drawn to the PNG file `out`.
pub fn draw_faces(frame: &Frame, faces: &[Face], out: &Path) -> Result<()> {
    let mut img = frame.clone();
    for f in faces {
        let [x, y, w, h] = f.xywh();
        let rect = Rect::at(x as i32, y as i32).of_size((w.max(1.0)) as u32, (h.max(1.0)) as u32);
        draw_hollow_rect_mut(&mut img, rect, Rgb([0, 255, 0]));
        draw_hollow_rect_mut(
            &mut img,
            Rect::at(x as i32 + 1, y as i32 + 1)
                .of_size((w.max(3.0) - 2.0) as u32, (h.max(3.0) - 2.0) as u32),
            Rgb([0, 255, 0]),
        );
        for p in f.landmarks {
            draw_filled_circle_mut(&mut img, (p[0] as i32, p[1] as i32), 2, Rgb([255, 0, 0]));
        }
    }
    img.save_with_format(out, image::ImageFormat::Png)
        .map_err(|e| match e {
            image::ImageError::IoError(io) => Error::io(out, io),
            e => Error::Invalid(format!("{}: {e}", out.display())),
        })
}
