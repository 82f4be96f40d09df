//! A head trained for a site on real photos: it pulls each person's faces together, keeps
//! people apart, is used the same way by `verify`, `identify` and the kiosk, and a damaged or
//! foreign head file is refused.

mod common;

use common::{facegate, kiosk_config, obama_gallery};
use facegate::eval::EmbedRun;
use facegate::identity::gallery::Gallery;
use facegate::identity::space::CompareSpace;
use facegate::kiosk::decide::Decision;
use facegate::kiosk::door::SimulatedRelay;
use facegate::kiosk::runtime::Kiosk;
use facegate::learn::data::{from_images, split_people};
use facegate::learn::train::{train, TrainOptions};
use facegate::learn::triplet::sq;
use facegate::recognition::frame::load_image;
use facegate::recognition::head::LinearHead;
use std::path::{Path, PathBuf};

/// A head trained on `faces/clusters` (5 people x 11 faces: 3 train, 2 validate), and the
/// labelled embeddings it came from.
fn site_head(dir: &Path) -> (PathBuf, LinearHead, Vec<(usize, Vec<f32>)>) {
    let store = common::store();
    let run = EmbedRun {
        cache: Some(dir.join("cache")),
        ..EmbedRun::new(&store, "dlib_fp32", 40.0)
    };
    let (items, names) = from_images(&run, &common::data("faces/clusters")).unwrap();
    assert_eq!((items.len(), names.len()), (55, 5));
    let (tr, val) = split_people(&items).unwrap();
    let opts = TrainOptions {
        people: 3,
        per_person: 6,
        steps: 300,
        ..Default::default()
    };
    let model = store.model_id("dlib_fp32").unwrap();
    let (head, curve, _) = train(&model, &tr, &val, opts, &|_, _| {});
    let (again, _, _) = train(&model, &tr, &val, opts, &|_, _| {});
    assert_eq!(head, again, "same seed, same data: same head");
    assert!(!curve.is_empty());
    let path = dir.join("site.fgh");
    head.save(&path).unwrap();
    (path, head, items)
}

fn mean_distances(items: &[(usize, Vec<f32>)], head: Option<&LinearHead>) -> (f32, f32) {
    let y: Vec<Vec<f32>> = items
        .iter()
        .map(|i| head.map_or(i.1.clone(), |h| h.embed(&i.1)))
        .collect();
    let (mut same, mut other) = ((0.0, 0), (0.0, 0));
    for i in 0..y.len() {
        for j in i + 1..y.len() {
            let d = sq(&y[i], &y[j]).sqrt();
            let acc = if items[i].0 == items[j].0 {
                &mut same
            } else {
                &mut other
            };
            acc.0 += d;
            acc.1 += 1;
        }
    }
    (same.0 / same.1 as f32, other.0 / other.1 as f32)
}

/// faces/clusters' five people are apart already (validation 100% before any step), so early
/// stopping keeps the identity map: what is tested here is the head as the product uses it.
#[test]
fn a_site_head_keeps_the_networks_distance_units_and_its_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (path, head, items) = site_head(dir.path());
    let (same0, other0) = mean_distances(&items, None);
    let (same1, other1) = mean_distances(&items, Some(&head));
    eprintln!("same person {same0:.4} -> {same1:.4}, different people {other0:.4} -> {other1:.4}");
    // The head keeps the network's distance units (its scale is the median raw norm).
    assert!(
        (0.9..1.1).contains(&(other1 / other0)),
        "{other0} -> {other1}"
    );
    // Relative to the gap between people, each person's faces moved closer.
    assert!(
        same1 / other1 < same0 / other0,
        "{same0}/{other0} -> {same1}/{other1}"
    );
    let loaded = LinearHead::load(&path, &head.model, 128).unwrap();
    assert_eq!(loaded, head);
}

