//! Fuzz harnesses (bolero) for everything facegate reads from outside: the gallery file, the
//! kiosk config, image bytes through decoding and detection, and the LFW pair lists.
//!
//! Under `cargo test` each harness runs a bounded number of random inputs
//! (`FACEGATE_FUZZ_ITERATIONS`, default below); a long run sets bolero's own
//! `BOLERO_RANDOM_ITERATIONS` (or `BOLERO_RANDOM_TEST_TIME_MS`), e.g.
//!
//! ```sh
//! BOLERO_RANDOM_ITERATIONS=1000000 cargo test --test fuzz -- --nocapture --test-threads 1
//! ```
//!
//! Random bytes alone rarely get past a checksum or a TOML parser, so most inputs are edits
//! of a valid seed (a real gallery, the demo config, real photos encoded small, a real pair
//! list), and the gallery harness recomputes the checksum line after editing the body, so the
//! parser and the validation behind it see the damage. Each harness checks what must hold
//! for any input, beyond "no panic": a gallery that loads is one the door may trust
//! (finite unit-scale templates, unique people, an edited body never passes the signature),
//! a config that loads has only in-range numbers, detected faces lie in the frame.

mod common;

use facegate::eval::parse_pairs_text;
use facegate::identity::gallery::{Gallery, TEMPLATE_NORM};
use facegate::identity::signing::SigningKey;
use facegate::kiosk::config::Config;
use facegate::recognition::detect::{Detector, Mtcnn, MtcnnConfig};
use facegate::recognition::embed::Embedding;
use facegate::recognition::frame::decode_image;
use facegate::recognition::models::sha256_hex;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Inputs per harness under a plain `cargo test`.
fn iterations(default: usize) -> usize {
    std::env::var("FACEGATE_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One edit of a seed: `kind` picks replace / insert / delete / duplicate a span.
type Edit = (u8, u16, u8);

/// Most edits per input: a few keep the input close enough to valid to reach deep checks.
const MAX_EDITS: usize = 4;

/// `seed` with the first [`MAX_EDITS`] of `edits` applied in order (positions wrap around
/// the current length).
fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(kind, pos, byte) in edits.iter().take(MAX_EDITS) {
        let at = if v.is_empty() {
            0
        } else {
            pos as usize % v.len()
        };
        match kind % 5 {
            0 if !v.is_empty() => v[at] = byte,
            1 => v.insert(at, byte),
            2 if !v.is_empty() => {
                let end = (at + 1 + byte as usize % 16).min(v.len());
                v.drain(at..end);
            }
            3 if !v.is_empty() => {
                let end = (at + 1 + byte as usize % 32).min(v.len());
                let span: Vec<u8> = v[at..end].to_vec();
                v.splice(at..at, span);
            }
            // Flip one bit: the edit a damaged SD card makes.
            _ if !v.is_empty() => v[at] ^= 1 << (byte % 8),
            _ => v.push(byte),
        }
    }
    v
}

/// Counts of a harness's inputs, printed when the harness ends.
struct Tally {
    name: &'static str,
    inputs: AtomicUsize,
    accepted: AtomicUsize,
}

impl Tally {
    const fn new(name: &'static str) -> Self {
        Tally {
            name,
            inputs: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
        }
    }
    fn input(&self, accepted: bool) {
        self.inputs.fetch_add(1, Ordering::Relaxed);
        if accepted {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn report(&self) {
        let n = self.inputs.load(Ordering::Relaxed);
        eprintln!(
            "fuzz {}: {n} inputs, {} accepted",
            self.name,
            self.accepted.load(Ordering::Relaxed)
        );
        assert!(n > 0, "fuzz {}: no input ran", self.name);
    }
}

// ---------------------------------------------------------------------------------------
// The gallery loader

const DIM: usize = 128;
const MODEL: &str = "dlib_fp32";

/// A template of norm ~1.45 (dlib's range) that differs per `seed`.
fn template(seed: u32) -> Embedding {
    let raw: Vec<f32> = (0..DIM)
        .map(|i| (i as f32 * 0.37 + seed as f32 * 1.7).sin())
        .collect();
    let n = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
    Embedding(raw.into_iter().map(|v| v / n * 1.45).collect())
}

struct GallerySeeds {
    /// A valid unsigned gallery file.
    plain: Vec<u8>,
    /// The signature line and the TOML body of a valid signed gallery.
    signature_line: String,
    signed_body: String,
    key: SigningKey,
}

fn gallery_seeds() -> &'static GallerySeeds {
    static SEEDS: OnceLock<GallerySeeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::new(MODEL);
        g.add("Ada", vec![template(1), template(2)], 1_700_000_000)
            .unwrap();
        g.add("Grace", vec![template(3)], 1_700_000_100).unwrap();
        // A template another network made on a grant (format 3's migrated sets).
        let grace = g.find("Grace").unwrap().clone();
        let v2 = Embedding(template(4).0.iter().map(|v| v / 1.45).collect());
        g.add_migrated(
            (grace.id, "Grace", grace.created),
            "v2:fuzz",
            v2,
            1_700_000_200,
            5,
        )
        .unwrap();
        let plain_path = dir.path().join("plain.toml");
        g.save(&plain_path).unwrap();
        let (secret, _) = facegate::identity::signing::keygen(dir.path()).unwrap();
        let key = SigningKey::load(&secret).unwrap();
        let signed_path = dir.path().join("signed.toml");
        g.save_signed(&signed_path, Some(&key)).unwrap();
        let signed = std::fs::read_to_string(&signed_path).unwrap();
        let mut lines = signed.splitn(3, '\n');
        let _checksum = lines.next().unwrap();
        let signature_line = lines.next().unwrap().to_string();
        assert!(signature_line.starts_with("# ed25519 "), "{signature_line}");
        let signed_body = lines.next().unwrap().to_string();
        GallerySeeds {
            plain: std::fs::read(&plain_path).unwrap(),
            signature_line,
            signed_body,
            key,
        }
    })
}

