//! What a newcomer meets on the command line, with real photos and bad inputs: every command
//! answers, says what went wrong and what to do, and has an exit code scripts can use.

mod common;

use common::facegate;

use std::path::Path;
use std::process::Command;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn data(rel: &str) -> String {
    common::data(rel).to_str().unwrap().to_string()
}

#[test]
fn the_fetch_script_checks_the_python_version_first() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("python3.8");
    std::fs::write(&fake, "#!/bin/sh\necho 3.8\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fetch"))
        .env("PYTHON", &fake)
        .env("FACEGATE_CACHE", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("Python 3.8") && err.contains("3.10 or newer"),
        "{err}"
    );
    assert!(
        !dir.path().join("venv").exists(),
        "a venv was made before the check"
    );
}

#[test]
fn identify_answers_every_image_and_says_which_failed() {
    let dir = tempfile::tempdir().unwrap();
    let g = common::obama_gallery(dir.path());
    let missing = dir.path().join("missing.jpg");
    let out = facegate(&[
        "--json",
        "identify",
        "--gallery",
        g.to_str().unwrap(),
        &data("faces/labeled/obama/obama2.jpg"),
        missing.to_str().unwrap(),
        &data("faces/labeled/biden/biden.jpg"),
        &data("faces/no_face/coffee.png"),
    ]);
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["person"], "Obama");
    assert!(lines[1]["error"].as_str().unwrap().contains("missing.jpg"));
    assert_eq!(lines[2]["person"], serde_json::Value::Null);
    assert_eq!(lines[2]["faces"], 1);
    assert_eq!(lines[3]["faces"], 0);
    assert_eq!(out.status.code(), Some(2), "an image failed");
    // Only the enrolled person: exit 0; a stranger among them: exit 1.
    let one = |img: &str| {
        facegate(&["identify", "--gallery", g.to_str().unwrap(), &data(img)])
            .status
            .code()
    };
    assert_eq!(one("faces/labeled/obama/obama2.jpg"), Some(0));
    assert_eq!(one("faces/labeled/biden/biden.jpg"), Some(1));
    // Plain text: the threshold beside the distance, a failed file named once.
    let out = facegate(&[
        "identify",
        "--gallery",
        g.to_str().unwrap(),
        &data("faces/labeled/obama/obama2.jpg"),
        missing.to_str().unwrap(),
    ]);
    let plain = text(&out.stdout);
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 2, "{plain}");
    assert!(
        lines[0].contains(": Obama (distance 0.") && lines[0].contains(", threshold 0."),
        "{plain}"
    );
    assert_eq!(lines[1].matches("missing.jpg").count(), 1, "{plain}");
}

