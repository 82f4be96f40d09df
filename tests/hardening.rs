//! The kiosk tried as an attacker and an operator would, on real photos: revocation without a
//! restart, damaged or forged galleries while running, a missing gallery at first start,
//! templates of the wrong shape, a full disk under the audit log, malformed inputs.

mod common;

use common::{feed, kiosk_config, obama_gallery, unlocks};
use facegate::identity::gallery::Gallery;
use facegate::identity::identify::{identify, MatchPolicy};
use facegate::kiosk::door::SimulatedRelay;
use facegate::kiosk::watch::GalleryState;
use facegate::kiosk::Kiosk;
use facegate::recognition::frame::{load_image, Frame};
use facegate::recognition::models::sha256_hex;
use std::path::Path;

/// Four photos of Obama not used for enrollment, loaded once.
fn obama_frames() -> Vec<Frame> {
    let obama = common::images_in(&common::data("faces/labeled/obama"));
    obama[2..6].iter().map(|p| load_image(p).unwrap()).collect()
}

#[test]
fn revocation_takes_effect_at_the_next_frame_and_a_bad_reload_denies_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let g = obama_gallery(dir.path());
    let good = std::fs::read(&g).unwrap();
    let cfg = kiosk_config(dir.path(), &g, dir.path());
    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(&cfg, Box::new(relay.clone())).unwrap();
    let frames = obama_frames();

    assert_eq!(feed(&mut k, &frames[..3], 0.0), ["Obama"]);
    assert_eq!(unlocks(&relay), 1);

    // `facegate people remove Obama` while the kiosk runs: refused from the next frame on.
    let mut gallery = Gallery::load_any(&g).unwrap();
    assert!(gallery.remove("Obama"));
    gallery.save(&g).unwrap();
    let unknown = k.summary.unknown;
    assert_eq!(feed(&mut k, &frames, 10.0), Vec::<String>::new());
    assert_eq!(k.summary.unknown - unknown, 4, "every frame: unknown face");
    assert_eq!(k.gallery().gallery().people().len(), 0);

    // Enrolled again: granted again, no restart.
    std::fs::write(&g, &good).unwrap();
    assert_eq!(feed(&mut k, &frames[..3], 20.0), ["Obama"]);

    // A damaged file (one flipped bit) is refused, and the old gallery is not kept.
    let mut bad = good.clone();
    let n = bad.len() - 40;
    bad[n] ^= 0x04;
    std::fs::write(&g, &bad).unwrap();
    assert_eq!(feed(&mut k, &frames, 30.0), Vec::<String>::new());
    match k.gallery().state() {
        GalleryState::Refused(why) => assert!(why.contains("damaged"), "{why}"),
        s => panic!("state {s:?}"),
    }
    // A good file again: granted again.
    std::fs::write(&g, &good).unwrap();
    assert_eq!(feed(&mut k, &frames[..3], 40.0), ["Obama"]);
    drop(k);
    assert_eq!(unlocks(&relay), 3);
    assert!(!relay.events().lock().unwrap().last().unwrap().unlocked);
}

#[test]
fn a_missing_gallery_is_an_empty_one_until_someone_is_enrolled() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("state/gallery.toml");
    let cfg = kiosk_config(dir.path(), &g, dir.path());
    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(&cfg, Box::new(relay.clone())).expect("first start without a gallery");
    assert_eq!(k.gallery().state(), &GalleryState::Missing);
    let frames = obama_frames();
    assert_eq!(feed(&mut k, &frames, 0.0), Vec::<String>::new());
    assert_eq!(k.summary.unknown, 4);

    // The reception desk enrolls Obama: the running kiosk picks the file up.
    std::fs::create_dir_all(g.parent().unwrap()).unwrap();
    let made = obama_gallery(dir.path());
    std::fs::rename(made, &g).unwrap();
    assert_eq!(feed(&mut k, &frames[..3], 10.0), ["Obama"]);
    assert_eq!(k.gallery().state(), &GalleryState::Loaded);
    drop(k);
    assert_eq!(unlocks(&relay), 1);
}