/// `body` behind a checksum line that matches it.
fn with_checksum(rest: &[u8]) -> Vec<u8> {
    let mut out = format!("# sha256 {}\n", sha256_hex(rest)).into_bytes();
    out.extend_from_slice(rest);
    out
}

/// What every gallery that loads must satisfy, whatever its bytes were.
fn check_loaded(g: &Gallery) {
    let mut ids = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    for p in g.people() {
        assert!(ids.insert(p.id), "duplicate id {} loaded", p.id);
        assert!(names.insert(p.name.clone()), "duplicate name {:?}", p.name);
        assert!(
            !p.templates.is_empty(),
            "{:?} loaded without templates",
            p.name
        );
        for t in p
            .templates
            .iter()
            .chain(p.migrated.iter().flat_map(|m| &m.templates))
        {
            assert!(t.0.iter().all(|v| v.is_finite()), "non-finite template");
            assert!(TEMPLATE_NORM.contains(&t.norm()), "norm {}", t.norm());
        }
        let mut models = std::collections::HashSet::new();
        for m in &p.migrated {
            assert!(models.insert(m.model.clone()), "two sets of {}", m.model);
            assert!(m.model != g.model && !m.templates.is_empty());
            assert_eq!(m.added.len(), m.templates.len());
            assert!(m.templates.iter().all(|t| t.dim() == m.templates[0].dim()));
        }
    }
    // The kiosk's dimension check: a wrong-length template must never reach a match.
    let dims_ok = g
        .people()
        .iter()
        .all(|p| p.templates.iter().all(|t| t.dim() == DIM));
    if dims_ok && !g.people().is_empty() {
        let probe = template(99);
        let (best, second) = g.nearest_two(&probe);
        let best = best.expect("a non-empty gallery has a nearest person");
        assert!(best.distance.is_finite() && best.distance >= 0.0);
        if let Some(s) = second {
            assert!(s.distance >= best.distance);
        }
    } else if !dims_ok {
        let probe = template(99);
        for c in g.search(&probe) {
            let p = &g.people()[c.index];
            if p.templates.iter().all(|t| t.dim() != DIM) {
                assert_eq!(c.distance, f32::INFINITY, "a wrong-length template matched");
            }
        }
    }
}

static GALLERY: Tally = Tally::new("gallery");

#[test]
fn fuzz_gallery_loader() {
    let seeds = gallery_seeds();
    let path = Path::new("fuzz-gallery.toml");
    let ok_before = Gallery::parse(path, &seeds.plain).unwrap();
    assert_eq!(ok_before.people().len(), 2);
    bolero::check!()
        .with_type::<(u8, Vec<Edit>, Vec<u8>)>()
        .with_iterations(iterations(3000))
        .for_each(|(mode, edits, raw)| {
            let bytes = match mode % 4 {
                // Raw bytes, and raw bytes behind a valid checksum.
                0 => raw.clone(),
                1 => with_checksum(raw),
                // An edited file (the checksum catches it unless the edit missed).
                2 => mutate(&seeds.plain, edits),
                // An edited body behind a recomputed checksum: the parser sees it.
                _ => {
                    let body_start = seeds.plain.iter().position(|&b| b == b'\n').unwrap() + 1;
                    with_checksum(&mutate(&seeds.plain[body_start..], edits))
                }
            };
            let loaded = Gallery::parse(path, &bytes);
            if let Ok(g) = &loaded {
                check_loaded(g);
            }
            GALLERY.input(loaded.is_ok());
        });
    GALLERY.report();
}

