//! The upgrade path on real photos: a gallery enrolled with dlib, the kiosk switched to
//! FaceNet with the bridge in `models/`: the enrolled people are still granted, strangers
//! still refused, each confident grant adds the person's FaceNet template to the gallery, and
//! the reports say how far the gallery has migrated. Then the migrated gallery is made
//! FaceNet's and works on a kiosk without the bridge.

mod common;

use common::{data, enroll_files, facegate, images_in, recognizer};
use facegate::identity::gallery::Gallery;
use facegate::kiosk::config::Config;
use facegate::kiosk::door::SimulatedRelay;
use facegate::kiosk::runtime::{Kiosk, RunSummary};
use facegate::recognition::source::FolderSource;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

fn bridge() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/facenet_to_dlib_fp32.bridge")
}

fn labeled(person: &str) -> Vec<PathBuf> {
    images_in(&data(&format!("faces/labeled/{person}")))
}

/// A FaceNet kiosk over `gallery`, through the bridge unless `bridge` is false; templates
/// may be added on every grant (no interval), at most 3 per person.
fn config(dir: &Path, gallery: &Path, bridge_on: bool) -> Config {
    let bridge_line = if bridge_on {
        format!("bridge = {:?}\n", bridge().display().to_string())
    } else {
        String::new()
    };
    let text = format!(
        "[models]\nembedder = \"facenet\"\n{bridge_line}[detector]\nmin_face = 40\n[recognition]\nmin_margin = 0.05\n\
         [quality]\nmin_eye_distance = 30\nmin_sharpness = 10\nmax_yaw = 0.35\n\
         [decision]\nk = 3\nn = 5\nwindow_secs = 3.0\ncooldown_secs = 5.0\n\
         [source]\nkind = \"folder\"\npath = \"frames\"\nfps = 5\n[door]\nkind = \"simulated\"\npulse_ms = 1\n\
         [gallery]\npath = {:?}\n[audit]\npath = \"audit.jsonl\"\n[migration]\nmin_interval_s = 0\nmax_templates = 3\n",
        gallery.display().to_string()
    );
    let p = dir.join("kiosk.toml");
    std::fs::write(&p, text).unwrap();
    Config::load(&p).unwrap()
}

/// Plays `files` (each `times` over, so that K = 3 could be reached); returns the summary
/// and the unlock count; the door is locked first and last.
fn play(cfg: &Config, files: &[PathBuf], times: usize) -> (RunSummary, usize) {
    // RUST_LOG=info shows each grant's distances and what migration decided.
    let _ = env_logger::builder().is_test(true).try_init();
    let relay = SimulatedRelay::new();
    let events = relay.events();
    let mut k = Kiosk::new(cfg, Box::new(relay)).unwrap();
    let seq: Vec<PathBuf> = files
        .iter()
        .flat_map(|f| std::iter::repeat_n(f.clone(), times))
        .collect();
    let mut src = FolderSource::from_files(seq.clone(), 0.0, false);
    let s = k.run(&mut src, 5.0, None, &AtomicBool::new(false)).unwrap();
    drop(k);
    let ev = events.lock().unwrap();
    assert!(!ev.first().unwrap().unlocked && !ev.last().unwrap().unlocked);
    assert_eq!(s.accounted(), seq.len(), "{s:?}");
    (s, ev.iter().filter(|e| e.unlocked).count())
}

fn migrated(gallery: &Path, name: &str) -> usize {
    let g = Gallery::load_any(gallery).unwrap();
    let p = g.find(name).unwrap();
    p.migrated.iter().map(|m| m.templates.len()).sum()
}

/// Obama, Biden, Rose Leslie and Kit Harington enrolled with dlib from their first photos.
fn dlib_gallery(dir: &Path, who: &[&str]) -> PathBuf {
    let mut rec = recognizer("dlib_fp32", 40.0);
    let mut g = Gallery::new(rec.model_id());
    for (name, person) in [
        ("Obama", "obama"),
        ("Biden", "biden"),
        ("Rose", "rose_leslie"),
        ("Kit", "kit_harington"),
    ] {
        if who.contains(&name) {
            let n = if name == "Obama" { 2 } else { 1 };
            enroll_files(&mut rec, &mut g, name, &labeled(person)[..n]);
        }
    }
    let p = dir.join("gallery.toml");
    g.save(&p).unwrap();
    p
}