/// Rewrites the gallery at `g` with `edit` applied to its TOML body and a fresh checksum:
/// what someone who can write the file, but holds no key, can do.
fn forge(g: &Path, edit: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(g).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    let body = edit(body);
    std::fs::write(
        g,
        format!("# sha256 {}\n{body}", sha256_hex(body.as_bytes())),
    )
    .unwrap();
}

#[test]
fn templates_of_the_wrong_shape_and_duplicate_people_are_refused_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let g = obama_gallery(dir.path());
    let good = std::fs::read(&g).unwrap();
    let model = common::store().model_id("dlib_fp32").unwrap();
    // Four values (bytes 127, 127, 0, 0: norm 0.70, plausible): before, `zip` compared them
    // with the probe's first values only, so they matched every stranger.
    let one_float = "f38AAA==";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "four-value template",
            format!("\n[[people]]\nid = 7\nname = \"Mallory\"\ncreated = 0\ntemplates = [\"{one_float}\"]\n"),
            "4 values",
        ),
        (
            "no templates",
            "\n[[people]]\nid = 9\nname = \"Mallory\"\ncreated = 0\ntemplates = []\n".into(),
            "no templates",
        ),
    ];
    for (what, extra, want) in cases {
        std::fs::write(&g, &good).unwrap();
        forge(&g, |b| format!("{b}{extra}"));
        let e = Gallery::load(&g, &model, 128).unwrap_err().to_string();
        assert!(
            e.contains(want) && e.contains("gallery.toml"),
            "{what}: {e}"
        );
    }
    // A duplicate id with a valid template: the real template of Obama copied under his id.
    std::fs::write(&g, &good).unwrap();
    forge(&g, |b| {
        let person = &b[b.find("[[people]]").unwrap()..];
        format!(
            "{b}\n{}",
            person.replace("name = \"Obama\"", "name = \"Mallory\"")
        )
    });
    let e = Gallery::load(&g, &model, 128).unwrap_err().to_string();
    assert!(e.contains("appears twice"), "{e}");

    // In memory too, a one-float template never matches: the distance is infinite.
    let mut rec = common::recognizer("dlib_fp32", 40.0);
    let mut gallery = Gallery::new(rec.model_id());
    gallery
        .add(
            "Mallory",
            vec![facegate::recognition::embed::Embedding(vec![0.0])],
            0,
        )
        .unwrap();
    let biden = load_image(common::data("faces/labeled/biden/biden.jpg")).unwrap();
    let faces = rec.detect(&biden).unwrap();
    let e = rec.embed_face(&biden, &faces[0]).unwrap();
    let r = identify(
        &gallery,
        &e,
        MatchPolicy {
            threshold: 0.6,
            min_margin: 0.0,
        },
    );
    assert_eq!(r.person, None);
    assert_eq!(r.distance, Some(f32::INFINITY));
}

#[test]
fn a_grant_that_cannot_be_audited_keeps_the_door_locked() {
    let dir = tempfile::tempdir().unwrap();
    let g = obama_gallery(dir.path());
    let mut cfg = kiosk_config(dir.path(), &g, dir.path());
    // A log at its size limit: the grant's record needs a rotation, and the log's folder is
    // gone by then (a card failing, a folder removed): the record cannot be written.
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("audit.jsonl");
    std::fs::write(&log, "{}\n".repeat(2048)).unwrap();
    cfg.audit.path = Some(log);
    cfg.audit.max_bytes = 4096;
    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(&cfg, Box::new(relay.clone())).unwrap();
    std::fs::remove_dir_all(&logs).unwrap();
    std::fs::write(&logs, b"not a folder").unwrap();
    let frames = obama_frames();
    let results: Vec<_> = frames[..3]
        .iter()
        .enumerate()
        .map(|(i, f)| k.process(f, i as f64 * 0.2))
        .collect();
    let e = results[2].as_ref().unwrap_err().to_string();
    assert!(e.contains("audit.jsonl"), "{e}");
    assert!(k.summary.grants.is_empty(), "a grant was counted");
    drop(k);
    assert_eq!(
        unlocks(&relay),
        0,
        "the door opened without an audit record"
    );
}

