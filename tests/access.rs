//! Access control on real photos: validity periods, weekly schedules across a daylight-saving
//! change, a clock that cannot be trusted, two doors with their own ids and copies, other
//! faces at the door (tailgating, on the group photos) and settings that defeat the
//! threshold. Each test counts grants and reads the audited reasons.

mod common;

use common::{data, feed, images_in, kiosk_config, recognizer};
use facegate::identity::access::{parse_stamp, AccessRules, Group, PersonRules, Window};
use facegate::identity::gallery::Gallery;
use facegate::identity::signing::{keygen, SigningKey};
use facegate::kiosk::clock::SetClock;
use facegate::kiosk::config::Config;
use facegate::kiosk::decide::OtherFaces;
use facegate::kiosk::door::SimulatedRelay;
use facegate::kiosk::Kiosk;
use facegate::recognition::embed::Embedding;
use facegate::recognition::frame::{load_image, Frame};
use std::path::{Path, PathBuf};
use std::process::Command;

fn at(s: &str) -> i64 {
    parse_stamp(s).unwrap()
}

/// The templates of the largest face of each of `files`.
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

fn obama_templates() -> Vec<Embedding> {
    templates(&images_in(&data("faces/labeled/obama"))[..2])
}

/// Five frames of Obama not used to enroll him.
fn obama_frames() -> Vec<Frame> {
    let files = images_in(&data("faces/labeled/obama"));
    let mut v: Vec<Frame> = files[2..].iter().map(|p| load_image(p).unwrap()).collect();
    while v.len() < 5 {
        v.push(v[0].clone());
    }
    v.truncate(5);
    v
}

fn model() -> String {
    recognizer("dlib_fp32", 40.0).model_id().to_string()
}

/// The staff group: `doors` (none: all), Monday to Friday 07:00-19:00, Berlin time.
fn staff_rules(doors: &[&str]) -> AccessRules {
    AccessRules {
        timezone: "Europe/Berlin".into(),
        groups: vec![Group {
            name: "staff".into(),
            doors: doors.iter().map(|d| d.to_string()).collect(),
            windows: vec![Window::parse("mon-fri 07:00-19:00").unwrap()],
        }],
    }
}

/// A kiosk over `gallery` reading `clock`; its relay.
fn kiosk(cfg: &Config, clock: &SetClock) -> (Kiosk, SimulatedRelay) {
    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(cfg, Box::new(relay.clone())).unwrap();
    k.set_clock(Box::new(clock.clone()));
    (k, relay)
}

/// Feeds Obama's five frames at kiosk time `t0` (each call far enough from the last to
/// leave the cooldown) with the door's clock at `when`; the grants.
fn visit(k: &mut Kiosk, clock: &SetClock, when: &str, t0: f64) -> usize {
    clock.set(at(when));
    feed(k, &obama_frames(), t0).len()
}

fn audit(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default()
}

/// An enrollment station in `dir/station`: its signing key, the public key for the doors,
/// and where it keeps the gallery.
fn station(dir: &Path) -> (SigningKey, PathBuf, PathBuf) {
    let (secret, public) = keygen(&dir.join("station")).unwrap();
    let key = SigningKey::load(&secret).unwrap();
    (key, public, dir.join("station/gallery.toml"))
}

/// One group, "front-only", that opens the door `front` at any time in `timezone`, and
/// Obama in it.
fn front_only(g: &mut Gallery, timezone: &str) {
    g.set_rules(AccessRules {
        timezone: timezone.into(),
        groups: vec![Group {
            name: "front-only".into(),
            doors: vec!["front".into()],
            windows: vec![],
        }],
    })
    .unwrap();
    g.set_access(
        "Obama",
        PersonRules {
            groups: vec!["front-only".into()],
            ..Default::default()
        },
    )
    .unwrap();
}

