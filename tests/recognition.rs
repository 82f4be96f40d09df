//! The recognition core on real photos: detection, verification, reference outputs, bad input.

mod common;

use facegate::eval::metrics::{accuracy, best_threshold};
use facegate::eval::{embed_all, parse_pairs, EmbedRun};
use facegate::recognition::embed::distance;
use facegate::recognition::frame::load_image;
use facegate::recognition::pipeline::largest;
use facegate::Error;
use std::path::PathBuf;

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

fn attr(tag: &str, name: &str) -> f32 {
    let k = tag.find(&format!("{name}='")).unwrap() + name.len() + 2;
    tag[k..].split('\'').next().unwrap().parse().unwrap()
}

#[test]
fn every_labelled_face_box_is_found() {
    let mut rec = common::recognizer("dlib_fp32", 20.0);
    let xml = std::fs::read_to_string(common::data("faces/detection/training.xml")).unwrap();
    let (mut checked, mut found) = (0, 0);
    for block in xml.split("<image file='").skip(1) {
        let file = block.split('\'').next().unwrap();
        let frame = load_image(common::data("faces/detection").join(file)).unwrap();
        let faces = rec.detect(&frame).unwrap();
        for tag in block.split("<box ").skip(1) {
            let (x, y) = (attr(tag, "left"), attr(tag, "top"));
            let want = [x, y, x + attr(tag, "width"), y + attr(tag, "height")];
            let best = faces.iter().map(|f| iou(f.bbox, want)).fold(0.0, f32::max);
            if best >= 0.5 {
                found += 1;
            } else {
                eprintln!("{file}: box {want:?} not found (best IoU {best})");
            }
            checked += 1;
        }
        assert!(
            faces.len() <= block.matches("<box ").count() + 1,
            "{file}: {} detections",
            faces.len()
        );
    }
    // 17 of 18: the 18th, a 37 px face in 2008_002079.jpg at (122, 134), reaches O-Net with
    // a score of 0.67, under MTCNN's 0.7 (the same in the numpy reference).
    assert_eq!(checked, 18);
    assert!(found >= 17, "found {found} of {checked}");
}

#[test]
fn no_face_images_have_no_faces() {
    let mut rec = common::recognizer("dlib_fp32", 40.0);
    let images = common::images_in(&common::data("faces/no_face"));
    assert_eq!(images.len(), 12);
    for p in images {
        let faces = rec.detect(&load_image(&p).unwrap()).unwrap();
        assert!(faces.is_empty(), "{}: {} faces", p.display(), faces.len());
    }
}

