//! The kiosk configuration: shipped configs parse, defaults and paths, and every invalid
//! value is refused naming its key, its section and its line.

use facegate::kiosk::config::Config;
use std::path::{Path, PathBuf};

const MIN: &str = "[recognition]\nthreshold = 0.55\n[source]\nkind = \"folder\"\npath = \"frames\"\n[door]\nkind = \"simulated\"\n[gallery]\npath = \"g.toml\"\n";

#[test]
fn shipped_configs_parse() {
    for f in ["config/facegate.toml", "config/demo.toml"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        Config::load(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[test]
fn minimal_config_gets_defaults_and_resolved_paths() {
    let c = Config::parse(MIN, Path::new("/etc/facegate/facegate.toml")).unwrap();
    assert_eq!(c.decision.k, 3);
    assert_eq!(c.gallery.path, PathBuf::from("/etc/facegate/g.toml"));
    assert_eq!(
        c.source.path.unwrap(),
        PathBuf::from("/etc/facegate/frames")
    );
}

#[test]
fn unknown_key_is_named() {
    let t = MIN.replace("threshold = 0.55", "threshold = 0.55\nthreshhold = 0.5");
    let e = Config::parse(&t, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("x.toml") && e.contains("threshhold") && e.contains("line 3"),
        "{e}"
    );
}

#[test]
fn invalid_values_name_key_and_line() {
    let t = MIN.replace(
        "kind = \"simulated\"",
        "kind = \"simulated\"\npulse_ms = 60000",
    );
    let e = Config::parse(&t, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pulse_ms") && e.contains("line 8"), "{e}");
    let t = MIN.replace("0.55", "-1");
    let e = Config::parse(&t, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("threshold") && e.contains("line 2"), "{e}");
    let t = MIN.replace("\"folder\"", "\"webcam\"");
    assert!(Config::parse(&t, Path::new("x.toml"))
        .unwrap_err()
        .to_string()
        .contains("webcam"));
}

#[test]
fn a_key_in_two_sections_is_reported_in_its_own() {
    // `kind` is in [source] (line 4) and [door] (line 7): the door's typo names line 7.
    let t = MIN.replace("kind = \"simulated\"", "kind = \"simulatd\"");
    let e = Config::parse(&t, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 7") && e.contains("[door] kind"), "{e}");
    let t = MIN.replace(
        "[door]",
        "[decision]\nwindow_secs = 3.0\ncooldown_secs = -1\n[door]",
    );
    let e = Config::parse(&t, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 8") && e.contains("cooldown_secs"), "{e}");
}

#[test]
fn every_number_is_fail_closed() {
    // NaN compares false with everything: each of these would switch a check off or
    // panic later if it were accepted.
    for (section, key, value) in [
        ("quality", "min_eye_distance", "nan"),
        ("quality", "min_sharpness", "nan"),
        ("quality", "max_yaw", "nan"),
        ("quality", "max_yaw", "inf"),
        ("quality", "min_eye_distance", "-1"),
        ("decision", "cooldown_secs", "nan"),
        ("decision", "window_secs", "inf"),
        ("decision", "n", "100000"),
        ("decision", "k", "0"),
        ("recognition", "min_margin", "nan"),
        ("recognition", "target_fpir", "nan"),
        ("detector", "min_face", "0"),
        ("detector", "min_face", "nan"),
        ("detector", "threads", "65"),
        ("source", "fps", "1e-20"),
        ("source", "fps", "nan"),
        ("source", "width", "0"),
        ("liveness", "texture_threshold", "nan"),
        ("liveness", "texture_threshold", "0"),
        ("liveness", "texture_threshold", "1.5"),
        ("liveness", "min_depth", "nan"),
        ("migration", "far", "1e-2"),
        ("migration", "max_templates", "0"),
        ("migration", "min_margin", "nan"),
        ("audit", "keep", "101"),
        ("audit", "max_bytes", "10"),
        ("source", "stall_secs", "0.1"),
        ("door", "id", "\"front door\""),
        ("door", "pulse_ms", "0"),
        ("gallery", "site", "\"\""),
    ] {
        let t = format!("{MIN}[{section}]\n{key} = {value}\n");
        // Sections may only appear once: put the new one in place of an existing one.
        let t = if MIN.contains(&format!("[{section}]")) {
            MIN.replace(
                &format!("[{section}]\n"),
                &format!("[{section}]\n{key} = {value}\n"),
            )
        } else {
            t
        };
        let e = Config::parse(&t, Path::new("x.toml"))
            .err()
            .unwrap_or_else(|| panic!("[{section}] {key} = {value} was accepted"))
            .to_string();
        assert!(
            e.contains(&format!("`[{section}] {key}`")) && e.contains("line "),
            "{e}"
        );
    }
}

#[test]
fn every_sections_defaults_pass_its_own_check() {
    // The defaults live in each section's `Default`; a default outside its own range would
    // refuse every config that leaves the key out.
    let c = Config::parse(MIN, Path::new("x.toml")).unwrap();
    for (section, outcome) in c.validate() {
        assert_eq!(outcome, Ok(()), "[{section}]");
    }
    assert_eq!(c.detector.min_face, facegate::kiosk::config::KIOSK_MIN_FACE);
    assert_eq!(c.audit.keep, 5);
    assert!(c.migration.enabled);
    assert_eq!(c.models.embedder, "dlib_q8");
    assert_eq!(c.models.embedder, facegate::kiosk::config::KIOSK_EMBEDDER);
}

#[test]
fn a_command_source_needs_its_program() {
    let cmd = MIN.replace(
        "kind = \"folder\"\npath = \"frames\"",
        "kind = \"command\"\ncommand = [\"rpicam-vid\", \"--codec\", \"mjpeg\", \"-t\", \"0\", \"-o\", \"-\"]",
    );
    let c = Config::parse(&cmd, Path::new("x.toml")).unwrap();
    assert_eq!(c.source.command[0], "rpicam-vid");
    assert_eq!(c.source.stall_secs, 5.0);
    let empty = MIN.replace("kind = \"folder\"", "kind = \"command\"");
    let e = Config::parse(&empty, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("command") && e.contains("line 4"), "{e}");
    let stall = cmd.replace("[door]", "stall_secs = 0\n[door]");
    let e = Config::parse(&stall, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("stall_secs"), "{e}");
}
