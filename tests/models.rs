//! Every model loads through tract and gives the right numbers on real face chips.

mod common;

use facegate::recognition::embed::{distance, Embedder, Engine, NetEmbedder};
use facegate::recognition::frame::load_image;
use facegate::recognition::models::ModelStore;
use facegate::Error;

#[derive(serde::Deserialize)]
struct DlibRef {
    image: String,
    dlib: Vec<f32>,
}

fn centre_chip(path: &std::path::Path) -> facegate::recognition::frame::Frame {
    let img = load_image(path).unwrap();
    let (x0, y0) = ((img.width() - 150) / 2, (img.height() - 150) / 2);
    image::imageops::crop_imm(&img, x0, y0, 150, 150).to_image()
}

fn references() -> Vec<DlibRef> {
    serde_json::from_str(include_str!("reference/dlib_descriptors.json")).unwrap()
}

#[test]
fn fp32_embedder_matches_dlib_itself() {
    let store = common::store();
    let e = NetEmbedder::new(&store, "dlib_fp32").unwrap();
    let refs = references();
    assert_eq!(refs.len(), 5);
    for r in refs {
        let got = e.embed(&centre_chip(&common::data(&r.image))).unwrap();
        assert_eq!(got.dim(), 128);
        let diff = got
            .0
            .iter()
            .zip(&r.dlib)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff <= 1e-4, "{}: max |facegate - dlib| = {diff}", r.image);
    }
}

/// The manifest runs dlib's ResNet on facegate's kernels; tract, which sums in another
/// order, gives the same descriptors of real faces to f32 rounding.
#[test]
fn the_dlib_network_on_facegate_kernels_matches_tract() {
    let store = common::store();
    let own = NetEmbedder::new(&store, "dlib_fp32").unwrap();
    assert_eq!(own.engine(), Engine::Facegate);
    let tract = NetEmbedder::with_engine(&store, "dlib_fp32", Engine::Tract).unwrap();
    let mut worst = 0.0f32;
    for r in references() {
        let chip = centre_chip(&common::data(&r.image));
        let (a, b) = (own.embed(&chip).unwrap(), tract.embed(&chip).unwrap());
        let d =
            a.0.iter()
                .zip(&b.0)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
        assert!(d <= 1e-5, "{}: max |facegate - tract| = {d}", r.image);
        worst = worst.max(d);
    }
    eprintln!("dlib ResNet, facegate kernels against tract: max |difference| {worst:e}");
    // The int8 graph (quantised operators) stays on tract, and facegate's kernels refuse it.
    let q = NetEmbedder::new(&store, "dlib_int8").unwrap();
    assert_eq!(q.engine(), Engine::Tract);
    let e = NetEmbedder::with_engine(&store, "dlib_int8", Engine::Facegate)
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("dlib_resnet_v1_int8.onnx") && msg.contains("not implemented"),
        "{msg}"
    );
}

#[test]
fn int8_embedder_stays_close_to_fp32() {
    let store = common::store();
    let fp = NetEmbedder::new(&store, "dlib_fp32").unwrap();
    let q = NetEmbedder::new(&store, "dlib_int8").unwrap();
    let mut pairs = Vec::new();
    for r in references() {
        let chip = centre_chip(&common::data(&r.image));
        let (a, b) = (fp.embed(&chip).unwrap(), q.embed(&chip).unwrap());
        let d = distance(&a.0, &b.0);
        assert!(d < 0.1, "{}: int8 vs fp32 distance {d}", r.image);
        pairs.push((a, b));
    }
    // Distances between the five different people agree between fp32 and int8.
    for i in 0..pairs.len() {
        for j in i + 1..pairs.len() {
            let d32 = distance(&pairs[i].0 .0, &pairs[j].0 .0);
            let d8 = distance(&pairs[i].1 .0, &pairs[j].1 .0);
            assert!(
                d32 > 0.4 && (d32 - d8).abs() < 0.05,
                "pair {i},{j}: fp32 {d32}, int8 {d8}"
            );
        }
    }
}

#[test]
fn mtcnn_networks_load_with_concrete_shapes() {
    let store = common::store();
    store.load("pnet", &[1, 100, 80, 3]).unwrap();
    store.load("rnet", &[1, 24, 24, 3]).unwrap();
    store.load("onet", &[1, 48, 48, 3]).unwrap();
}

