//! `facegate cluster` and bulk enrollment on real photos, and every still-image format a
//! photo library holds.

mod common;

use common::facegate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn cluster_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "cluster", "--no-cache"];
    all.extend_from_slice(args);
    let out = facegate(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn files_of(faces: &serde_json::Value) -> Vec<String> {
    faces
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn faces_clusters_are_grouped_into_their_five_people() {
    let root = common::data("faces/clusters");
    let v = cluster_json(&[root.to_str().unwrap()]);
    let clusters = v["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 5, "{v}");
    assert_eq!(v["singletons"].as_array().unwrap().len(), 0);
    let mut people = BTreeSet::new();
    for (k, c) in clusters.iter().enumerate() {
        assert_eq!(c["id"], k + 1);
        let files = files_of(&c["faces"]);
        assert_eq!(files.len(), 11);
        let person: BTreeSet<String> = files
            .iter()
            .map(|f| {
                Path::new(f)
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .to_string()
            })
            .collect();
        assert_eq!(
            person.len(),
            1,
            "cluster {} mixes people: {person:?}",
            k + 1
        );
        people.extend(person);
        let b = c["faces"][0]["box"].as_array().unwrap();
        assert_eq!(b.len(), 4);
    }
    assert_eq!(people.len(), 5);
}

#[test]
fn no_cluster_holds_two_faces_of_one_group_photo() {
    let v = cluster_json(&[common::data("faces/groups").to_str().unwrap()]);
    let mut total = 0;
    for c in v["clusters"].as_array().unwrap() {
        let files = files_of(&c["faces"]);
        let unique: BTreeSet<&String> = files.iter().collect();
        assert_eq!(
            unique.len(),
            files.len(),
            "one photo twice in a cluster: {files:?}"
        );
        total += files.len();
    }
    total += v["singletons"].as_array().unwrap().len();
    // COUNTS.txt: 2 + 6 + 3 + 2 faces (the detection tests check each photo's count).
    assert_eq!(total, 13, "{v}");
    assert_eq!(v["no_face"].as_array().unwrap().len(), 0);
}

#[test]
fn images_without_faces_and_a_corrupt_one_are_reported_and_the_rest_clustered() {
    let dir = tempfile::tempdir().unwrap();
    let no_face = common::images_in(&common::data("faces/no_face"));
    for f in &no_face[..3] {
        std::fs::copy(f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let people = common::data("faces/clusters");
    let mut n = 0;
    for person in ["John_Salley", "John_Simm"].iter().map(|p| people.join(p)) {
        for f in common::images_in(&person).iter().take(4) {
            n += 1;
            std::fs::copy(f, dir.path().join(format!("{n}.jpg"))).unwrap();
        }
    }
    // A JPEG cut after 600 bytes: its first bytes say JPEG, decoding fails.
    let good = std::fs::read(common::data("faces/labeled/obama/obama.jpg")).unwrap();
    std::fs::write(dir.path().join("cut.jpg"), &good[..600]).unwrap();
    let out = facegate(&[
        "--json",
        "cluster",
        "--no-cache",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.jpg"), "the corrupt image is named: {err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing = files_of(&serde_json::json!(v["no_face"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| serde_json::json!({"file": f}))
        .collect::<Vec<_>>()));
    assert_eq!(missing.len(), 4, "{missing:?}");
    assert!(missing.iter().any(|f| f.ends_with("cut.jpg")));
    let clustered: usize = v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["faces"].as_array().unwrap().len())
        .sum::<usize>()
        + v["singletons"].as_array().unwrap().len();
    assert_eq!((clustered, n), (8, 8));
    // The plain listing names every file: clusters, then singletons, then those without a face.
    let out = facegate(&["cluster", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let singles = v["singletons"].as_array().unwrap().len();
    if singles > 0 {
        assert!(
            text.contains(&format!("singletons ({singles} faces, each alone)")),
            "{text}"
        );
    }
    let tail = text.split("without a face (4 images)").nth(1).expect(&text);
    for f in &missing {
        let name = Path::new(f).file_name().unwrap().to_str().unwrap();
        assert!(tail.contains(name), "{name} listed under no face: {text}");
    }
    assert!(text.contains("cluster 1 ("), "{text}");
}

#[test]
fn bulk_enrollment_enrolls_the_named_clusters_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::data("faces/clusters");
    let v = cluster_json(&[root.to_str().unwrap()]);
    let clusters = dir.path().join("clusters.json");
    std::fs::write(&clusters, v.to_string()).unwrap();
    let person_of = |id: usize| {
        let f = v["clusters"][id - 1]["faces"][0]["file"]
            .as_str()
            .unwrap()
            .to_string();
        Path::new(&f)
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string()
    };
    let names = dir.path().join("names.toml");
    std::fs::write(
        &names,
        format!("1 = {:?}\n3 = {:?}\n", person_of(1), person_of(3)),
    )
    .unwrap();
    let g = dir.path().join("gallery.toml");
    let args = [
        "enroll",
        "--gallery",
        g.to_str().unwrap(),
        "--clusters",
        clusters.to_str().unwrap(),
        "--names",
        names.to_str().unwrap(),
        "--k",
        "3",
        "--min-eye-distance",
        "10",
    ];
    let out = facegate(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = common::store().model_id("dlib_fp32").unwrap();
    let gallery = facegate::identity::gallery::Gallery::load(&g, &model, 128).unwrap();
    let enrolled: BTreeMap<String, usize> = gallery
        .people()
        .iter()
        .map(|p| (p.name.clone(), p.templates.len()))
        .collect();
    assert_eq!(
        enrolled,
        BTreeMap::from([(person_of(1), 3), (person_of(3), 3)])
    );
    // Again: both names are enrolled already; refused, the gallery unchanged, exit 1.
    let before = std::fs::read(&g).unwrap();
    let out = facegate(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already enrolled"));
    assert_eq!(std::fs::read(&g).unwrap(), before);
}

/// Pillow from the models' venv (made by `models/fetch`) converts a real photo: a tool
/// outside facegate.
fn convert(src: &Path, dst: &Path, format: &str) {
    let py = facegate::recognition::models::cache_root().join("venv/bin/python");
    let out = Command::new(&py)
        .args([
            "-c",
            "import sys; from PIL import Image; im = Image.open(sys.argv[1]).convert('RGB'); im.save(sys.argv[2], format=sys.argv[3])",
        ])
        .arg(src)
        .arg(dst)
        .arg(format)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run models/fetch)", py.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_still_format_is_read_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let photo = common::data("faces/labeled/obama/obama.jpg");
    let cases: Vec<(&str, PathBuf)> = vec![
        ("WEBP", dir.path().join("webp_named.jpg")),
        ("BMP", dir.path().join("photo.bmp")),
        ("TIFF", dir.path().join("photo.tif")),
        ("GIF", dir.path().join("photo.gif")),
        ("PNG", dir.path().join("png_without_extension")),
    ];
    for (format, path) in &cases {
        convert(&photo, path, format);
        let out = facegate(&["--json", "detect", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["faces"].as_array().unwrap().len(), 1, "{format}");
    }
    // A folder source lists them all by content.
    let listed = facegate::recognition::frame::list_images(dir.path()).unwrap();
    assert_eq!(listed.len(), cases.len());
    // A format facegate does not read: named, with the format.
    let ppm = dir.path().join("photo.ppm");
    convert(&photo, &ppm, "PPM");
    let out = facegate(&["detect", ppm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("photo.ppm") && err.contains("unsupported format Pnm"),
        "{err}"
    );
}

/// The library's bulk enrollment on real photos: a name for a cluster the file lacks is
/// refused before any change, and a face whose box no longer matches a detection is
/// reported while the rest of that person's faces are used.
#[test]
fn bulk_enrollment_in_the_library_refuses_unknown_ids_and_reports_lost_faces() {
    use facegate::identity::bulk::{enroll_clusters, ClusterNames};
    use facegate::identity::cluster::{ClusterEntry, ClusterFile, FaceRef};
    use facegate::identity::gallery::Gallery;
    use facegate::recognition::detect::DETECT_MAX_SIDE;
    use facegate::recognition::photo::load_photo;

    let mut rec = common::recognizer("dlib_fp32", 20.0);
    let mut refs = |person: &str, n: usize| -> Vec<FaceRef> {
        common::images_in(&common::data(&format!("faces/clusters/{person}")))
            .into_iter()
            .take(n)
            .map(|file| {
                let photo = load_photo(&file, DETECT_MAX_SIDE).unwrap();
                let f = rec.detect(&photo.frame).unwrap().remove(0);
                let s = photo.factor as f32;
                let b = f.bbox.map(|v| v * s);
                FaceRef {
                    file,
                    xywh: [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                }
            })
            .collect()
    };
    let salley = refs("John_Salley", 3);
    let mut savage = refs("John_Savage", 2);
    // A box in the corner, where no face is.
    savage[1].xywh = [0.0, 0.0, 20.0, 20.0];
    let lost = savage[1].file.display().to_string();
    let doc = ClusterFile {
        clusters: vec![
            ClusterEntry {
                id: 1,
                faces: salley,
            },
            ClusterEntry {
                id: 2,
                faces: savage,
            },
        ],
        singletons: vec![],
        no_face: vec![],
    };
    let mut gallery = Gallery::new(rec.model_id());
    let names = |pairs: &[(&str, &str)]| -> ClusterNames {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };

    let err = enroll_clusters(
        &mut rec,
        &mut gallery,
        &doc,
        &names(&[("1", "John Salley"), ("9", "Nobody")]),
        common::opts(3),
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cluster 9"), "{err}");
    assert!(gallery.people().is_empty());

    let reports = enroll_clusters(
        &mut rec,
        &mut gallery,
        &doc,
        &names(&[("1", "John Salley"), ("2", "John Savage")]),
        common::opts(3),
        0,
    )
    .unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].used.len(), 3, "{:?}", reports[0]);
    assert_eq!(reports[1].used.len(), 1, "{:?}", reports[1]);
    assert_eq!(reports[1].rejected.len(), 1);
    assert_eq!(reports[1].rejected[0].0, lost);
    assert!(reports[1].rejected[0].1.contains("not found again"));
    let counts: BTreeMap<String, usize> = gallery
        .people()
        .iter()
        .map(|p| (p.name.clone(), p.templates.len()))
        .collect();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("John Salley".to_string(), 3),
            ("John Savage".to_string(), 1)
        ])
    );
}