static SIGNED: Tally = Tally::new("signed gallery");

/// A signed gallery whose body was edited (checksum recomputed, signature line kept) never
/// verifies: forging a person in needs the key.
#[test]
fn fuzz_signed_gallery_refuses_edits() {
    let seeds = gallery_seeds();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    let key = seeds.key.verifying_key();
    let intact =
        with_checksum(format!("{}\n{}", seeds.signature_line, seeds.signed_body).as_bytes());
    std::fs::write(&path, &intact).unwrap();
    Gallery::load_verified(&path, MODEL, DIM, Some(&key)).expect("the intact signed seed");
    let lock = Mutex::new(());
    bolero::check!()
        .with_type::<Vec<Edit>>()
        .with_iterations(iterations(1000))
        .for_each(|edits| {
            let body = mutate(seeds.signed_body.as_bytes(), edits);
            let mut rest = format!("{}\n", seeds.signature_line).into_bytes();
            rest.extend_from_slice(&body);
            let _g = lock.lock().unwrap();
            std::fs::write(&path, with_checksum(&rest)).unwrap();
            let r = Gallery::load_verified(&path, MODEL, DIM, Some(&key));
            if body != seeds.signed_body.as_bytes() {
                assert!(r.is_err(), "an edited signed body verified: {edits:?}");
            }
            SIGNED.input(r.is_ok());
        });
    SIGNED.report();
}

// ---------------------------------------------------------------------------------------
// The kiosk config

static CONFIG: Tally = Tally::new("config");

#[test]
fn fuzz_config_loader() {
    let seed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/facegate.toml")).unwrap();
    let demo = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml")).unwrap();
    let path = Path::new("/nonexistent/fuzz/facegate.toml");
    Config::parse(std::str::from_utf8(&seed).unwrap(), path).expect("the documented config");
    bolero::check!()
        .with_type::<(u8, Vec<Edit>, Vec<u8>)>()
        .with_iterations(iterations(3000))
        .for_each(|(mode, edits, raw)| {
            let bytes = match mode % 3 {
                0 => raw.clone(),
                1 => mutate(&seed, edits),
                _ => mutate(&demo, edits),
            };
            let Ok(text) = std::str::from_utf8(&bytes) else {
                CONFIG.input(false);
                return;
            };
            let r = Config::parse(text, path);
            if let Ok(c) = &r {
                // Whatever was accepted is in range and usable without a panic.
                let d = &c.decision;
                assert!(d.k >= 1 && d.k <= d.n, "k {} n {}", d.k, d.n);
                assert!(d.window_secs.is_finite() && d.window_secs > 0.0);
                assert!(d.cooldown_secs.is_finite() && d.cooldown_secs >= 0.0);
                let q = &c.quality;
                for v in [q.min_eye_distance, q.min_sharpness, q.max_yaw] {
                    assert!(v.is_finite(), "quality gate {v}");
                }
                // 0 plays a folder as fast as it decodes; a camera needs a rate.
                let fps = c.source.fps;
                assert!(fps == 0.0 || (0.1..=120.0).contains(&fps), "fps {fps}");
                assert!(c.source.kind != facegate::kiosk::config::SourceKind::Camera || fps > 0.0);
                if fps > 0.0 {
                    let _ = std::time::Duration::from_secs_f64(1.0 / fps);
                }
                assert!(c.door.pulse_ms >= 1);
                assert!(
                    std::time::Duration::from_millis(c.door.pulse_ms)
                        <= facegate::kiosk::door::MAX_PULSE
                );
                assert!(c.detector.min_face.is_finite());
                for people in [0, 1, 10, 1000, usize::MAX] {
                    let m = c.match_policy(people);
                    assert!(m.threshold.is_finite() && m.threshold > 0.0 && m.threshold <= 2.0);
                    assert!(m.min_margin.is_finite() && m.min_margin >= 0.0);
                }
                let _ = c.mtcnn();
            }
            CONFIG.input(r.is_ok());
        });
    CONFIG.report();
}

// ---------------------------------------------------------------------------------------
// Image bytes through decoding and detection