#[test]
fn validity_before_inside_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gallery::new(model());
    g.add("Obama", obama_templates(), 1).unwrap();
    g.set_access(
        "Obama",
        PersonRules {
            valid_from: Some(at("2027-01-04T08:00:00Z")),
            valid_until: Some(at("2027-01-31T18:00:00Z")),
            groups: vec![],
        },
    )
    .unwrap();
    let p = dir.path().join("gallery.toml");
    g.save(&p).unwrap();
    let cfg = kiosk_config(dir.path(), &p, dir.path());
    let clock = SetClock::at(0);
    let (mut k, relay) = kiosk(&cfg, &clock);
    assert_eq!(visit(&mut k, &clock, "2027-01-04T07:59:00Z", 0.0), 0);
    assert_eq!(visit(&mut k, &clock, "2027-01-15T12:00:00Z", 100.0), 1);
    assert_eq!(visit(&mut k, &clock, "2027-01-31T18:00:00Z", 200.0), 0);
    drop(k);
    assert_eq!(common::unlocks(&relay), 1);
    let log = audit(dir.path());
    assert!(
        log.contains("Obama: not valid before 2027-01-04T08:00:00Z"),
        "{log}"
    );
    assert!(
        log.contains("Obama: validity ended 2027-01-31T18:00:00Z"),
        "{log}"
    );
}

#[test]
fn schedule_inside_outside_and_across_daylight_saving() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gallery::new(model());
    g.add("Obama", obama_templates(), 1).unwrap();
    g.set_rules(staff_rules(&[])).unwrap();
    g.set_access(
        "Obama",
        PersonRules {
            groups: vec!["staff".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let p = dir.path().join("gallery.toml");
    g.save(&p).unwrap();
    // The rules survive the file: loaded back, the same.
    let back = Gallery::load(&p, &model(), 128).unwrap();
    assert_eq!(back.rules(), g.rules());
    assert_eq!(back.find("Obama").unwrap().access.groups, ["staff"]);
    let cfg = kiosk_config(dir.path(), &p, dir.path());
    let clock = SetClock::at(0);
    let (mut k, relay) = kiosk(&cfg, &clock);
    let grants = [
        // Friday 26 March 2027, 07:30 CET (winter time): inside.
        visit(&mut k, &clock, "2027-03-26T06:30:00Z", 0.0),
        // The same Friday, 06:30 CET: before the window.
        visit(&mut k, &clock, "2027-03-26T05:30:00Z", 100.0),
        // Monday 29 March, after the change to summer time: 05:30 UTC is 07:30 CEST, inside.
        visit(&mut k, &clock, "2027-03-29T05:30:00Z", 200.0),
        // Saturday 27 March, noon: not a staff day.
        visit(&mut k, &clock, "2027-03-27T11:00:00Z", 300.0),
        // Friday 19:00 CET: the window has just closed.
        visit(&mut k, &clock, "2027-03-26T18:00:00Z", 400.0),
    ];
    assert_eq!(grants, [1, 0, 1, 0, 0]);
    drop(k);
    assert_eq!(common::unlocks(&relay), 2);
    let log = audit(dir.path());
    assert!(
        log.contains("not allowed at this door now (Sat 12:00 Europe/Berlin): staff windows mon,tue,wed,thu,fri 07:00-19:00"),
        "{log}"
    );
}

/// A signed gallery and a door whose clock reads earlier than its signature (a Pi after a
/// power cut): the person with a validity period is denied with the reason, the person
/// without rules still enters; with the clock right again, both enter.
#[test]
fn an_untrusted_clock_fails_secure_for_time_rules_only() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(&dir.path().join("station")).unwrap();
    let mut g = Gallery::new(model());
    g.add("Obama", obama_templates(), 1).unwrap();
    let bush = images_in(&data("lfw/images/George_W_Bush"));
    g.add("Bush", templates(&bush[..2]), 1).unwrap();
    g.set_access(
        "Obama",
        PersonRules {
            valid_until: Some(at("2099-01-01T00:00:00Z")),
            ..Default::default()
        },
    )
    .unwrap();
    let p = dir.path().join("gallery.toml");
    g.save_signed(&p, Some(&SigningKey::load(&secret).unwrap()))
        .unwrap();
    let mut cfg = kiosk_config(dir.path(), &p, dir.path());
    cfg.gallery.public_key = Some(public);
    let signed_at = Gallery::load_any(&p)
        .unwrap()
        .provenance()
        .signed_at
        .unwrap() as i64;
    let clock = SetClock::at(signed_at - 3 * 86_400);
    let (mut k, relay) = kiosk(&cfg, &clock);
    assert_eq!(feed(&mut k, &obama_frames(), 0.0).len(), 0);
    let bush_frames: Vec<Frame> = bush[2..7].iter().map(|p| load_image(p).unwrap()).collect();
    assert_eq!(feed(&mut k, &bush_frames, 100.0), ["Bush"]);
    clock.set(signed_at + 60);
    assert_eq!(feed(&mut k, &obama_frames(), 200.0), ["Obama"]);
    drop(k);
    assert_eq!(common::unlocks(&relay), 2);
    let log = audit(dir.path());
    assert!(
        log.contains("Obama: the door's clock cannot be trusted"),
        "{log}"
    );
}

/// Two doors, `front` and `back`, each with its own copy of the signed gallery and its own
/// state folder. Obama may use `front` only; Bush every door. A new serial (Blair enrolled)
/// copied to both is taken by both.
#[test]
fn two_doors_with_their_own_ids_and_copies() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public, station) = station(dir.path());
    let mut g = Gallery::new(model());
    g.add("Obama", obama_templates(), 1).unwrap();
    let bush = images_in(&data("lfw/images/George_W_Bush"));
    g.add("Bush", templates(&bush[..2]), 1).unwrap();
    front_only(&mut g, "Europe/Berlin");
    g.save_signed(&station, Some(&key)).unwrap();
    let door = |id: &str| -> (Config, PathBuf) {
        let d = dir.path().join(id);
        std::fs::create_dir_all(&d).unwrap();
        let copy = d.join("gallery.toml");
        std::fs::copy(&station, &copy).unwrap();
        let mut c = kiosk_config(&d, &copy, &d);
        c.gallery.public_key = Some(public.clone());
        c.door.id = Some(id.into());
        (c, copy)
    };
    let (front_cfg, front_copy) = door("front");
    let (back_cfg, back_copy) = door("back");
    let clock = SetClock::at(at("2027-01-13T10:00:00Z"));
    let (mut front, front_relay) = kiosk(&front_cfg, &clock);
    let (mut back, back_relay) = kiosk(&back_cfg, &clock);
    let bush_frames: Vec<Frame> = bush[2..7].iter().map(|p| load_image(p).unwrap()).collect();
    assert_eq!(feed(&mut front, &obama_frames(), 0.0), ["Obama"]);
    assert_eq!(feed(&mut back, &obama_frames(), 0.0).len(), 0);
    assert_eq!(feed(&mut front, &bush_frames, 100.0), ["Bush"]);
    assert_eq!(feed(&mut back, &bush_frames, 100.0), ["Bush"]);
    assert!(
        audit(&dir.path().join("back")).contains("Obama: not allowed at back: groups front-only")
    );
    // The station enrolls Blair: a new serial, copied to both doors.
    let mut g = Gallery::open_for_change(&station, None, Some(&key)).unwrap();
    let blair = images_in(&data("lfw/images/Tony_Blair"));
    g.add("Blair", templates(&blair[..2]), 2).unwrap();
    g.save_signed(&station, Some(&key)).unwrap();
    for copy in [&front_copy, &back_copy] {
        std::fs::copy(&station, copy).unwrap();
    }
    let blair_frames: Vec<Frame> = blair[10..15]
        .iter()
        .map(|p| load_image(p).unwrap())
        .collect();
    assert_eq!(feed(&mut front, &blair_frames, 200.0), ["Blair"]);
    assert_eq!(feed(&mut back, &blair_frames, 200.0), ["Blair"]);
    drop((front, back));
    assert_eq!(common::unlocks(&front_relay), 3);
    assert_eq!(common::unlocks(&back_relay), 2);
}