#[test]
fn group_photos_have_the_right_number_of_faces() {
    let mut rec = common::recognizer("dlib_fp32", 20.0);
    let counts = std::fs::read_to_string(common::data("faces/groups/COUNTS.txt")).unwrap();
    let mut n = 0;
    for line in counts
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut t = line.split('\t');
        let (file, want): (&str, usize) =
            (t.next().unwrap(), t.next().unwrap().trim().parse().unwrap());
        let faces = rec
            .detect(&load_image(common::data("faces/groups").join(file)).unwrap())
            .unwrap();
        assert_eq!(faces.len(), want, "{file}");
        for f in &faces {
            assert!(f.score > 0.7 && f.eye_distance() > 5.0);
            let [l, r] = [f.landmarks[0], f.landmarks[1]];
            assert!(
                l[0] < r[0],
                "{file}: eyes not in image-left to image-right order"
            );
        }
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn labelled_people_same_pairs_closer_than_different_pairs() {
    let mut rec = common::recognizer("dlib_fp32", 40.0);
    let threshold = facegate::identity::threshold::DEFAULT_THRESHOLD;
    let root = common::data("faces/labeled");
    let mut people: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    people.sort();
    let mut items = Vec::new();
    for (pid, dir) in people.iter().enumerate() {
        for img in common::images_in(dir) {
            let frame = load_image(&img).unwrap();
            let faces = rec.detect(&frame).unwrap();
            let i = largest(&faces).unwrap_or_else(|| panic!("{}: no face", img.display()));
            items.push((pid, img.clone(), rec.embed_face(&frame, &faces[i]).unwrap()));
        }
    }
    assert_eq!(items.len(), 21);
    let (mut worst_same, mut best_diff) = (0.0f32, f32::MAX);
    for i in 0..items.len() {
        for j in i + 1..items.len() {
            let d = distance(&items[i].2 .0, &items[j].2 .0);
            if items[i].0 == items[j].0 {
                worst_same = worst_same.max(d);
            } else {
                best_diff = best_diff.min(d);
            }
        }
    }
    assert!(
        worst_same < threshold,
        "a same-person pair is at {worst_same}"
    );
    assert!(
        best_diff >= threshold,
        "a different-person pair is at {best_diff}"
    );
}

#[derive(serde::Deserialize)]
struct RefFace {
    bbox: [f32; 4],
    landmarks: [[f32; 2]; 5],
    embedding: Vec<f32>,
}
#[derive(serde::Deserialize)]
struct RefImage {
    image: String,
    faces: Vec<RefFace>,
}
#[derive(serde::Deserialize)]
struct RefFile {
    images: Vec<RefImage>,
}

#[test]
fn matches_the_python_onnxruntime_reference() {
    let r: RefFile = serde_json::from_str(include_str!("reference/pipeline.json")).unwrap();
    let mut rec = common::recognizer("dlib_fp32", 40.0);
    let mut faces_checked = 0;
    for img in r.images {
        let frame = load_image(common::data(&img.image)).unwrap();
        let got = rec.analyze(&frame).unwrap();
        assert_eq!(got.len(), img.faces.len(), "{}", img.image);
        for (g, w) in got.iter().zip(&img.faces) {
            // PNG inputs only: JPEG decoders differ by a grey level here and there, which
            // moves boxes by ~5e-3 px; from identical pixels the outputs agree to 1e-3 px.
            for k in 0..4 {
                let d = (g.face.bbox[k] - w.bbox[k]).abs();
                assert!(
                    d <= 1e-3,
                    "{}: box {:?} vs {:?}",
                    img.image,
                    g.face.bbox,
                    w.bbox
                );
            }
            for k in 0..5 {
                for c in 0..2 {
                    let d = (g.face.landmarks[k][c] - w.landmarks[k][c]).abs();
                    assert!(
                        d <= 1e-3,
                        "{}: landmark {k} off by {d} of the face size",
                        img.image
                    );
                }
            }
            // Aligning on the reference's own landmarks gives the same chip, so the tract
            // embedding must match onnxruntime's to 1e-4.
            let lm = w.landmarks;
            let face = facegate::recognition::detect::Face {
                landmarks: lm,
                ..g.face.clone()
            };
            let e = rec.embed_face(&frame, &face).unwrap();
            let d =
                e.0.iter()
                    .zip(&w.embedding)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
            assert!(d <= 1e-4, "{}: embedding off by {d}", img.image);
            // End to end (own landmarks), the difference is far below any decision.
            let d = distance(&g.embedding.0, &w.embedding);
            assert!(
                d <= 0.01,
                "{}: end-to-end embedding distance {d}",
                img.image
            );
            faces_checked += 1;
        }
    }
    assert!(faces_checked >= 5);
}

#[test]
fn bad_inputs_give_clear_errors_or_no_face() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = common::recognizer("dlib_fp32", 40.0);
    let real = std::fs::read(common::data("faces/labeled/obama/obama.jpg")).unwrap();

    let corrupt = dir.path().join("corrupt.jpg");
    let mut bytes = real.clone();
    bytes.truncate(600);
    std::fs::write(&corrupt, &bytes).unwrap();
    let e = load_image(&corrupt).unwrap_err();
    assert!(
        matches!(e, Error::Image { .. }) && e.to_string().contains("corrupt.jpg"),
        "{e}"
    );

    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let e = load_image(&empty).unwrap_err();
    assert!(
        e.to_string().contains("empty.png") && e.to_string().contains("empty"),
        "{e}"
    );

    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "this is a shopping list, not a photo\n").unwrap();
    let e = load_image(&text).unwrap_err();
    assert!(
        e.to_string().contains("notes.jpg") && e.to_string().contains("unsupported format"),
        "{e}"
    );

    let missing = dir.path().join("missing.jpg");
    assert!(matches!(
        load_image(&missing).unwrap_err(),
        Error::Io { .. }
    ));

    let tiny = dir.path().join("tiny.png");
    image::RgbImage::new(1, 1).save(&tiny).unwrap();
    assert!(rec.analyze(&load_image(&tiny).unwrap()).unwrap().is_empty());

    let huge = dir.path().join("huge.png");
    image::GrayImage::new(10_000, 10_000).save(&huge).unwrap();
    let e = load_image(&huge).unwrap_err();
    assert!(
        e.to_string().contains("huge.png") && e.to_string().contains("limit"),
        "{e}"
    );

    // A chip of the wrong size is refused, not run.
    let e = rec.embed_chip(&image::RgbImage::new(10, 10)).unwrap_err();
    assert!(e.to_string().contains("150x150"), "{e}");
}