#[test]
fn the_audit_log_holds_whole_lines_for_each_grant() {
    let dir = tempfile::tempdir().unwrap();
    let g = obama_gallery(dir.path());
    let cfg = kiosk_config(dir.path(), &g, dir.path());
    let mut k = Kiosk::new(&cfg, Box::new(SimulatedRelay::new())).unwrap();
    let frames = obama_frames();
    assert_eq!(feed(&mut k, &frames[..3], 0.0), ["Obama"]);
    assert_eq!(feed(&mut k, &frames[..3], 10.0), ["Obama"]);
    drop(k);
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let grants: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a whole JSON line"))
        .filter(|v: &serde_json::Value| v["decision"] == "grant")
        .collect();
    assert_eq!(grants.len(), 2);
    for v in grants {
        assert_eq!(v["person"], "Obama");
        let d = v["distance"].as_f64().unwrap();
        assert!(d > 0.0 && d < 0.5377, "{d}");
        assert_eq!(v["frames"], 3);
    }
}

#[test]
fn malformed_command_lines_are_refused_with_a_message_not_a_panic() {
    let img = common::data("faces/labeled/obama/obama.jpg");
    let img = img.to_str().unwrap();
    for (args, want) in [
        (vec!["--min-face", "0", "detect", img], "outside 12 to 2000"),
        (
            vec!["--min-face", "NaN", "detect", img],
            "outside 12 to 2000",
        ),
        (vec!["--min-face", "-5", "detect", img], "--min-face"),
        (vec!["bench", img, "--runs", "0"], "--runs"),
        (vec!["verify", img, img, "--threshold", "10"], "at most 2"),
        (vec!["--model", "pnet", "detect", img], "dlib_fp32"),
    ] {
        let out = common::facegate(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_last_person_id_cannot_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let g = obama_gallery(dir.path());
    forge(&g, |b| b.replace("id = 1\n", "id = 4294967295\n"));
    let model = common::store().model_id("dlib_fp32").unwrap();
    let mut gallery = Gallery::load(&g, &model, 128).unwrap();
    assert_eq!(gallery.people()[0].id, u32::MAX);
    let t = gallery.people()[0].templates.clone();
    let e = gallery.add("Next", t, 0).unwrap_err().to_string();
    assert!(e.contains("no person id left"), "{e}");
}

#[test]
fn a_door_with_a_public_key_uses_only_galleries_signed_by_it() {
    use facegate::identity::signing::{keygen, SigningKey};
    let dir = tempfile::tempdir().unwrap();
    let station = dir.path().join("station");
    let (secret, public) = keygen(&station).unwrap();
    let key = SigningKey::load(&secret).unwrap();
    let g = obama_gallery(dir.path());
    Gallery::load_any(&g)
        .unwrap()
        .resign(&g, &key, None)
        .unwrap();
    let signed = std::fs::read(&g).unwrap();
    let mut cfg = kiosk_config(dir.path(), &g, dir.path());
    cfg.gallery.public_key = Some(public.clone());
    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(&cfg, Box::new(relay.clone())).unwrap();
    let frames = obama_frames();
    assert_eq!(feed(&mut k, &frames[..3], 0.0), ["Obama"]);

    // Someone with write access but no key adds Mallory (Obama's template under another
    // name) and fixes the checksum: the running door refuses the file, everyone is denied.
    let mallory = |b: &str| {
        let person = &b[b.find("[[people]]").unwrap()..];
        let person = person
            .replace("name = \"Obama\"", "name = \"Mallory\"")
            .replace("id = 1", "id = 2");
        format!("{b}\n{person}")
    };
    forge(&g, |rest| {
        // Keep the old signature line: it signs the old body, not this one.
        mallory(rest)
    });
    assert_eq!(feed(&mut k, &frames, 10.0), Vec::<String>::new());
    match k.gallery().state() {
        GalleryState::Refused(why) => assert!(why.contains("bad signature"), "{why}"),
        s => panic!("state {s:?}"),
    }
    // Unsigned altogether: refused too, at start as while running.
    std::fs::write(&g, &signed).unwrap();
    let text = std::fs::read_to_string(&g).unwrap();
    let body = text.splitn(3, '\n').nth(2).unwrap().to_string();
    std::fs::write(
        &g,
        format!("# sha256 {}\n{body}", sha256_hex(body.as_bytes())),
    )
    .unwrap();
    // At start the door comes up locked and says why.
    let fresh = Kiosk::new(&cfg, Box::new(SimulatedRelay::new())).unwrap();
    match fresh.gallery().state() {
        GalleryState::Refused(why) => assert!(why.contains("not signed"), "{why}"),
        s => panic!("state {s:?}"),
    }
    drop(fresh);
    assert_eq!(feed(&mut k, &frames, 20.0), Vec::<String>::new());

    // The signed file again: granted again.
    std::fs::write(&g, &signed).unwrap();
    assert_eq!(feed(&mut k, &frames[..3], 30.0), ["Obama"]);
    drop(k);
    assert_eq!(unlocks(&relay), 2);

    // Changing a signed gallery needs the key (`people remove` without it is refused and the
    // file is untouched); with it, the result is signed again.
    let remove = [
        "people",
        "--gallery",
        g.to_str().unwrap(),
        "remove",
        "Obama",
    ];
    let out = common::facegate(&remove);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is signed"));
    assert_eq!(std::fs::read(&g).unwrap(), signed);
    let out = common::facegate_cmd()
        .args(remove)
        .env("FACEGATE_SIGNING_KEY", &secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vk = facegate::identity::signing::VerifyingKey::load(&public).unwrap();
    let model = common::store().model_id("dlib_fp32").unwrap();
    let left = Gallery::load_verified(&g, &model, 128, Some(&vk)).unwrap();
    assert!(left.people().is_empty());
}

/// Frames from a list, with an error in place of every `None`; sets `stop` after `stop_after`
/// frames.
struct Scripted {
    frames: Vec<Option<Frame>>,
    next: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop_after: usize,
}

impl facegate::recognition::source::FrameSource for Scripted {
    fn next_frame(&mut self) -> facegate::Result<Option<Frame>> {
        if self.next == self.stop_after {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let i = self.next;
        self.next += 1;
        match self.frames.get(i) {
            None => Ok(None),
            Some(Some(f)) => Ok(Some(f.clone())),
            Some(None) => Err(facegate::Error::Hardware("camera 0: unplugged".into())),
        }
    }
    fn describe(&self) -> String {
        "scripted".into()
    }
}

#[test]
fn source_errors_keep_the_door_locked_and_the_loop_going_and_stop_locks() {
    let dir = tempfile::tempdir().unwrap();
    let g = obama_gallery(dir.path());
    let cfg = kiosk_config(dir.path(), &g, dir.path());
    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(&cfg, Box::new(relay.clone())).unwrap();
    let f = obama_frames();
    // Obama, the camera fails twice, Obama twice more: the errors break nothing, the frames
    // after them still count, and the grant comes on the third good frame.
    let frames = vec![
        Some(f[0].clone()),
        None,
        None,
        Some(f[1].clone()),
        Some(f[2].clone()),
    ];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut src = Scripted {
        frames: frames.clone(),
        next: 0,
        stop: stop.clone(),
        stop_after: usize::MAX,
    };
    let s = k.run(&mut src, 5.0, None, &stop).unwrap();
    assert_eq!(s.source_errors, 2);
    assert_eq!(s.grants, ["Obama"]);
    assert_eq!(s.accounted(), 5);
    let events = relay.events();
    let during: Vec<_> = events.lock().unwrap().clone();
    assert_eq!(during.iter().filter(|e| e.unlocked).count(), 1);
    assert_eq!(
        during
            .iter()
            .filter(|e| e.why == "frame source failed")
            .count(),
        2,
        "locked on each source error"
    );

    // The stop flag (SIGINT/SIGTERM) ends the loop at the next turn, door locked.
    let mut src = Scripted {
        frames: vec![Some(f[0].clone()); 100],
        next: 0,
        stop: stop.clone(),
        stop_after: 2,
    };
    stop.store(false, std::sync::atomic::Ordering::SeqCst);
    let s = k.run(&mut src, 5.0, None, &stop).unwrap();
    assert_eq!(
        src.next, 3,
        "one more frame was read after the flag was set"
    );
    assert!(s.frames < 10);
    let last = events.lock().unwrap().last().cloned().unwrap();
    assert!(!last.unlocked && last.why == "kiosk stopped", "{last:?}");
}

#[test]
fn a_huge_photo_is_detected_on_a_shrunk_copy_with_faces_in_its_own_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let photo = load_image(common::data("faces/labeled/obama/obama.jpg")).unwrap();
    let k = 5u32;
    let big = image::imageops::resize(
        &photo,
        photo.width() * k,
        photo.height() * k,
        image::imageops::FilterType::Triangle,
    );
    assert!(big.width().max(big.height()) > facegate::recognition::detect::DETECT_MAX_SIDE);
    let path = dir.path().join("big.png");
    big.save(&path).unwrap();
    let mut rec = common::recognizer("dlib_fp32", 40.0);
    let small = rec.detect(&photo).unwrap();
    let large = rec.detect(&load_image(&path).unwrap()).unwrap();
    let largest = |f: &[facegate::recognition::detect::Face]| {
        f[facegate::recognition::pipeline::largest(f).expect("a face")].clone()
    };
    let (s0, l0) = (largest(&small), largest(&large));
    // The same face, in the big photo's pixels (within a few percent of its size).
    let (a, b) = (s0.bbox, l0.bbox);
    let size = a[2] - a[0];
    for i in 0..4 {
        assert!(
            (b[i] / k as f32 - a[i]).abs() < 0.06 * size,
            "{b:?} vs {a:?} x {k}"
        );
    }
    // And it embeds as the same person.
    let e1 = rec.embed_face(&photo, &small[0]).unwrap();
    let e2 = rec
        .embed_face(&load_image(&path).unwrap(), &large[0])
        .unwrap();
    assert!(e1.distance(&e2) < 0.3, "{}", e1.distance(&e2));

    // The command line shrinks the PNG while decoding (never holding the full image): the
    // same pixels as the detector's own shrink, so the very same box, in the file's pixels.
    let out = common::facegate(&["detect", "--json", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let faces = v["faces"].as_array().unwrap();
    assert_eq!(faces.len(), large.len());
    let xywh = l0.xywh();
    let got: Vec<f32> = faces
        .iter()
        .map(|f| f["box"].as_array().unwrap().clone())
        .find(|b| (b[0].as_f64().unwrap() as f32 - xywh[0]).abs() < 1.0)
        .expect("the largest face")
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    for i in 0..4 {
        assert!((got[i] - xywh[i]).abs() < 0.01, "{got:?} vs {xywh:?}");
    }
    // A JPEG is shrunk by its decoder (here a half-scale IDCT, then 2x2 blocks: factor 4
    // where 3 would do): the same face, near the same box, the same person.
    let jpg = dir.path().join("big.jpg");
    big.save(&jpg).unwrap();
    let p = facegate::recognition::photo::load_photo(&jpg, 2048).unwrap();
    assert_eq!(p.factor, 4);
    assert!(p.frame.width().max(p.frame.height()) <= 2048);
    let faces = rec.detect(&p.frame).unwrap();
    let f = largest(&faces);
    let b = f.scaled(p.factor as f32).bbox;
    for i in 0..4 {
        assert!(
            (b[i] / k as f32 - a[i]).abs() < 0.06 * size,
            "jpeg {b:?} vs {a:?} x {k}"
        );
    }
    let e3 = rec.embed_face(&p.frame, &f).unwrap();
    assert!(e1.distance(&e3) < 0.3, "{}", e1.distance(&e3));
}