/// facegate's own MTCNN kernels against tract on the same files and real inputs: a P-Net
/// pyramid level of a photo, and R-Net and O-Net crops of faces and of background. They sum
/// in other orders, so they agree to f32 rounding, not bit for bit.
#[test]
fn mtcnn_networks_match_tract_on_real_photos() {
    use facegate::recognition::frame::FloatImage;
    use facegate::recognition::net::{Map, Net};
    let store = common::store();
    let photo =
        FloatImage::from_frame(&load_image(common::data("faces/groups/multiface.jpg")).unwrap());
    let input = |img: &FloatImage| {
        let mut v = Vec::new();
        img.push_x_major(127.5, 0.0078125, &mut v);
        Map::new(img.width, img.height, 3, v).unwrap()
    };
    let (pw, ph) = (photo.width / 4, photo.height / 4);
    let regions = [
        (0, 0, photo.width, photo.height),
        (40, 30, 90, 90),
        (200, 10, 60, 70),
    ];
    let mut cases: Vec<(&str, Map)> = vec![("pnet", input(&photo.resize(pw, ph)))];
    for (x, y, w, h) in regions {
        for (name, size) in [("rnet", 24), ("onet", 48)] {
            cases.push((name, input(&photo.resize_region(x, y, w, h, size, size))));
        }
    }
    let mut worst = 0f32;
    for (name, map) in cases {
        let ours = Net::parse(
            &store.path(name).unwrap(),
            &store.verified_bytes(name).unwrap(),
        )
        .unwrap()
        .run(map.clone())
        .unwrap();
        let plan = store.load(name, &[1, map.w, map.h, 3]).unwrap();
        let tract = facegate::recognition::models::Runner::new(name, &plan)
            .unwrap()
            .run(&[1, map.w, map.h, 3], map.data.clone())
            .unwrap();
        assert_eq!(ours.len(), tract.len(), "{name}");
        for (o, (shape, t)) in ours.iter().zip(&tract) {
            assert_eq!(o.data.len(), t.len(), "{name} {shape:?}");
            assert_eq!(o.w * o.h * o.c, shape.iter().product::<usize>(), "{name}");
            let d = o
                .data
                .iter()
                .zip(t)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(d <= 1e-4, "{name} {shape:?}: off by {d}");
            worst = worst.max(d);
        }
    }
    eprintln!("MTCNN kernels against tract: max |difference| {worst:e}");
}

/// R-Net and O-Net over a batch of real crops (the dense layers once for the whole batch,
/// the convolutions on two threads) give each crop's single-run outputs bit for bit.
#[test]
fn a_batch_gives_every_crop_its_own_outputs() {
    use facegate::recognition::frame::FloatImage;
    use facegate::recognition::net::{Map, Net};
    let store = common::store();
    let photo =
        FloatImage::from_frame(&load_image(common::data("faces/groups/multiface.jpg")).unwrap());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for (name, size) in [("rnet", 24), ("onet", 48)] {
        let net = Net::parse(
            &store.path(name).unwrap(),
            &store.verified_bytes(name).unwrap(),
        )
        .unwrap();
        // 11 crops: more than one kernel call's 8 rows, and a tail.
        let crops: Vec<Map> = (0..11)
            .map(|i| {
                let img = photo.resize_region(20 * i, 7 * i, 50 + 3 * i as usize, 60, size, size);
                let mut v = Vec::new();
                img.push_x_major(127.5, 0.0078125, &mut v);
                Map::new(size, size, 3, v).unwrap()
            })
            .collect();
        let one_by_one: Vec<Vec<Map>> = crops.iter().map(|c| net.run(c.clone()).unwrap()).collect();
        for parallel in [false, true] {
            let batch = pool.install(|| net.run_batch(crops.clone(), parallel).unwrap());
            assert_eq!(batch, one_by_one, "{name}, parallel {parallel}");
        }
        assert!(net.run_batch(Vec::new(), false).unwrap().is_empty());
        // The crops are not all alike: the face probabilities differ.
        let p: Vec<f32> = one_by_one
            .iter()
            .map(|o| o.last().unwrap().data[1])
            .collect();
        assert!(p.iter().any(|&v| (v - p[0]).abs() > 1e-3), "{name}: {p:?}");
    }
}

/// A graph with operators facegate's kernels do not implement (the int8 ResNet) is refused
/// at load, naming the file and the node, never run with wrong numbers.
#[test]
fn a_graph_the_kernels_do_not_implement_is_refused_by_name() {
    use facegate::recognition::net::Net;
    let store = common::store();
    let path = store.path("dlib_int8").unwrap();
    let e = Net::parse(&path, &store.verified_bytes("dlib_int8").unwrap()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Model { .. }), "{msg}");
    assert!(
        msg.contains("dlib_resnet_v1_int8.onnx") && msg.contains("node "),
        "{msg}"
    );
    let e = Net::parse(&path, b"not a protobuf at all").unwrap_err();
    assert!(e.to_string().contains("dlib_resnet_v1_int8.onnx"), "{e}");
}