#[test]
fn verify_and_identify_compare_through_the_head_and_refuse_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let (path, head, _) = site_head(dir.path());
    let obama = common::data("faces/labeled/obama/obama.jpg");
    let obama2 = common::data("faces/labeled/obama/obama2.jpg");
    let biden = common::data("faces/labeled/biden/biden.jpg");
    let p = path.to_str().unwrap();
    let out = facegate(&[
        "--head",
        p,
        "--json",
        "verify",
        obama.to_str().unwrap(),
        obama2.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["head"], head.id());
    let d = v["distance"].as_f64().unwrap();
    assert!(d > 0.05 && d < 0.5, "same person through the head: {d}");
    let out = facegate(&[
        "--head",
        p,
        "verify",
        obama.to_str().unwrap(),
        biden.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "two people through the head");

    // identify: the same gallery, mapped through the head in memory only.
    let g = obama_gallery(dir.path());
    let before = std::fs::read(&g).unwrap();
    let out = facegate(&[
        "--head",
        p,
        "--json",
        "identify",
        "--gallery",
        g.to_str().unwrap(),
        obama2.to_str().unwrap(),
        biden.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["person"], "Obama", "{text}");
    assert!(lines[1]["person"].is_null(), "{text}");
    assert_eq!(lines[0]["head"], head.id());
    assert_eq!(
        std::fs::read(&g).unwrap(),
        before,
        "the gallery keeps the network's templates"
    );

    // A damaged head and one made for another network: exit 2, the file and the cause named.
    let bad = dir.path().join("bad.fgh");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let k = text.len() - 10;
    let c = if &text[k..k + 1] == "A" { "B" } else { "A" };
    text.replace_range(k..k + 1, c);
    std::fs::write(&bad, text).unwrap();
    let other = dir.path().join("other.fgh");
    LinearHead::identity("dlib_int8:0000", 128)
        .save(&other)
        .unwrap();
    for (file, want) in [(&bad, "damaged"), (&other, "made for dlib_int8:0000")] {
        let out = facegate(&[
            "--head",
            file.to_str().unwrap(),
            "verify",
            obama.to_str().unwrap(),
            obama2.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(want) && err.contains(file.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
    }
}

#[test]
fn the_kiosk_with_a_head_grants_the_enrolled_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = site_head(dir.path());
    let g = obama_gallery(dir.path());
    let mut cfg = kiosk_config(dir.path(), &g, dir.path());
    cfg.models.head = Some(path);
    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(&cfg, Box::new(relay)).unwrap();
    let feed = |k: &mut Kiosk, dir: &str, files: std::ops::Range<usize>, t0: f64| {
        let photos = common::images_in(&common::data(dir));
        let mut grants = Vec::new();
        for (i, p) in photos[files].iter().enumerate() {
            if let Ok(Decision::Grant { person, .. }) =
                k.process(&load_image(p).unwrap(), t0 + i as f64 * 0.2)
            {
                grants.push(person);
            }
        }
        grants
    };
    assert_eq!(feed(&mut k, "faces/labeled/obama", 2..6, 0.0), ["Obama"]);
    let unknown = k.summary.unknown;
    for (n, who) in ["biden", "kit_harington", "paul_rudd"].iter().enumerate() {
        let photos = common::images_in(&common::data(&format!("faces/labeled/{who}")));
        assert_eq!(
            feed(
                &mut k,
                &format!("faces/labeled/{who}"),
                0..photos.len(),
                100.0 * (n + 1) as f64
            ),
            Vec::<String>::new(),
            "{who}"
        );
    }
    assert!(
        k.summary.unknown > unknown,
        "strangers were seen and refused"
    );
    // A head cannot be saved into a gallery by mistake.
    let mut mapped = CompareSpace::with_head(
        LinearHead::load(
            cfg.models.head.as_ref().unwrap(),
            &k.gallery().gallery().model,
            128,
        )
        .unwrap(),
    )
    .gallery(&Gallery::load_any(&g).unwrap());
    assert!(mapped
        .save(&dir.path().join("x.toml"))
        .unwrap_err()
        .to_string()
        .contains("mapped by a head"));
    // A door that trusts only signed galleries trusts only a signed head: a head decides
    // who matches whom (one that maps every face to one point would open for anyone).
    use facegate::identity::signing::{keygen, sign_file, SigningKey};
    let (secret, public) = keygen(dir.path()).unwrap();
    let key = SigningKey::load(&secret).unwrap();
    Gallery::load_any(&g)
        .unwrap()
        .resign(&g, &key, None)
        .unwrap();
    cfg.gallery.public_key = Some(public);
    let e = match Kiosk::new(&cfg, Box::new(SimulatedRelay::new())) {
        Ok(_) => panic!("a kiosk started with an unsigned head"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("no signature") && e.contains("site.fgh"), "{e}");
    sign_file(&key, cfg.models.head.as_ref().unwrap()).unwrap();
    let mut k = Kiosk::new(&cfg, Box::new(SimulatedRelay::new())).unwrap();
    assert_eq!(feed(&mut k, "faces/labeled/obama", 2..6, 0.0), ["Obama"]);
}