#[test]
fn embed_and_detect_always_print_a_result() {
    let nothing = data("faces/no_face/coffee.png");
    for cmd in ["embed", "detect"] {
        let out = facegate(&["--json", cmd, &nothing]);
        assert_eq!(text(&out.stdout).trim(), r#"{"faces":[]}"#, "{cmd}");
        assert_eq!(out.status.code(), Some(1), "{cmd}: no face is a 'no'");
    }
    let out = facegate(&["--json", "embed", &data("faces/labeled/obama/obama.jpg")]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["faces"][0]["embedding"].as_array().unwrap().len(), 128);
}

#[test]
fn enroll_goes_past_a_bad_photo_and_says_how_to_enroll_with_fewer() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.toml");
    let broken = dir.path().join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let obama = common::images_in(&common::data("faces/labeled/obama"));
    let p = |i: usize| obama[i].to_str().unwrap().to_string();
    let (a, b) = (p(0), p(1));
    let args = |k: &str| {
        vec![
            "enroll".to_string(),
            "--gallery".into(),
            g.to_str().unwrap().into(),
            "--name".into(),
            "Obama".into(),
            "--k".into(),
            k.into(),
            "--images".into(),
            a.clone(),
            broken.to_str().unwrap().into(),
            b.clone(),
        ]
    };
    let run = |args: Vec<String>| facegate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // K = 3 from 2 good photos and a broken one: refused, with the way forward.
    let out = run(args("3"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("broken.jpg: rejected"), "{err}");
    assert!(err.contains("--k 2"), "{err}");
    assert!(!g.exists(), "something was saved");
    // K = 2: the broken photo is reported, the two good ones enroll.
    let out = run(args("2"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let model = common::store().model_id("dlib_fp32").unwrap();
    let gallery = facegate::identity::gallery::Gallery::load(&g, &model, 128).unwrap();
    assert_eq!(gallery.people()[0].templates.len(), 2);
    // K = 0 and an empty name are refused at once.
    let out = run(args("0"));
    assert_eq!(out.status.code(), Some(2));
    let mut empty = args("2");
    empty[4] = String::new();
    let t = std::time::Instant::now();
    let out = run(empty);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--name \"\": a name must not be empty"));
    assert!(t.elapsed().as_secs() < 30);
}

#[test]
fn errors_point_at_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // A damaged gallery with no backup: no advice to restore one.
    let g = common::obama_gallery(dir.path());
    let mut bytes = std::fs::read(&g).unwrap();
    let n = bytes.len() - 40;
    bytes[n] ^= 4;
    std::fs::write(&g, &bytes).unwrap();
    let out = facegate(&["people", "--gallery", g.to_str().unwrap(), "list"]);
    let err = text(&out.stderr);
    assert!(err.contains("no backup") && !err.contains(".bak"), "{err}");
    assert!(err.contains("facegate people rename"), "{err}");
    // With a backup that lacks the last enrollment: what it holds is said, not just "restore".
    let mut rec = common::recognizer("dlib_fp32", 40.0);
    let mut gallery = facegate::identity::gallery::Gallery::new(rec.model_id());
    let obama = common::images_in(&common::data("faces/labeled/obama"));
    common::enroll_files(&mut rec, &mut gallery, "Obama", &obama[..2]);
    std::fs::remove_file(&g).unwrap();
    gallery.save(&g).unwrap();
    let bush = common::images_in(&common::data("lfw/images/George_W_Bush"));
    common::enroll_files(&mut rec, &mut gallery, "Bush", &bush[..2]);
    gallery.save(&g).unwrap(); // the .bak now holds Obama alone
    let mut bytes = std::fs::read(&g).unwrap();
    let n = bytes.len() - 40;
    bytes[n] ^= 4;
    std::fs::write(&g, &bytes).unwrap();
    let out = facegate(&["people", "--gallery", g.to_str().unwrap(), "list"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("gallery.toml.bak holds 1 person (serial 1")
            && err.contains("lacks every change"),
        "{err}"
    );
    // A JPEG cut short: one line naming the file, no blank line after it.
    let cut = dir.path().join("cut.jpg");
    let photo = std::fs::read(common::data("faces/labeled/obama/obama.jpg")).unwrap();
    std::fs::write(&cut, &photo[..600]).unwrap();
    let out = facegate(&["detect", cut.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("cut.jpg: cannot decode image"), "{err:?}");
    assert_eq!(
        err.matches('\n').count(),
        1,
        "one line, no blank one: {err:?}"
    );
    // A missing data folder names --data and FACEGATE_DATA.
    let out = facegate(&[
        "eval",
        "lfw",
        "--data",
        dir.path().join("nowhere").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--data") && err.contains("FACEGATE_DATA"),
        "{err}"
    );
    // A people list reads as English.
    let g2 = common::obama_gallery(&dir.path().join("two"));
    let out = facegate(&["people", "--gallery", g2.to_str().unwrap(), "list"]);
    let list = text(&out.stdout);
    assert!(list.contains("1 person enrolled"), "{list}");
}

/// A JPEG cut part-way used to decode with its missing part grey: `verify` then said "same
/// person" and an enrollment would have stored a damaged template. It is refused by name
/// everywhere; a JPEG with bytes after its end (a maker's trailer) still reads.
#[test]
fn a_jpeg_cut_part_way_is_refused_not_filled_with_grey() {
    let dir = tempfile::tempdir().unwrap();
    let photo = std::fs::read(common::data("faces/labeled/obama/obama.jpg")).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &photo[..photo.len() * 7 / 10]).unwrap();
    let whole = data("faces/labeled/obama/obama.jpg");
    let out = facegate(&["verify", &whole, cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("cut.jpg") && err.contains("incomplete JPEG"),
        "{err}"
    );
    let g = dir.path().join("g.toml");
    let out = facegate(&[
        "enroll",
        "--gallery",
        g.to_str().unwrap(),
        "--name",
        "Obama",
        "--k",
        "1",
        "--images",
        cut.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!g.exists(), "nothing enrolled from a damaged photo");
    let mut trailer = photo.clone();
    trailer.extend_from_slice(b"MAKER TRAILER\0\0");
    let t = dir.path().join("trailer.jpg");
    std::fs::write(&t, &trailer).unwrap();
    let out = facegate(&["verify", &whole, t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// `deploy/install.sh` stages everything it installs (here into a folder, with this build's
/// binary): both guides under their own names, the models, the unit, the config as
/// `.dist`, and the staged binary verifies two photos with the staged models.
#[test]
fn the_install_script_stages_a_working_door() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/install.sh"))
        .args(["root", root.to_str().unwrap()])
        .env("FACEGATE_BIN", env!("CARGO_BIN_EXE_facegate"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in [
        "opt/facegate/bin/facegate",
        "opt/facegate/README.md",
        "opt/facegate/INSTALL.md",
        "opt/facegate/models/dlib_resnet_v1_fp32.onnx",
        "opt/facegate/models/mtcnn_pnet.onnx",
        "etc/systemd/system/facegate.service",
        "etc/facegate/facegate.toml.dist",
    ] {
        assert!(root.join(f).is_file(), "{f} not staged");
    }
    let guide = std::fs::read_to_string(root.join("opt/facegate/INSTALL.md")).unwrap();
    assert!(
        guide.starts_with("# Deploying facegate"),
        "the install guide"
    );
    let out = Command::new(root.join("opt/facegate/bin/facegate"))
        .env_remove("FACEGATE_SIGNING_KEY")
        .args([
            "--models",
            root.join("opt/facegate/models").to_str().unwrap(),
            "verify",
        ])
        .args([
            data("faces/labeled/obama/obama.jpg"),
            data("faces/labeled/obama/obama2.jpg"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Two photos enroll without `--k` (K follows the photos given, at most 5, and says so);
/// listing a gallery that does not exist leaves no lock file behind.
#[test]
fn two_photos_enroll_and_a_listing_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.toml");
    let obama = common::images_in(&common::data("faces/labeled/obama"));
    let out = facegate(&[
        "enroll",
        "--gallery",
        g.to_str().unwrap(),
        "--name",
        "Obama",
        "--images",
        obama[0].to_str().unwrap(),
        obama[1].to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("collecting 2 templates"));
    // One photo: "1 template", not "1 templates".
    let biden = common::images_in(&common::data("faces/labeled/biden"));
    let out = facegate(&[
        "enroll",
        "--gallery",
        g.to_str().unwrap(),
        "--name",
        "Biden",
        "--images",
        biden[0].to_str().unwrap(),
    ]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("1 template") && !said.contains("1 templates"),
        "{said}"
    );
    let typo = dir.path().join("typo.toml");
    let out = facegate(&["people", "--gallery", typo.to_str().unwrap(), "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("typo.toml"),
        "{}",
        text(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("typo"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `facegate door test`: one pulse through the configured relay (here the simulated one),
/// audited as a test pulse; a config that cannot be read is an error naming it.
#[test]
fn door_test_pulses_once_and_audits_it() {
    let dir = tempfile::tempdir().unwrap();
    let g = common::obama_gallery(dir.path());
    // Writes the config as kiosk.toml: a simulated door with its audit log.
    common::kiosk_config(dir.path(), &g, dir.path());
    let path = dir.path().join("kiosk.toml");
    let out = facegate(&["--json", "door", "test", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["simulated"], true);
    assert_eq!(v["pulsed_ms"], 1);
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("test pulse")).count(),
        1,
        "{log}"
    );
    let out = facegate(&["door", "test", "--config", "/nonexistent/door.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/door.toml"));
}

/// `[door] kind = "gpio"` (the kernel's GPIO character device) on a chip that is not there:
/// `door test` and `run` stop with the chip and line named, before any pulse. This machine
/// has no GPIO chip and no gpio-sim, so the relay's levels are tested behind the `Relay`
/// trait (tests/kiosk.rs); on a Pi, `facegate door test` checks the wiring.
#[test]
fn a_gpio_door_on_a_missing_chip_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let g = common::obama_gallery(dir.path());
    common::kiosk_config(dir.path(), &g, dir.path());
    let path = dir.path().join("kiosk.toml");
    let config = std::fs::read_to_string(&path).unwrap().replace(
        "kind = \"simulated\"",
        "kind = \"gpio\"\nchip = \"/dev/gpiochip-none\"\npin = 17",
    );
    std::fs::write(&path, config).unwrap();
    for args in [["door", "test", "--config"], ["run", "--config", ""]] {
        let mut a: Vec<&str> = args.iter().copied().filter(|s| !s.is_empty()).collect();
        a.push(path.to_str().unwrap());
        let out = facegate(&a);
        assert_eq!(out.status.code(), Some(2), "{a:?}");
        let err = text(&out.stderr);
        assert!(err.contains("/dev/gpiochip-none line 17"), "{a:?}: {err}");
    }
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap_or_default();
    assert!(!log.contains("test pulse"), "a pulse was logged: {log}");
}

/// A subcommand's help lists the global flags it reads and leaves out those that mean
/// nothing there; the flags are still accepted anywhere on the line.
#[test]
fn each_help_lists_only_the_global_flags_that_apply() {
    let help = |args: &[&str]| {
        let out = facegate(args);
        assert!(out.status.success(), "{args:?}");
        text(&out.stdout)
    };
    let keygen = help(&["keygen", "--help"]);
    assert!(keygen.contains("--signing-key"), "{keygen}");
    for flag in ["--min-face", "--model ", "--head", "--models"] {
        assert!(!keygen.contains(flag), "{flag} in keygen's help: {keygen}");
    }
    let list = help(&["people", "list", "--help"]);
    assert!(
        !list.contains("--min-face") && list.contains("--json"),
        "{list}"
    );
    let identify = help(&["identify", "--help"]);
    for flag in ["--min-face", "--model ", "--head", "--models", "--json"] {
        assert!(identify.contains(flag), "{flag} missing: {identify}");
    }
    assert!(!identify.contains("--signing-key"), "{identify}");
    // Hidden, not refused: a script that passes a global everywhere keeps working.
    let dir = tempfile::tempdir().unwrap();
    let out = facegate(&[
        "keygen",
        "--min-face",
        "40",
        "--out",
        dir.path().join("k").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