fn copy_models() -> (tempfile::TempDir, ModelStore) {
    let src = common::store();
    let dir = tempfile::tempdir().unwrap();
    for name in ["pnet", "rnet", "onet", "dlib_fp32", "dlib_int8"] {
        let p = src.path(name).unwrap();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let s = ModelStore::open(dir.path()).unwrap();
    (dir, s)
}

fn assert_model_error(err: Error, file: &str, words: &str) {
    let msg = err.to_string();
    assert!(matches!(err.root(), Error::Model { .. }), "{msg}");
    assert!(msg.contains(file), "{msg}");
    assert!(msg.contains(words), "{msg}");
    assert!(msg.contains("models/fetch"), "{msg}");
}

#[test]
fn missing_truncated_or_altered_model_files_are_refused_by_name() {
    let (dir, store) = copy_models();
    let f = dir.path().join("dlib_resnet_v1_fp32.onnx");

    std::fs::remove_file(&f).unwrap();
    let e = NetEmbedder::new(&store, "dlib_fp32").err().unwrap();
    assert_model_error(e, "dlib_resnet_v1_fp32.onnx", "cannot read");

    let full = std::fs::read(common::store().path("dlib_fp32").unwrap()).unwrap();
    std::fs::write(&f, &full[..full.len() / 2]).unwrap();
    let e = NetEmbedder::new(&store, "dlib_fp32").err().unwrap();
    assert_model_error(e, "dlib_resnet_v1_fp32.onnx", "sha256 mismatch");

    let mut flipped = full.clone();
    let n = flipped.len() - 1000;
    flipped[n] ^= 0x40;
    std::fs::write(&f, &flipped).unwrap();
    let e = store.verify_all().err().unwrap();
    assert_model_error(e, "dlib_resnet_v1_fp32.onnx", "sha256 mismatch");

    let e = facegate::recognition::detect::Mtcnn::new(
        &ModelStore::open(dir.path().join("nowhere")).unwrap(),
        Default::default(),
    )
    .err()
    .unwrap();
    assert_model_error(e, "mtcnn_pnet.onnx", "cannot read");
}

/// `bench --profile`'s rows for the dlib network on a real chip, on both engines (fp32 on
/// facegate's kernels, int8 on tract): every node's time lands in a row, the products name
/// the kernels this CPU runs (printed, so CI's log shows the aarch64 ones), and their
/// multiply-accumulates add up to the network's 270,854,144 (a property of the graph, the
/// same on every CPU and engine).
#[test]
fn the_profile_names_the_kernels_and_counts_the_network_s_products() {
    let store = common::store();
    let chip = centre_chip(&common::data("lfw/images/Zico/Zico_0001.jpg"));
    for name in ["dlib_fp32", "dlib_int8"] {
        let e = NetEmbedder::new(&store, name).unwrap();
        let rows = e.profile(&chip, 1).unwrap();
        for r in rows.iter().filter(|r| !r.kernel.is_empty()) {
            eprintln!(
                "{} {name}: {} {} x{} {:.1} MMAC",
                std::env::consts::ARCH,
                r.op,
                r.kernel,
                r.nodes,
                r.macs as f64 / 1e6
            );
        }
        let products: Vec<_> = rows.iter().filter(|r| r.macs > 0).collect();
        assert!(
            !products.is_empty(),
            "{name}: no matrix product in {rows:?}"
        );
        assert!(products.iter().all(|r| !r.kernel.is_empty()), "{rows:?}");
        assert_eq!(
            rows.iter().map(|r| r.macs).sum::<u64>(),
            270_854_144,
            "{name}"
        );
        // Every product is in one row: 29 convolutions and the final dense layer.
        assert_eq!(
            products.iter().map(|r| r.nodes).sum::<usize>(),
            30,
            "{name}"
        );
    }
}

/// facegate's int8 path (`dlib_q8`): the fp32 network's templates (same model id), each
/// embedding near fp32's, the five people as far apart as fp32 puts them; an unknown node
/// in the ranges is refused by name.
#[test]
fn facegate_int8_path_keeps_the_fp32_networks_templates() {
    use facegate::recognition::net::{InputRange, Net};
    let store = common::store();
    let fp = NetEmbedder::new(&store, "dlib_fp32").unwrap();
    let q = NetEmbedder::new(&store, "dlib_q8").unwrap();
    assert_eq!(q.engine(), Engine::Int8);
    assert_eq!(q.model_id(), fp.model_id());
    let mut pairs = Vec::new();
    let mut worst = 0f32;
    for r in references() {
        let chip = centre_chip(&common::data(&r.image));
        let (a, b) = (fp.embed(&chip).unwrap(), q.embed(&chip).unwrap());
        let d = distance(&a.0, &b.0);
        // Quantization moves an embedding, but not by much, and not to nothing.
        assert!(
            d > 1e-4 && d < 0.06,
            "{}: int8 vs fp32 distance {d}",
            r.image
        );
        worst = worst.max(d);
        pairs.push((a, b));
    }
    for i in 0..pairs.len() {
        for j in i + 1..pairs.len() {
            let d32 = distance(&pairs[i].0 .0, &pairs[j].0 .0);
            let d8 = distance(&pairs[i].1 .0, &pairs[j].1 .0);
            assert!(
                d32 > 0.4 && (d32 - d8).abs() < 0.04,
                "pair {i},{j}: fp32 {d32}, int8 {d8}"
            );
        }
    }
    eprintln!("dlib_q8 vs dlib_fp32: largest distance {worst:.4}");
    let net = Net::parse(
        &store.path("dlib_fp32").unwrap(),
        &store.verified_bytes("dlib_fp32").unwrap(),
    )
    .unwrap();
    let bad = [InputRange {
        node: "conv_999".into(),
        lo: 0.0,
        hi: 1.0,
    }];
    let e = net.quantized(&bad).unwrap_err().to_string();
    assert!(e.contains("conv_999"), "{e}");
}
