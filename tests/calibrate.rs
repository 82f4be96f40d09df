//! Calibration on real photos: a threshold from labelled folders, and honest refusals.

mod common;

use facegate::eval::{calibrate, folder_pairs};

#[test]
fn calibrate_on_clusters_separates_people_and_refuses_unsupported_targets() {
    let (genuine, impostor) = folder_pairs(
        &common::store(),
        "dlib_fp32",
        40.0,
        &common::data("faces/clusters"),
    )
    .unwrap();
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