/// Kit Harington with Rose Leslie beside him (faces/groups/kit_with_rose.jpg, her face 0.8
/// of his height): `ignore` lets him in with her whoever she is; `deny_unknown` refuses
/// while she is unknown and grants once she is enrolled; `deny` refuses either way.
#[test]
fn other_faces_at_the_door() {
    let group = vec![load_image(data("faces/groups/kit_with_rose.jpg")).unwrap(); 5];
    let kit = templates(&images_in(&data("faces/labeled/kit_harington")));
    let rose = templates(&images_in(&data("faces/labeled/rose_leslie")));
    let run = |mode: OtherFaces, with_rose: bool| -> (Vec<String>, String) {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::new(model());
        g.add("Kit", kit.clone(), 1).unwrap();
        if with_rose {
            g.add("Rose", rose.clone(), 1).unwrap();
        }
        let p = dir.path().join("gallery.toml");
        g.save(&p).unwrap();
        let mut cfg = kiosk_config(dir.path(), &p, dir.path());
        cfg.decision.other_faces = mode;
        let relay = SimulatedRelay::new();
        let mut k = Kiosk::new(&cfg, Box::new(relay)).unwrap();
        let grants = feed(&mut k, &group, 0.0);
        drop(k);
        (grants, audit(dir.path()))
    };
    assert_eq!(run(OtherFaces::Ignore, false).0, ["Kit"]);
    let (grants, log) = run(OtherFaces::DenyUnknown, false);
    assert!(grants.is_empty(), "{log}");
    assert!(
        log.contains("Kit with an unknown face at the door (tailgating"),
        "{log}"
    );
    assert_eq!(run(OtherFaces::DenyUnknown, true).0, ["Kit"]);
    let (grants, log) = run(OtherFaces::Deny, true);
    assert!(grants.is_empty(), "{log}");
    assert!(log.contains("one person at a time"), "{log}");
}