#[test]
fn a_dlib_gallery_on_a_facenet_kiosk_grants_the_enrolled_refuses_strangers_and_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dlib_gallery(dir.path(), &["Obama", "Biden", "Rose", "Kit"]);
    let cfg = config(dir.path(), &gallery, true);
    // Without the bridge the FaceNet kiosk cannot read a dlib gallery: it comes up locked,
    // refuses the gallery, and says why.
    let plain = config(dir.path(), &gallery, false);
    let k = Kiosk::new(&plain, Box::new(SimulatedRelay::new())).unwrap();
    match k.gallery().state() {
        facegate::kiosk::watch::GalleryState::Refused(e) => assert!(e.contains("bridge"), "{e}"),
        s => panic!("state {s:?}"),
    }
    drop(k);

    // Obama's other photos (never enrolled) as FaceNet probes: granted through the bridge.
    let obama = labeled("obama");
    let (s, unlocks) = play(
        &cfg,
        &[obama[2].clone(), obama[3].clone(), obama[5].clone()],
        1,
    );
    assert_eq!(
        (s.grants.clone(), unlocks),
        (vec!["Obama".to_string()], 1),
        "{s:?}"
    );
    assert_eq!(
        migrated(&gallery, "Obama"),
        1,
        "the grant added his FaceNet template"
    );

    // Eight strangers, each in three frames in a row: every frame unknown, nobody migrated.
    let strangers: Vec<PathBuf> = [
        "paul_rudd",
        "shea_whigham",
        "angelina_jolie",
        "kate_siegel",
        "alex_lacamoire",
        "eileen_collins",
        "lin_manuel_miranda",
    ]
    .iter()
    .flat_map(|p| labeled(p))
    .collect();
    assert_eq!(strangers.len(), 8);
    let (s, unlocks) = play(&cfg, &strangers, 3);
    assert_eq!((s.grants.len(), unlocks), (0, 0), "{s:?}");
    assert_eq!(s.unknown, 24, "{s:?}");

    // Biden's two other photos: granted; his template added too.
    let biden = labeled("biden");
    let (s, _) = play(
        &cfg,
        &[biden[1].clone(), biden[2].clone(), biden[1].clone()],
        1,
    );
    assert_eq!(s.grants, vec!["Biden".to_string()], "{s:?}");
    assert_eq!(migrated(&gallery, "Biden"), 1);
    for name in ["Rose", "Kit"] {
        assert_eq!(migrated(&gallery, name), 0, "{name} never walked through");
    }
    // The enrolled templates are all still there, and the audit log says what was added.
    let g = Gallery::load_any(&gallery).unwrap();
    assert_eq!(g.template_count(), 5);
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"template added\"").count(), 2, "{audit}");

    // What the installer sees.
    let gs = gallery.to_str().unwrap();
    let out = facegate(&["--json", "people", "--gallery", gs, "list"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fid = common::store().model_id("facenet").unwrap();
    let by_name = |n: &str| {
        v["people"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("Obama")["migrated"][&fid], 1, "{v}");
    assert_eq!(by_name("Kit")["migrated"], serde_json::json!({}), "{v}");
    let out = facegate(&[
        "--json",
        "--model",
        "facenet",
        "gallery",
        "--gallery",
        gs,
        "upgrade",
        "--report",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["people"].as_u64(), r["migrated"].as_u64()),
        (Some(4), Some(2)),
        "{r}"
    );
    let names: Vec<&str> = r["not_migrated_people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Rose", "Kit"]);
    // Completing the upgrade now would lock Rose and Kit out: refused, file unchanged.
    let before = std::fs::read(&gallery).unwrap();
    let out = facegate(&["--model", "facenet", "gallery", "--gallery", gs, "upgrade"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Rose") && err.contains("locked out"), "{err}");
    assert_eq!(std::fs::read(&gallery).unwrap(), before);
}

#[test]
fn a_busy_gallery_file_skips_the_migration_never_the_grant() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dlib_gallery(dir.path(), &["Obama", "Biden"]);
    let cfg = config(dir.path(), &gallery, true);
    let obama = labeled("obama");
    let frames = [obama[2].clone(), obama[3].clone(), obama[5].clone()];
    // Someone (the desk, `people remove`) is changing the file: the door does not wait.
    let held = facegate::files::lock(&gallery).unwrap();
    let (s, unlocks) = play(&cfg, &frames, 1);
    assert_eq!((s.grants.len(), unlocks), (1, 1));
    drop(held);
    assert_eq!(migrated(&gallery, "Obama"), 0);
    // A grant that is not clear enough of everyone else (his margin is 0.35) adds nothing.
    let mut strict = cfg.clone();
    strict.migration.min_margin = 0.5;
    let (s, _) = play(&strict, &frames, 1);
    assert_eq!(s.grants.len(), 1);
    assert_eq!(migrated(&gallery, "Obama"), 0);
    // A signed gallery: the door has only the public key, so it never rewrites the file.
    let (secret, public) = facegate::identity::signing::keygen(dir.path()).unwrap();
    let key = facegate::identity::signing::SigningKey::load(&secret).unwrap();
    Gallery::load_any(&gallery)
        .unwrap()
        .resign(&gallery, &key, None)
        .unwrap();
    let before = std::fs::read(&gallery).unwrap();
    let mut signed = cfg.clone();
    signed.gallery.public_key = Some(public);
    // Such a door trusts only a bridge signed by the same key: the bridge decides who
    // matches whom as much as the gallery does. Unsigned: refused, the file named.
    let copy = dir.path().join("site.bridge");
    std::fs::copy(bridge(), &copy).unwrap();
    signed.models.bridge = Some(copy.clone());
    let refused = |cfg: &Config| match Kiosk::new(cfg, Box::new(SimulatedRelay::new())) {
        Ok(_) => panic!("a kiosk started with an unverified bridge"),
        Err(e) => e.to_string(),
    };
    let e = refused(&signed);
    assert!(
        e.contains("no signature") && e.contains("site.bridge"),
        "{e}"
    );
    let out = facegate(&[
        "--signing-key",
        secret.to_str().unwrap(),
        "sign",
        copy.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, unlocks) = play(&signed, &frames, 1);
    assert_eq!((s.grants.len(), unlocks), (1, 1));
    assert_eq!(std::fs::read(&gallery).unwrap(), before);
    // A signed bridge altered afterwards (one weight changed): refused.
    let text = std::fs::read_to_string(&copy).unwrap();
    let last = text.trim_end().len() - 5;
    let flip = if &text[last..last + 1] == "A" {
        "B"
    } else {
        "A"
    };
    let mut altered = text.clone();
    altered.replace_range(last..last + 1, flip);
    std::fs::write(&copy, altered).unwrap();
    let e = refused(&signed);
    assert!(e.contains("does not match"), "{e}");
}

#[test]
fn a_fully_migrated_gallery_becomes_facenet_s_and_needs_no_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let gallery = dlib_gallery(dir.path(), &["Obama", "Biden"]);
    let cfg = config(dir.path(), &gallery, true);
    let (obama, biden) = (labeled("obama"), labeled("biden"));
    let (s, _) = play(
        &cfg,
        &[obama[2].clone(), obama[3].clone(), obama[5].clone()],
        1,
    );
    assert_eq!(s.grants, ["Obama"]);
    let (s, _) = play(
        &cfg,
        &[biden[1].clone(), biden[2].clone(), biden[1].clone()],
        1,
    );
    assert_eq!(s.grants, ["Biden"]);
    let gs = gallery.to_str().unwrap();
    let out = facegate(&["--model", "facenet", "gallery", "--gallery", gs, "upgrade"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g = Gallery::load_any(&gallery).unwrap();
    assert!(g.model.starts_with("facenet:"));
    assert!(g
        .people()
        .iter()
        .all(|p| p.templates.len() == 1 && p.migrated.is_empty()));
    // A FaceNet kiosk without the bridge: Obama is granted on the template his walk-through
    // left (from another photo), and a stranger refused.
    let plain = config(dir.path(), &gallery, false);
    let (s, _) = play(&plain, &[obama[2].clone()], 3);
    assert_eq!(s.grants, ["Obama"], "{s:?}");
    let (s, _) = play(&plain, &[labeled("paul_rudd")[0].clone()], 3);
    assert_eq!((s.grants.len(), s.unknown), (0, 3), "{s:?}");
}