/// Real photos, shrunk to at most 96 px and encoded as PNG, JPEG, BMP, GIF, TIFF and WebP.
fn image_seeds() -> &'static Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut out = Vec::new();
        for rel in [
            "faces/labeled/obama/obama.jpg",
            "faces/labeled/biden/biden.jpg",
        ] {
            let img = image::open(common::data(rel)).unwrap().thumbnail(96, 96);
            for fmt in [
                image::ImageFormat::Png,
                image::ImageFormat::Jpeg,
                image::ImageFormat::Bmp,
                image::ImageFormat::Gif,
                image::ImageFormat::Tiff,
                image::ImageFormat::WebP,
            ] {
                let mut buf = std::io::Cursor::new(Vec::new());
                img.to_rgb8().write_to(&mut buf, fmt).unwrap();
                out.push(buf.into_inner());
            }
        }
        out
    })
}

fn detector() -> &'static Mutex<Mtcnn> {
    static DET: OnceLock<Mutex<Mtcnn>> = OnceLock::new();
    DET.get_or_init(|| {
        Mutex::new(
            Mtcnn::new(
                &common::store(),
                MtcnnConfig {
                    min_face: 12.0,
                    ..Default::default()
                },
            )
            .unwrap(),
        )
    })
}

static IMAGES: Tally = Tally::new("image decode + detect");

#[test]
fn fuzz_image_decode_and_detect() {
    let seeds = image_seeds();
    for s in seeds {
        decode_image(s).expect("every seed decodes");
    }
    bolero::check!()
        .with_type::<(u8, Vec<Edit>, Vec<u8>)>()
        .with_iterations(iterations(400))
        .for_each(|(which, edits, raw)| {
            let bytes = if *which as usize % (seeds.len() + 1) == seeds.len() {
                raw.clone()
            } else {
                mutate(&seeds[*which as usize % seeds.len()], edits)
            };
            let frame = match decode_image(&bytes) {
                Ok(f) => f,
                Err(why) => {
                    assert!(!why.is_empty());
                    IMAGES.input(false);
                    return;
                }
            };
            // Detection on what decoded (kept small: a fuzzer's image may claim any size).
            if frame.width() as u64 * frame.height() as u64 <= 256 * 256 {
                let faces = detector().lock().unwrap().detect(&frame).unwrap();
                let (w, h) = (frame.width() as f32, frame.height() as f32);
                for f in faces {
                    assert!(f.score.is_finite() && (0.0..=1.0).contains(&f.score));
                    let [x1, y1, x2, y2] = f.bbox;
                    assert!([x1, y1, x2, y2].iter().all(|v| v.is_finite()));
                    assert!(x2 > x1 && y2 > y1, "{:?}", f.bbox);
                    // Boxes are squared and may overhang, never by more than the frame.
                    assert!(
                        x1 > -w && y1 > -h && x2 < 2.0 * w && y2 < 2.0 * h,
                        "{:?}",
                        f.bbox
                    );
                    assert!(f.landmarks.iter().flatten().all(|v| v.is_finite()));
                }
            }
            IMAGES.input(true);
        });
    IMAGES.report();
}

// ---------------------------------------------------------------------------------------
// The LFW pair-list parser

static PAIRS: Tally = Tally::new("pair list");

#[test]
fn fuzz_pair_list_parser() {
    let full = std::fs::read_to_string(common::data("lfw/pairsDevTest.txt")).unwrap();
    // A small valid list: the header `1 n` and the first n genuine and n impostor lines.
    let lines: Vec<&str> = full.lines().collect();
    let n: usize = lines[0].trim().parse().unwrap();
    let mut seed = "2 3\n".to_string();
    for fold in 0..2 {
        for l in lines[1 + fold * 3..4 + fold * 3]
            .iter()
            .chain(&lines[1 + n + fold * 3..4 + n + fold * 3])
        {
            seed.push_str(l);
            seed.push('\n');
        }
    }
    let path = Path::new("fuzz-pairs.txt");
    assert_eq!(parse_pairs_text(&seed, path).unwrap().len(), 12);
    bolero::check!()
        .with_type::<(bool, Vec<Edit>, Vec<u8>)>()
        .with_iterations(iterations(3000))
        .for_each(|(raw_mode, edits, raw)| {
            let bytes = if *raw_mode {
                raw.clone()
            } else {
                mutate(seed.as_bytes(), edits)
            };
            let text = String::from_utf8_lossy(&bytes);
            let r = parse_pairs_text(&text, path);
            if let Ok(pairs) = &r {
                let header: Vec<usize> = text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap()
                    .split_whitespace()
                    .map(|t| t.parse().unwrap())
                    .collect();
                let (folds, per) = match header.as_slice() {
                    [f, n] => (*f, *n),
                    [n] => (1, *n),
                    _ => panic!("accepted header {header:?}"),
                };
                assert_eq!(pairs.len(), folds * 2 * per);
                assert!(pairs.iter().all(|p| p.fold < folds));
            }
            PAIRS.input(r.is_ok());
        });
    PAIRS.report();
}
