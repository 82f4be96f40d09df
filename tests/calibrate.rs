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
}