/// `threshold = 2.0` with `min_margin = 0` lets a stranger in: refused unless
/// `accept_weak_threshold = true`, which the kiosk then says at start.
#[test]
fn settings_that_defeat_the_threshold_are_refused() {
    let base = "[source]\nkind = \"folder\"\npath = \"f\"\n[door]\nkind = \"simulated\"\n[gallery]\npath = \"g.toml\"\n";
    let weak = format!("[recognition]\nthreshold = 2.0\nmin_margin = 0.0\n{base}");
    let e = Config::parse(&weak, Path::new("door.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("threshold") && e.contains("accept_weak_threshold"),
        "{e}"
    );
    let no_margin = format!("[recognition]\nmin_margin = 0.0\n{base}");
    let e = Config::parse(&no_margin, Path::new("door.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("min_margin") && e.contains("line 2"), "{e}");
    let accepted = format!(
        "[recognition]\nthreshold = 2.0\nmin_margin = 0.0\naccept_weak_threshold = true\n{base}"
    );
    assert!(Config::parse(&accepted, Path::new("door.toml")).is_ok());
    // The calibrated default and 1e-2's own threshold pass.
    let ok = format!("[recognition]\nthreshold = 0.61\n{base}");
    assert!(Config::parse(&ok, Path::new("door.toml")).is_ok());
}

/// A format-4 gallery (no rules) loads and means "no rules"; `people list --json` shows
/// validity and groups.
#[test]
fn old_galleries_mean_no_rules_and_people_list_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gallery::new(model());
    g.add("Obama", obama_templates(), 1).unwrap();
    let p = dir.path().join("gallery.toml");
    g.save(&p).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    let body = body.replace("version = 5", "version = 4");
    let old = format!(
        "# sha256 {}\n{body}",
        facegate::recognition::models::sha256_hex(body.as_bytes())
    );
    let loaded = Gallery::parse(&p, old.as_bytes()).unwrap();
    assert_eq!(loaded.loaded_version(), 4);
    assert!(loaded.rules().groups.is_empty());
    assert!(loaded.find("Obama").unwrap().access.is_empty());

    let gs = p.to_str().unwrap();
    let out = common::facegate(&[
        "people",
        "--gallery",
        gs,
        "group",
        "staff",
        "--doors",
        "front,lab",
        "--window",
        "mon-fri 07:00-19:00",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::facegate(&["people", "--gallery", gs, "timezone", "Europe/Berlin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::facegate(&[
        "people",
        "--gallery",
        gs,
        "set",
        "Obama",
        "--valid-until",
        "2027-01-31T18:00:00Z",
        "--groups",
        "staff",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An undefined group changes nothing.
    let out = common::facegate(&[
        "people",
        "--gallery",
        gs,
        "set",
        "Obama",
        "--groups",
        "ghosts",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = common::facegate(&["--json", "people", "--gallery", gs, "list"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let obama = &v["people"][0];
    assert_eq!(obama["valid_until"], "2027-01-31T18:00:00Z");
    assert_eq!(obama["groups"], serde_json::json!(["staff"]));
    assert_eq!(v["timezone"], "Europe/Berlin");
    assert_eq!(v["groups"][0]["doors"], serde_json::json!(["front", "lab"]));
    assert_eq!(
        v["groups"][0]["windows"],
        serde_json::json!(["mon,tue,wed,thu,fri 07:00-19:00"])
    );
}

/// The same with two `facegate run` processes, `front` and `back`, each with its own config,
/// copy of the gallery and state folder, on a looping camera folder (five frames of Obama,
/// then five of Blair). Obama may use `front` only; Blair is not enrolled until the station
/// signs a new serial and copies it to both doors while they run: then both let him in.
#[test]
fn two_door_processes_take_a_new_serial_and_keep_their_own_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public, station) = station(dir.path());
    let mut g = Gallery::new(model());
    g.add("Obama", obama_templates(), 1).unwrap();
    front_only(&mut g, "UTC");
    g.save_signed(&station, Some(&key)).unwrap();
    // The camera: five frames of Obama, then five of Blair, looping at 5 fps.
    let camera = dir.path().join("camera");
    std::fs::create_dir(&camera).unwrap();
    for (i, f) in obama_frames().iter().enumerate() {
        f.save(camera.join(format!("{i}_obama.jpg"))).unwrap();
    }
    let blair = images_in(&data("lfw/images/Tony_Blair"));
    for (i, p) in blair[10..15].iter().enumerate() {
        std::fs::copy(p, camera.join(format!("{}_blair.jpg", i + 5))).unwrap();
    }
    let start = |id: &str| -> (std::process::Child, PathBuf, PathBuf) {
        let d = dir.path().join(id);
        std::fs::create_dir_all(&d).unwrap();
        let copy = d.join("gallery.toml");
        std::fs::copy(&station, &copy).unwrap();
        let cfg = d.join("door.toml");
        std::fs::write(
            &cfg,
            format!(
                "[detector]\nmin_face = 40\n[recognition]\nmin_margin = 0.05\n[quality]\nmin_eye_distance = 30\n\
                 [decision]\nk = 3\nn = 5\nwindow_secs = 3.0\ncooldown_secs = 1.0\n\
                 [source]\nkind = \"folder\"\npath = {:?}\nfps = 5\nlooping = true\n\
                 [door]\nid = {id:?}\nkind = \"simulated\"\npulse_ms = 1\n\
                 [gallery]\npath = \"gallery.toml\"\npublic_key = {:?}\n[audit]\npath = \"audit.jsonl\"\n",
                camera.display().to_string(),
                public.display().to_string()
            ),
        )
        .unwrap();
        let child = common::facegate_cmd()
            .args(["run", "--config", cfg.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        (child, copy, d.join("audit.jsonl"))
    };
    let (mut front, front_copy, front_log) = start("front");
    let (mut back, back_copy, back_log) = start("back");
    let grants = |log: &Path, who: &str| -> usize {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("\"decision\":\"grant\"") && l.contains(&format!("\"person\":\"{who}\""))
            })
            .count()
    };
    let wait_for = |what: &str, ok: &dyn Fn() -> bool| {
        let t = std::time::Instant::now();
        while !ok() {
            assert!(t.elapsed().as_secs() < 90, "waited too long for {what}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    wait_for("Obama at front", &|| grants(&front_log, "Obama") > 0);
    wait_for("Obama refused at back", &|| {
        std::fs::read_to_string(&back_log)
            .unwrap_or_default()
            .contains("Obama: not allowed at back: groups front-only")
    });
    assert_eq!(grants(&back_log, "Blair") + grants(&front_log, "Blair"), 0);
    // The station enrolls Blair: a new serial, copied to both running doors.
    let mut g = Gallery::open_for_change(&station, None, Some(&key)).unwrap();
    g.add("Blair", templates(&blair[..2]), 2).unwrap();
    g.save_signed(&station, Some(&key)).unwrap();
    for copy in [&front_copy, &back_copy] {
        let tmp = copy.with_extension("new");
        std::fs::copy(&station, &tmp).unwrap();
        std::fs::rename(&tmp, copy).unwrap();
    }
    wait_for("Blair at both doors", &|| {
        grants(&front_log, "Blair") > 0 && grants(&back_log, "Blair") > 0
    });
    for child in [&mut front, &mut back] {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    assert_eq!(grants(&back_log, "Obama"), 0, "Obama let in at back");
    for log in [&front_log, &back_log] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(!text.contains("gallery refused"), "{text}");
    }
}
