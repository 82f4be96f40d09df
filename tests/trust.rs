//! The signed gallery tried as an attacker would, on real photos: someone who can write the
//! door's folder but holds no key, or who hands the administrator a file to sign. Each attack
//! is performed and the grants it gets are counted (zero); each test also shows the honest
//! path still grants, so that a zero means the defence and not a broken door.

mod common;

use common::{data, facegate_cmd, feed, images_in, kiosk_config, recognizer, unlocks};
use facegate::identity::gallery::Gallery;
use facegate::identity::signing::{keygen, Domain, SigningKey, VerifyingKey};
use facegate::kiosk::config::Config;
use facegate::kiosk::door::SimulatedRelay;
use facegate::kiosk::state::STATE_FILE;
use facegate::kiosk::watch::GalleryState;
use facegate::kiosk::Kiosk;
use facegate::recognition::embed::Embedding;
use facegate::recognition::frame::{load_image, Frame};
use facegate::recognition::models::sha256_hex;
use std::path::{Path, PathBuf};

/// Photos of one LFW person, `range` of them in name order.
fn lfw(person: &str, range: std::ops::Range<usize>) -> Vec<PathBuf> {
    images_in(&data(&format!("lfw/images/{person}")))[range].to_vec()
}

fn frames(files: &[PathBuf]) -> Vec<Frame> {
    files.iter().map(|p| load_image(p).unwrap()).collect()
}

/// Obama's photos not used to enroll him.
fn obama_frames() -> Vec<Frame> {
    frames(&images_in(&data("faces/labeled/obama"))[2..6])
}

/// Tony Blair, the intruder: never enrolled by the station.
fn blair_frames() -> Vec<Frame> {
    frames(&lfw("Tony_Blair", 10..14))
}

/// The templates `files` give (one face each), as enrollment makes them.
fn templates(files: &[PathBuf]) -> Vec<Embedding> {
    let mut rec = recognizer("dlib_fp32", 40.0);
    files
        .iter()
        .map(|p| {
            let f = load_image(p).unwrap();
            let faces = rec.detect(&f).unwrap();
            let i = facegate::recognition::pipeline::largest(&faces).unwrap();
            rec.embed_face(&f, &faces[i]).unwrap()
        })
        .collect()
}

