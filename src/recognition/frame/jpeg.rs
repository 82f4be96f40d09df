//! JPEG structure without decoding: where a JPEG ends, segment by segment (a thumbnail in
//! an EXIF segment does not end it), and whether it ends at all. A file cut short is
//! decoded by some decoders with its missing part grey and no error; [`complete`] tells.

use std::io::BufRead;

/// The largest JPEG [`read_rest`] reads.
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// How an error of [`read_rest`] ends when the next image's start was read.
pub const NEXT_FRAME: &str = "(the next frame began)";

/// `Ok` when `bytes` hold a JPEG that reaches its end-of-image marker (bytes after it, such
/// as a maker's trailer, are allowed), else why not.
pub fn complete(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut r = std::io::Cursor::new(bytes);
    if bytes.len() < 2 || bytes[..2] != [0xFF, 0xD8] {
        return Err("no start-of-image marker".into());
    }
    r.set_position(2);
    read_rest(&mut r).map(|_| ())
}

fn byte(r: &mut impl BufRead) -> Option<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).ok().map(|_| b[0])
}

/// Reads up to and including the next start of image (FF D8): how many bytes came before
/// it, and whether one came before the stream ended.
pub fn to_start_of_image(r: &mut impl BufRead) -> (usize, bool) {
    let mut skipped = 0usize;
    let mut prev = 0u8;
    loop {
        let Some(b) = byte(r) else {
            return (skipped, false);
        };
        if prev == 0xFF && b == 0xD8 {
            return (skipped.saturating_sub(1), true);
        }
        prev = b;
        skipped += 1;
    }
}

/// The error for a stream that ended `n` bytes into a JPEG.
fn cut(n: usize) -> String {
    format!("a JPEG cut short after {n} bytes")
}

/// A segment's two length bytes and its body, after its marker, appended to `out`.
fn segment(r: &mut impl BufRead, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    let (hi, lo) = (
        byte(r).ok_or_else(|| cut(out.len()))?,
        byte(r).ok_or_else(|| cut(out.len()))?,
    );
    let len = u16::from_be_bytes([hi, lo]) as usize;
    if len < 2 {
        return Err("a JPEG segment of length under 2".into());
    }
    out.extend_from_slice(&[hi, lo]);
    let start = out.len();
    out.resize(start + len - 2, 0);
    r.read_exact(&mut out[start..]).map_err(|_| cut(start))
}

/// The rest of a JPEG after its start of image: segments, then the entropy-coded data up to
/// the end of image.
pub fn read_rest(r: &mut impl BufRead) -> std::result::Result<Vec<u8>, String> {
    let mut out = vec![0xFF, 0xD8];
    loop {
        // A marker: FF (fill FFs allowed), then its code.
        let mut code = byte(r).ok_or_else(|| cut(out.len()))?;
        if code != 0xFF {
            return Err(format!(
                "a JPEG with no marker where one belongs ({} bytes in)",
                out.len()
            ));
        }
        while code == 0xFF {
            code = byte(r).ok_or_else(|| cut(out.len()))?;
        }
        out.extend_from_slice(&[0xFF, code]);
        match code {
            0xD8 => return Err(format!("{} {NEXT_FRAME}", cut(out.len() - 2))),
            0xD9 => return Ok(out),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        segment(r, &mut out)?;
        if out.len() > MAX_FRAME_BYTES {
            return Err(format!("a JPEG over {MAX_FRAME_BYTES} bytes"));
        }
        if code == 0xDA {
            // Entropy-coded data up to the next marker that is not a stuffed byte or a
            // restart: FF 00 and FF D0..D7 belong to the data.
            loop {
                let b = byte(r).ok_or_else(|| cut(out.len()))?;
                if b != 0xFF {
                    out.push(b);
                } else {
                    let mut m = byte(r).ok_or_else(|| cut(out.len()))?;
                    while m == 0xFF {
                        m = byte(r).ok_or_else(|| cut(out.len()))?;
                    }
                    match m {
                        0x00 | 0xD0..=0xD7 => out.extend_from_slice(&[0xFF, m]),
                        0xD9 => {
                            out.extend_from_slice(&[0xFF, 0xD9]);
                            return Ok(out);
                        }
                        0xD8 => return Err(format!("{} {NEXT_FRAME}", cut(out.len()))),
                        _ => {
                            // Another scan's header (progressive): back to segments.
                            out.extend_from_slice(&[0xFF, m]);
                            segment(r, &mut out)?;
                            if m != 0xDA {
                                break;
                            }
                        }
                    }
                }
                if out.len() > MAX_FRAME_BYTES {
                    return Err(format!("a JPEG over {MAX_FRAME_BYTES} bytes"));
                }
            }
        }
    }
}