#[test]
fn lfw_view1_accuracy_with_threshold_from_devtrain() {
    let lfw = common::data("lfw");
    let train = parse_pairs(&lfw.join("pairsDevTrain.txt")).unwrap();
    let test = parse_pairs(&lfw.join("pairsDevTest.txt")).unwrap();
    assert_eq!((train.len(), test.len()), (2200, 1000));
    let mut paths: Vec<PathBuf> = train
        .iter()
        .chain(&test)
        .flat_map(|p| [p.a.clone(), p.b.clone()])
        .collect();
    paths.sort();
    paths.dedup();
    let full: Vec<PathBuf> = paths.iter().map(|p| lfw.join("images").join(p)).collect();
    let store = common::store();
    let emb = embed_all(&EmbedRun::new(&store, "dlib_fp32", 40.0), &full).unwrap();
    let dist = |pairs: &[facegate::eval::Pair]| -> Vec<(f32, bool)> {
        pairs
            .iter()
            .map(|p| {
                let a = &emb[&lfw.join("images").join(&p.a)].0;
                let b = &emb[&lfw.join("images").join(&p.b)].0;
                (distance(&a.0, &b.0), p.same)
            })
            .collect()
    };
    let t = best_threshold(&dist(&train));
    let acc = accuracy(&dist(&test), t);
    eprintln!("LFW View 1: threshold {t:.4} from DevTrain, DevTest accuracy {acc:.4}");
    assert!(acc >= 0.98, "DevTest accuracy {acc} at threshold {t}");
    assert!((0.45..0.75).contains(&t), "threshold {t}");
}

#[test]
fn the_pyramid_on_several_threads_finds_exactly_what_one_thread_finds() {
    use facegate::recognition::detect::{Detector, Mtcnn, MtcnnConfig};
    let store = common::store();
    let det = |threads| {
        Mtcnn::new(
            &store,
            MtcnnConfig {
                min_face: 20.0,
                threads,
                ..Default::default()
            },
        )
        .unwrap()
    };
    // 0 (the rayon pool) takes the same path as 2 with another pool.
    let (mut one, mut two) = (det(1), det(2));
    let mut faces = 0;
    for p in common::images_in(&common::data("faces/groups")) {
        let frame = load_image(&p).unwrap();
        let want = one.detect(&frame).unwrap();
        faces += want.len();
        let got = two.detect(&frame).unwrap();
        assert_eq!(got.len(), want.len(), "{}", p.display());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (g.bbox, g.score, g.landmarks),
                (w.bbox, w.score, w.landmarks)
            );
        }
    }
    assert!(faces >= 10, "only {faces} faces in the group photos");
}

#[test]
fn the_networks_on_several_threads_give_exactly_what_one_thread_gives() {
    use facegate::recognition::models::MatmulThreads;
    let mut rec = common::recognizer("dlib_fp32", 40.0);
    let photo = load_image(&common::images_in(&common::data("faces/groups"))[0]).unwrap();
    let (one, two) = (
        MatmulThreads::new(1).unwrap(),
        MatmulThreads::new(2).unwrap(),
    );
    assert_eq!((one.threads(), two.threads()), (1, 2));
    let one = one.scope(|| rec.analyze(&photo).unwrap());
    let two = two.scope(|| rec.analyze(&photo).unwrap());
    assert!(one.len() >= 2, "{} faces", one.len());
    assert_eq!(one.len(), two.len());
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(a.face, b.face);
        assert_eq!(a.embedding.0, b.embedding.0);
    }
}