/// An enrollment station (its key) and a door (its folder, config and public key).
struct Site {
    dir: tempfile::TempDir,
    secret: PathBuf,
    public: PathBuf,
    gallery: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keygen(&dir.path().join("station")).unwrap();
        let door = dir.path().join("door");
        std::fs::create_dir_all(&door).unwrap();
        let gallery = door.join("gallery.toml");
        Site {
            dir,
            secret,
            public,
            gallery,
        }
    }

    fn key(&self) -> SigningKey {
        SigningKey::load(&self.secret).unwrap()
    }

    fn vk(&self) -> VerifyingKey {
        VerifyingKey::load(&self.public).unwrap()
    }

    /// The station signs a gallery of `people` into the door's file.
    fn enroll_signed(&self, people: &[(&str, Vec<Embedding>)]) {
        let _ = std::fs::remove_file(&self.gallery);
        let mut g = Gallery::new(recognizer("dlib_fp32", 40.0).model_id());
        for (name, t) in people {
            g.add(name, t.clone(), 1).unwrap();
        }
        g.save_signed(&self.gallery, Some(&self.key())).unwrap();
    }

    /// The door's config: this site's public key, state in the gallery's folder.
    fn config(&self) -> Config {
        let mut c = kiosk_config(self.dir.path(), &self.gallery, self.dir.path());
        c.gallery.public_key = Some(self.public.clone());
        c
    }

    /// A kiosk started on a gallery it refuses: it runs with the door locked; the reason.
    fn refused_at_start(&self) -> String {
        let (k, relay) = self.kiosk().unwrap();
        let why = match k.gallery().state() {
            facegate::kiosk::watch::GalleryState::Refused(why) => why.clone(),
            s => panic!("the gallery was taken at start: {s:?}"),
        };
        drop(k);
        assert_eq!(unlocks(&relay), 0);
        why
    }

    fn kiosk(&self) -> facegate::Result<(Kiosk, SimulatedRelay)> {
        let relay = SimulatedRelay::new();
        Kiosk::new(&self.config(), Box::new(relay.clone())).map(|k| (k, relay))
    }

    /// `facegate ARGS` run by the station, with its key.
    fn station(&self, args: &[&str]) -> std::process::Output {
        facegate_cmd()
            .args(args)
            .env("FACEGATE_SIGNING_KEY", &self.secret)
            .output()
            .unwrap()
    }

    fn g(&self) -> &str {
        self.gallery.to_str().unwrap()
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A gallery file of `people`, unsigned, with a valid checksum: what someone with write
/// access but no key can make.
fn unsigned_file(model: &str, people: &[(&str, Vec<Embedding>)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.toml");
    let mut g = Gallery::new(model);
    for (name, t) in people {
        g.add(name, t.clone(), 1).unwrap();
    }
    g.save(&p).unwrap();
    std::fs::read(&p).unwrap()
}

fn obama_templates() -> Vec<Embedding> {
    templates(&images_in(&data("faces/labeled/obama"))[..2])
}

fn model() -> String {
    common::store().model_id("dlib_fp32").unwrap()
}

#[cfg(unix)]
fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Serves `first` to the first reader of the FIFO at `p` and `second` to the next, for at
/// most `secs` seconds (never blocking: a FIFO nobody reads is left alone).
#[cfg(unix)]
fn serve_fifo(
    p: PathBuf,
    first: Vec<u8>,
    second: Vec<u8>,
    secs: f64,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
        let mut served = 0;
        let docs = [first, second];
        while served < 2 && std::time::Instant::now() < until {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&p)
            {
                Ok(mut f) => {
                    if f.write_all(&docs[served]).is_ok() {
                        served += 1;
                    }
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
        served
    })
}

#[cfg(unix)]
#[test]
fn a_fifo_serving_a_signed_gallery_then_a_forged_one_is_refused_unread() {
    let s = Site::new();
    s.enroll_signed(&[("Obama", obama_templates())]);
    let signed = std::fs::read(&s.gallery).unwrap();
    let (mut k, relay) = s.kiosk().unwrap();
    let obama = obama_frames();
    assert_eq!(feed(&mut k, &obama[..3], 0.0), ["Obama"], "the honest path");

    // The attacker's gallery: Obama and Blair as "Intruder", unsigned.
    let forged = unsigned_file(
        &model(),
        &[
            ("Obama", obama_templates()),
            ("Intruder", templates(&lfw("Tony_Blair", 0..2))),
        ],
    );
    std::fs::remove_file(&s.gallery).unwrap();
    mkfifo(&s.gallery);
    let writer = serve_fifo(s.gallery.clone(), signed.clone(), forged.clone(), 3.0);
    let blair = blair_frames();
    let mut grants = feed(&mut k, &blair, 10.0);
    grants.extend(feed(&mut k, &blair, 20.0));
    grants.extend(feed(&mut k, &obama, 30.0));
    assert_eq!(grants, Vec::<String>::new());
    match k.gallery().state() {
        GalleryState::Refused(why) => assert!(why.contains("FIFO"), "{why}"),
        st => panic!("state {st:?}"),
    }
    // At start too: refused at once, not read.
    let e = s.refused_at_start();
    assert!(e.contains("FIFO") && e.contains("gallery.toml"), "{e}");
    assert_eq!(writer.join().unwrap(), 0, "facegate read the FIFO");
    drop(k);
    assert_eq!(unlocks(&relay), 1);
}

#[test]
fn signed_tools_refuse_to_sign_what_they_find_and_resign_is_deliberate() {
    let s = Site::new();
    s.enroll_signed(&[("Obama", obama_templates())]);
    let (mut k, relay) = s.kiosk().unwrap();
    // The attacker strips the signature and adds Intruder (Blair), no key.
    let forged = unsigned_file(
        &model(),
        &[
            ("Obama", obama_templates()),
            ("Intruder", templates(&lfw("Tony_Blair", 0..2))),
        ],
    );
    std::fs::write(&s.gallery, &forged).unwrap();
    // A routine signed enrollment, removal and rename at the station: all refused, the file
    // untouched (before, each signed the file with Intruder in it).
    let biden = images_in(&data("faces/labeled/biden"));
    let mut enroll: Vec<&str> = vec!["enroll", "--gallery", s.g(), "--name", "Biden", "--images"];
    enroll.extend(biden[..2].iter().map(|p| p.to_str().unwrap()));
    for args in [
        enroll,
        vec!["people", "--gallery", s.g(), "remove", "Obama"],
        vec!["people", "--gallery", s.g(), "rename", "Obama", "Barack"],
    ] {
        let out = s.station(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let e = stderr(&out);
        assert!(
            e.contains("refusing to change and sign it") && e.contains("resign"),
            "{args:?}: {e}"
        );
        assert_eq!(std::fs::read(&s.gallery).unwrap(), forged, "{args:?}");
    }
    // The door refuses the unsigned file while running: Blair is never let in.
    assert_eq!(feed(&mut k, &blair_frames(), 10.0), Vec::<String>::new());
    assert_eq!(feed(&mut k, &blair_frames(), 20.0), Vec::<String>::new());
    drop(k);
    assert_eq!(unlocks(&relay), 0);

    // Signing it is a person's deliberate act: `resign` lists everyone (Intruder too) and
    // the digest of this very file, and signs only with that digest.
    let out = s.station(&["people", "--gallery", s.g(), "resign"]);
    assert_eq!(out.status.code(), Some(1));
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.contains("Intruder") && listed.contains("unsigned"),
        "{listed}"
    );
    let digest = sha256_hex(&forged)[..16].to_string();
    assert!(
        stderr(&out).contains(&format!("--confirm {digest}")),
        "{}",
        stderr(&out)
    );
    let out = s.station(&[
        "people",
        "--gallery",
        s.g(),
        "resign",
        "--confirm",
        "0123456789abcdef",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("changed since it was listed"));
    // The administrator removes Intruder first (a change of an unsigned file needs no
    // key), then signs what is left.
    let out = facegate_cmd()
        .args(["people", "--gallery", s.g(), "remove", "Intruder"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let digest = sha256_hex(&std::fs::read(&s.gallery).unwrap())[..16].to_string();
    let out = s.station(&["people", "--gallery", s.g(), "resign", "--confirm", &digest]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (mut k, relay) = s.kiosk().unwrap();
    assert_eq!(feed(&mut k, &obama_frames()[..3], 0.0), ["Obama"]);
    assert_eq!(feed(&mut k, &blair_frames(), 10.0), Vec::<String>::new());
    drop(k);
    assert_eq!(unlocks(&relay), 1);
}

#[test]
fn an_older_signed_gallery_is_refused_running_after_a_restart_and_by_the_tools() {
    let s = Site::new();
    s.enroll_signed(&[
        ("Obama", obama_templates()),
        ("Bush", templates(&lfw("George_W_Bush", 0..2))),
    ]);
    let bush = frames(&lfw("George_W_Bush", 10..15));
    let (mut k, relay) = s.kiosk().unwrap();
    assert_eq!(feed(&mut k, &bush[..3], 0.0), ["Bush"], "the honest path");

    // Bush is removed at the station (serial 2); the running door takes it.
    let out = s.station(&["people", "--gallery", s.g(), "remove", "Bush"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let newest = std::fs::read(&s.gallery).unwrap();
    let bak = facegate::files::backup_path(&s.gallery);
    let mut grants = Vec::new();
    for round in 0..5 {
        grants.extend(feed(&mut k, &bush, 10.0 + 10.0 * round as f64));
    }
    assert_eq!(grants, Vec::<String>::new());

    // The .bak (serial 1, validly signed, Bush in it) put back: refused while running...
    std::fs::copy(&bak, &s.gallery).unwrap();
    let mut grants = Vec::new();
    for round in 0..5 {
        grants.extend(feed(&mut k, &bush, 100.0 + 10.0 * round as f64));
    }
    grants.extend(feed(&mut k, &obama_frames(), 200.0));
    assert_eq!(grants, Vec::<String>::new(), "a rollback let someone in");
    match k.gallery().state() {
        GalleryState::Refused(why) => assert!(why.contains("rollback"), "{why}"),
        st => panic!("state {st:?}"),
    }
    drop(k);
    // ... and after a restart.
    let e = s.refused_at_start();
    assert!(e.contains("rollback") && e.contains("serial 1"), "{e}");
    // ... and by the station's tools: a routine change does not sign it again.
    let out = s.station(&["people", "--gallery", s.g(), "rename", "Obama", "Barack"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("older copy"), "{}", stderr(&out));

    // The same serial with other contents (a second station with a copy of the key signs
    // the old copy once more): refused too.
    let other = s.dir.path().join("station2");
    std::fs::create_dir_all(&other).unwrap();
    let key2 = other.join("facegate-signing.key");
    std::fs::copy(&s.secret, &key2).unwrap();
    let out = facegate_cmd()
        .args(["people", "--gallery", s.g(), "rename", "Obama", "Barack"])
        .env("FACEGATE_SIGNING_KEY", &key2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let e = s.refused_at_start();
    assert!(e.contains("serial 2 again with other contents"), "{e}");

    // The newest gallery back: Obama in, Bush still out.
    std::fs::write(&s.gallery, &newest).unwrap();
    let (mut k, relay2) = s.kiosk().unwrap();
    assert_eq!(feed(&mut k, &obama_frames()[..3], 0.0), ["Obama"]);
    assert_eq!(feed(&mut k, &bush, 10.0), Vec::<String>::new());
    drop(k);

    // A lost state file: the gallery found becomes the baseline again, and the .bak is still
    // refused after it.
    let state = s.gallery.parent().unwrap().join(STATE_FILE);
    std::fs::remove_file(&state).unwrap();
    let (k, _) = s.kiosk().unwrap();
    drop(k);
    assert!(state.exists());
    std::fs::copy(&bak, &s.gallery).unwrap();
    assert!(s.refused_at_start().contains("rollback"));
    assert_eq!(unlocks(&relay) + unlocks(&relay2), 2);
}

#[test]
fn a_signature_stands_for_one_kind_of_file_only() {
    let s = Site::new();
    s.enroll_signed(&[("Obama", obama_templates())]);
    // The attacker's gallery body, handed to the administrator as a "head" to sign: refused.
    let forged = unsigned_file(
        &model(),
        &[
            ("Obama", obama_templates()),
            ("Intruder", templates(&lfw("Tony_Blair", 0..2))),
        ],
    );
    let text = String::from_utf8(forged).unwrap();
    let body = text.split_once('\n').unwrap().1.to_string();
    let head = s.dir.path().join("site-head.fgh");
    std::fs::write(&head, &body).unwrap();
    let out = s.station(&["sign", head.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a head or a bridge"),
        "{}",
        stderr(&out)
    );
    assert!(!facegate::identity::signing::signature_path(&head).exists());
    // Even a head signature of exactly these bytes does not make them a gallery.
    let sig = s.key().sign(Domain::Head, body.as_bytes());
    let rest = format!("# ed25519 {sig}\n{body}");
    let (mut k, relay) = s.kiosk().unwrap();
    std::fs::write(
        &s.gallery,
        format!("# sha256 {}\n{rest}", sha256_hex(rest.as_bytes())),
    )
    .unwrap();
    let mut grants = feed(&mut k, &blair_frames(), 10.0);
    grants.extend(feed(&mut k, &blair_frames(), 20.0));
    assert_eq!(grants, Vec::<String>::new());
    match k.gallery().state() {
        GalleryState::Refused(why) => assert!(why.contains("as a head, not as a gallery"), "{why}"),
        st => panic!("state {st:?}"),
    }
    drop(k);
    assert_eq!(unlocks(&relay), 0);
    // And a real head is signed as a head (`sign` still does its job).
    let real = s.dir.path().join("identity.fgh");
    facegate::recognition::head::LinearHead::identity(&model(), 128)
        .save(&real)
        .unwrap();
    let out = s.station(&["sign", real.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    facegate::identity::signing::read_verified(&real, Domain::Head, Some(&s.vk())).unwrap();
}

#[test]
fn one_enrollment_is_one_person() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    let powell = lfw("Colin_Powell", 0..3);
    let blair = lfw("Tony_Blair", 1..3);
    // Frames alternating Powell and Blair under one name: refused, the Blair frames named.
    let mixed = [&powell[0], &blair[0], &powell[1], &blair[1], &powell[2]];
    // `facegate enroll` of Colin from `photos`, K = all of them.
    let enroll_colin = |photos: &[&PathBuf]| {
        let k = photos.len().to_string();
        let mut args = vec![
            "enroll",
            "--gallery",
            g.to_str().unwrap(),
            "--name",
            "Colin",
        ];
        args.extend(["--k", &k, "--images"]);
        args.extend(photos.iter().map(|p| p.to_str().unwrap()));
        common::facegate(&args)
    };
    let out = enroll_colin(&mixed);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("not all one person") && e.contains("frame 2, frame 4 are far"),
        "{e}"
    );
    assert!(!g.exists(), "something was saved");
    // The same through the library (the desk's path), and for photos of a cluster.
    let mut rec = recognizer("dlib_fp32", 40.0);
    let mut gallery = Gallery::new(rec.model_id());
    let mut src = facegate::recognition::source::FolderSource::from_files(
        mixed.iter().map(|p| p.to_path_buf()).collect(),
        0.0,
        false,
    );
    let e = facegate::identity::enroll::enroll(
        &mut rec,
        &mut gallery,
        "Colin",
        &mut src,
        common::opts(5),
        0,
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not all one person"), "{e}");
    assert!(gallery.people().is_empty());

    // Powell alone: enrolled; the door lets Powell in and never Blair.
    let out = enroll_colin(&powell.iter().collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let mut cfg = kiosk_config(dir.path(), &g, dir.path());
    // One of these LFW photos shows two strangers beside Powell, which `deny_unknown` (the
    // default, tests/access.rs) would count against him: this test is about enrollment.
    cfg.decision.other_faces = facegate::kiosk::decide::OtherFaces::Ignore;
    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(&cfg, Box::new(relay.clone())).unwrap();
    let mut grants = feed(&mut k, &blair_frames(), 0.0);
    grants.extend(feed(&mut k, &frames(&lfw("Tony_Blair", 20..24)), 10.0));
    assert_eq!(grants, Vec::<String>::new());
    assert_eq!(
        feed(&mut k, &frames(&lfw("Colin_Powell", 10..13)), 20.0),
        ["Colin"]
    );
    drop(k);
    assert_eq!(unlocks(&relay), 1);
}

#[cfg(unix)]
#[test]
fn links_fifos_and_endless_files_around_the_gallery_are_refused() {
    let s = Site::new();
    s.enroll_signed(&[("Obama", obama_templates())]);
    // The gallery as a symbolic link: refused unless the config allows it.
    let real = s.dir.path().join("real.toml");
    std::fs::rename(&s.gallery, &real).unwrap();
    std::os::unix::fs::symlink(&real, &s.gallery).unwrap();
    let e = s.refused_at_start();
    assert!(e.contains("symbolic link"), "{e}");
    let mut cfg = s.config();
    cfg.gallery.allow_symlink = true;
    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(&cfg, Box::new(relay.clone())).unwrap();
    assert_eq!(feed(&mut k, &obama_frames()[..3], 0.0), ["Obama"]);
    drop(k);
    // The tools never write through it.
    let out = s.station(&["people", "--gallery", s.g(), "rename", "Obama", "Barack"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    std::fs::remove_file(&s.gallery).unwrap();
    std::fs::rename(&real, &s.gallery).unwrap();

    // A FIFO as the audit log: refused at start (it would block the door's loop).
    let mut cfg = s.config();
    let audit = s.dir.path().join("audit.fifo");
    mkfifo(&audit);
    cfg.audit.path = Some(audit);
    let e = Kiosk::new(&cfg, Box::new(SimulatedRelay::new()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
    // A FIFO among the frames: one failed frame, not a hang.
    let fifo = s.dir.path().join("frame.jpg");
    mkfifo(&fifo);
    let mut src = facegate::recognition::source::FolderSource::from_files(vec![fifo], 0.0, false);
    use facegate::recognition::source::FrameSource;
    let e = src.next_frame().unwrap_err().to_string();
    assert!(e.contains("FIFO"), "{e}");

    // Endless files: a head's signature and a key that are /dev/zero are refused, not read.
    let head = s.dir.path().join("h.fgh");
    facegate::recognition::head::LinearHead::identity(&model(), 128)
        .save(&head)
        .unwrap();
    std::os::unix::fs::symlink(
        "/dev/zero",
        facegate::identity::signing::signature_path(&head),
    )
    .unwrap();
    let e = facegate::identity::signing::read_verified(&head, Domain::Head, Some(&s.vk()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("a device"), "{e}");
    assert!(VerifyingKey::load(Path::new("/dev/zero")).is_err());
}

#[test]
fn the_signature_is_checked_before_the_body_is_parsed() {
    let s = Site::new();
    // An unsigned file whose body is not even TOML (a valid checksum): with a key the door
    // says it is not signed, having parsed nothing; without one it is invalid.
    let body = "this is = = not toml [[[\n".repeat(1000);
    std::fs::write(
        &s.gallery,
        format!("# sha256 {}\n{body}", sha256_hex(body.as_bytes())),
    )
    .unwrap();
    let e = Gallery::load_verified(&s.gallery, &model(), 128, Some(&s.vk()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not signed"), "{e}");
    let e = Gallery::load_verified(&s.gallery, &model(), 128, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid"), "{e}");
}

#[test]
fn one_name_rule_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("gallery.toml");
    let obama = images_in(&data("faces/labeled/obama"));
    let enroll = |name: &str| {
        common::facegate(&[
            "enroll",
            "--gallery",
            g.to_str().unwrap(),
            "--name",
            name,
            "--k",
            "2",
            "--images",
            obama[0].to_str().unwrap(),
            obama[1].to_str().unwrap(),
        ])
    };
    for (name, why) in [
        ("Ob\u{1b}[31mama", "control character"),
        ("K\u{0456}t", "several scripts"),
        ("Obama ", "space at the start or the end"),
        ("Ob\u{200b}ama", "format character"),
    ] {
        let out = enroll(name);
        assert_eq!(out.status.code(), Some(2), "{name:?}");
        assert!(stderr(&out).contains(why), "{name:?}: {}", stderr(&out));
        assert!(!g.exists());
    }
    // A name typed decomposed is stored composed (NFC).
    let out = enroll("Ame\u{301}lie");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(Gallery::load_any(&g).unwrap().find("Am\u{e9}lie").is_some());

    // A gallery written by an older facegate holding "Obama " and an escape sequence: the
    // door refuses it naming the person; `people list` prints the names escaped, and
    // `people remove` takes the names exactly as stored (revocation is never blocked).
    let legacy = dir.path().join("legacy.toml");
    let mut text = String::from_utf8(unsigned_file(
        &model(),
        &[("Obama", obama_templates()), ("Eve", obama_templates())],
    ))
    .unwrap()
    .split_once('\n')
    .unwrap()
    .1
    .replace("name = \"Obama\"", "name = \"Obama \"")
    .replace("name = \"Eve\"", "name = \"E\\u001B[2Jve\"");
    text = format!("# sha256 {}\n{text}", sha256_hex(text.as_bytes()));
    std::fs::write(&legacy, &text).unwrap();
    let e = Gallery::load(&legacy, &model(), 128)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"Obama \"") && e.contains("invalid name"),
        "{e}"
    );
    let out = common::facegate(&["people", "--gallery", legacy.to_str().unwrap(), "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !listed.contains('\u{1b}') && listed.contains("\\u{1b}"),
        "{listed}"
    );
    for name in ["Obama ", "E\u{1b}[2Jve"] {
        let out = common::facegate(&[
            "people",
            "--gallery",
            legacy.to_str().unwrap(),
            "remove",
            name,
        ]);
        assert!(out.status.success(), "{name:?}: {}", stderr(&out));
    }
    assert!(Gallery::load(&legacy, &model(), 128)
        .unwrap()
        .people()
        .is_empty());
}

#[cfg(unix)]
#[test]
fn a_16_bit_png_is_decoded_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("big16.png");
    // 8192x8192 RGB, 16 bits a sample, one flat grey: a few hundred KB on disk, 402 MB as
    // a decoded 16-bit image.
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&png).unwrap());
        let mut e = png::Encoder::new(f, 8192, 8192);
        e.set_color(png::ColorType::Rgb);
        e.set_depth(png::BitDepth::Sixteen);
        let mut w = e.write_header().unwrap().into_stream_writer().unwrap();
        let row = vec![0x80u8; 8192 * 6];
        for _ in 0..8192 {
            std::io::Write::write_all(&mut w, &row).unwrap();
        }
        w.finish().unwrap();
    }
    assert!(std::fs::metadata(&png).unwrap().len() < 2 << 20);
    // `facegate detect` on it, its peak memory read from the kernel for that process alone
    // (reaped by `wait4`, which reports it, not by `Child::wait`).
    #[allow(clippy::zombie_processes)]
    let child = facegate_cmd()
        .args(["detect", "--json", png.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    // No face in a grey picture: exit 1 (not 2: it decoded).
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1,
        "{status}"
    );
    let peak_mb = usage.ru_maxrss / 1024;
    assert!(peak_mb < 300, "peak {peak_mb} MB");
    // The whole-frame path (the kiosk's frames) holds only the 8-bit frame.
    let f = load_image(&png).unwrap();
    assert_eq!((f.width(), f.height()), (8192, 8192));
    assert_eq!(f.get_pixel(100, 100).0, [0x80, 0x80, 0x80]);
}

#[cfg(unix)]
#[test]
fn a_fifo_among_the_frames_does_not_hang_the_kiosk_and_sigterm_ends_it_locked() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let frames_dir = dir.path().join("frames");
    std::fs::create_dir(&frames_dir).unwrap();
    let obama = images_in(&data("faces/labeled/obama"));
    for (i, p) in obama[2..4].iter().enumerate() {
        std::fs::copy(p, frames_dir.join(format!("{i}.jpg"))).unwrap();
    }
    kiosk_config(dir.path(), &dir.path().join("gallery.toml"), &frames_dir);
    let cfg = dir.path().join("kiosk.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("fps = 5\n", "fps = 5\nlooping = true\n");
    std::fs::write(&cfg, text).unwrap();
    let mut child = facegate_cmd()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("kiosk running") || line.contains("FIFO") {
                let _ = tx.send(line.clone());
            }
            all += &line;
            all += "\n";
        }
        all
    });
    let wait = std::time::Duration::from_secs(120);
    let first = rx.recv_timeout(wait).expect("the kiosk did not start");
    assert!(first.contains("kiosk running"), "{first}");
    // A frame file becomes a FIFO while the kiosk loops over the folder: a reader of it
    // would block for ever.
    let victim = frames_dir.join("1.jpg");
    std::fs::remove_file(&victim).unwrap();
    mkfifo(&victim);
    let seen = rx
        .recv_timeout(wait)
        .expect("the FIFO frame was never refused");
    assert!(seen.contains("FIFO"), "{seen}");
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > until {
            child.kill().unwrap();
            panic!("SIGTERM did not end the kiosk");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let log = reader.join().unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(out.contains("door locked"), "{out}");
    assert!(log.contains("kiosk stopped"), "{log}");
}
