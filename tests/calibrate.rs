//! Calibration on real photos: a threshold from labelled folders, and honest refusals.

mod common;

use facegate::eval::{calibrate, folder_pairs, EmbedRun};
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn calibrate_on_clusters_separates_people_and_refuses_unsupported_targets() {
    let store = common::store();
    let cache = tempfile::tempdir().unwrap();
    let first_done = AtomicUsize::new(usize::MAX);
    let note_first = |done: usize, _total: usize| {
        first_done.fetch_min(done, Ordering::Relaxed);
    };
    let run = EmbedRun {
        cache: Some(cache.path().to_path_buf()),
        progress: &note_first,
        ..EmbedRun::new(&store, "dlib_fp32", 40.0)
    };
    let clusters = common::data("faces/clusters");
    let (genuine, impostor) = folder_pairs(&run, &clusters).unwrap();
    assert_eq!(first_done.load(Ordering::Relaxed), 0, "nothing cached yet");
    // Again: every embedding from the cache (progress starts at 55 of 55), same distances.
    first_done.store(usize::MAX, Ordering::Relaxed);
    let again = folder_pairs(&run, &clusters).unwrap();
    assert_eq!(first_done.load(Ordering::Relaxed), 55);
    assert_eq!(again, (genuine.clone(), impostor.clone()));
    // 5 people x 11 photos: 5 x 55 genuine pairs, the rest impostor pairs.
    assert_eq!((genuine.len(), impostor.len()), (275, 1210));
    let c = calibrate(&genuine, &impostor, 1e-2).unwrap();
    assert!(c.false_accepts <= 12, "{c:?}");
    let rejected = genuine.iter().filter(|&&d| d >= c.threshold).count();
    assert!(
        rejected as f64 / genuine.len() as f64 <= 0.05,
        "FRR {rejected}/275 at {}",
        c.threshold
    );
    assert!(c.frr.1 <= c.frr.0 && c.frr.0 <= c.frr.2);
    // 1,210 impostor pairs cannot show a FAR of 1e-3 (3,000 would be needed).
    let e = calibrate(&genuine, &impostor, 1e-3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1210 impostor pairs cannot support"), "{e}");
    assert!(e.contains("16 people with 5 photos each"), "{e}");
}

/// The install guide's calibration table is what `calibrate` asks for: every row's pairs
/// and people are the rule of three's, and a folder of that many people gets a threshold.
#[test]
fn the_guides_calibration_recipe_is_what_calibrate_needs() {
    use facegate::eval::calibrate::{impostor_pairs_needed, people_needed};
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/README.md"),
    )
    .unwrap();
    let rows: Vec<Vec<String>> = guide
        .lines()
        .filter(|l| l.starts_with("| 1e-"))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 3, "the table's rows");
    for r in &rows {
        let far: f64 = r[1].split_whitespace().next().unwrap().parse().unwrap();
        let pairs: usize = r[2].replace(',', "").parse().unwrap();
        let people: usize = r[3].split_whitespace().next().unwrap().parse().unwrap();
        assert_eq!(pairs, impostor_pairs_needed(far), "{r:?}");
        assert_eq!(people, people_needed(far, 5), "{r:?}");
        let have = people * (people - 1) / 2 * 25;
        let grouped = if have >= 1000 {
            format!("{},{:03}", have / 1000, have % 1000)
        } else {
            have.to_string()
        };
        assert!(r[3].contains(&format!("({grouped} pairs)")), "{r:?}");
    }
    // The first row on real photos: 6 people of faces/clusters, 5 photos each, FAR 1e-2.
    let store = common::store();
    let run = EmbedRun::new(&store, "dlib_fp32", 40.0);
    let dir = tempfile::tempdir().unwrap();
    let people: Vec<_> = [
        "faces/clusters/John_Salley",
        "faces/clusters/John_Savage",
        "faces/clusters/John_Schneider",
        "faces/clusters/John_Shimkus",
        "faces/clusters/John_Simm",
        "lfw/images/Colin_Powell",
    ]
    .iter()
    .map(|p| common::data(p))
    .collect();
    for (k, p) in people.iter().enumerate() {
        let to = dir.path().join(format!("p{k}"));
        std::fs::create_dir(&to).unwrap();
        for f in common::images_in(p).iter().take(5) {
            std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    let (genuine, impostor) = folder_pairs(&run, dir.path()).unwrap();
    assert_eq!((genuine.len(), impostor.len()), (60, 375));
    let c = calibrate(&genuine, &impostor, 1e-2).unwrap();
    assert!(c.false_accepts <= 3, "{c:?}");
}
