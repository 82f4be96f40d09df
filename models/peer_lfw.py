#!/usr/bin/env python3
"""LFW View 2 through facegate and two peers, on the same machine in the same run.

Systems, each over every image of pairs.txt (7,701), all cores busy (one process per core,
one thread each; facegate uses one worker per core the same way):

  facegate          `facegate eval lfw --view full --json --no-cache` (Rust, tract)
  onnxruntime       the same ONNX models and the same pipeline in Python: MTCNN (numpy port
                    of src/detect.rs in reference.py), Umeyama alignment, dlib ResNet
  face_recognition  ageitgey/face_recognition 1.3.0 over dlib-bin: its own HOG detector,
                    5-point alignment and dlib ResNet (the model facegate converted)

Every system: the face nearest the image centre (LFW's labelled face); when none is found,
a documented fallback (facegate and onnxruntime: a second pass at min face 20, then a centred
template; face_recognition: upsampling 2, then the centred half of the image), counted.
Protocol as `facegate eval`: 10 folds, threshold chosen on the other 9 (accuracy-maximising
midpoint, accept when d < t), TAR at FAR 1e-3 over all 6,000 pairs, EER.

Usage: peer_lfw.py --facegate BIN [--models DIR] [--data DIR] [--procs N] [--limit N]
(--limit N: only the first N pairs of each fold, for a quick try; not comparable numbers)
Run by models/peer-bench, which sets up the Python packages.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def parse_pairs(path, limit=None):
    with open(path) as fh:
        lines = [l.split() for l in fh if l.strip()]
    head = lines[0]
    folds, per = (int(head[0]), int(head[1])) if len(head) == 2 else (1, int(head[0]))
    pairs, rows = [], lines[1:]
    for f in range(folds):
        block = rows[f * 2 * per:(f + 1) * 2 * per]
        for k, t in enumerate(block):
            if limit is not None and k % per >= limit:
                continue
            if len(t) == 3:
                a = f"{t[0]}/{t[0]}_{int(t[1]):04d}.jpg"
                b = f"{t[0]}/{t[0]}_{int(t[2]):04d}.jpg"
                pairs.append((a, b, True, f))
            else:
                a = f"{t[0]}/{t[0]}_{int(t[1]):04d}.jpg"
                b = f"{t[2]}/{t[2]}_{int(t[3]):04d}.jpg"
                pairs.append((a, b, False, f))
    return pairs


# ---------------------------------------------------------------- metrics (as src/eval.rs)

def best_threshold(d, same):
    order = np.argsort(d, kind="stable")
    d, same = d[order], same[order]
    correct = int((~same).sum())
    best, best_t = correct, d[0] - 1e-3
    for i in range(len(d)):
        correct += 1 if same[i] else -1
        t = (d[i] + d[i + 1]) / 2 if i + 1 < len(d) else d[i] + 1e-3
        if correct > best and (i + 1 == len(d) or d[i + 1] > d[i]):
            best, best_t = correct, t
    return best_t


def metrics(d, same, fold):
    accs = []
    for f in sorted(set(fold.tolist())):
        tr, te = fold != f, fold == f
        t = best_threshold(d[tr], same[tr])
        accs.append(float(((d[te] < t) == same[te]).mean()))
    gen, imp = np.sort(d[same]), np.sort(d[~same])
    k = int(math.floor(1e-3 * len(imp)))
    t3 = imp[k] if k < len(imp) else imp[-1] + 1e-3
    tar3 = float((gen < t3).mean())
    best = (math.inf, 1.0)
    for t in np.sort(np.concatenate([gen, imp])):
        far, frr = (imp <= t).mean(), (gen > t).mean()
        if abs(far - frr) < best[0]:
            best = (abs(far - frr), (far + frr) / 2)
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "tar_far_1e3": tar3,
            "eer": float(best[1])}


# ---------------------------------------------------------------- onnxruntime pipeline

_ORT = None


def _ort_init(models):
    global _ORT
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    mk = lambda f: ort.InferenceSession(os.path.join(models, f), opts, providers=["CPUExecutionProvider"])
    _ORT = ((mk("mtcnn_pnet.onnx"), mk("mtcnn_rnet.onnx"), mk("mtcnn_onet.onnx")),
            mk("dlib_resnet_v1_fp32.onnx"))


def _central(boxes, w, h):
    """Index of the box (x0, y0, x1, y1) whose centre is nearest the image centre."""
    if not boxes:
        return None
    d = [((b[0] + b[2]) / 2 - w / 2) ** 2 + ((b[1] + b[3]) / 2 - h / 2) ** 2 for b in boxes]
    return int(np.argmin(d))


def _ort_embed(path):
    import reference as ref
    from PIL import Image, ImageOps
    sess, emb = _ORT
    img = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"), np.float64)
    h, w = img.shape[:2]
    found = "detected"
    faces = ref.detect(sess, img, 40.0)
    if not faces:
        found, faces = "small_face", ref.detect(sess, img, 20.0)
    i = _central([f[0] for f in faces], w, h)
    if i is None:
        found = "fallback"
        side = min(w, h) * 0.45
        ox, oy = (w - side) / 2, (h - side) / 2
        pts = [[ox + p[0] / 150 * side, oy + p[1] / 150 * side] for p in ref.TEMPLATE]
    else:
        pts = faces[i][2]
    chip = ref.align(img, pts).astype(np.float32).transpose(2, 0, 1)[None]
    return emb.run(None, {"input": chip})[0][0], found


# ---------------------------------------------------------------- face_recognition pipeline

def _fr_embed(path):
    import face_recognition as fr
    img = fr.load_image_file(path)
    h, w = img.shape[:2]
    found = "detected"
    locs = fr.face_locations(img, number_of_times_to_upsample=1, model="hog")
    if not locs:
        found, locs = "small_face", fr.face_locations(img, number_of_times_to_upsample=2, model="hog")
    # (top, right, bottom, left) -> (x0, y0, x1, y1)
    i = _central([(l[3], l[0], l[1], l[2]) for l in locs], w, h)
    if i is None:
        found = "fallback"
        side = min(w, h) // 2
        top, left = (h - side) // 2, (w - side) // 2
        loc = (top, left + side, top + side, left)
    else:
        loc = locs[i]
    return np.asarray(fr.face_encodings(img, known_face_locations=[loc], num_jitters=1)[0]), found


# ---------------------------------------------------------------- running

def run_python(name, fn, init, initargs, paths, procs):
    start = time.time()
    with mp.get_context("fork").Pool(procs, initializer=init, initargs=initargs) as pool:
        out = []
        for k, r in enumerate(pool.imap(fn, paths, chunksize=8)):
            out.append(r)
            if (k + 1) % 500 == 0:
                print(f"  {name}: {k + 1}/{len(paths)}", file=sys.stderr, flush=True)
    secs = time.time() - start
    emb = {p: e for p, (e, _) in zip(paths, out)}
    counts = {k: sum(1 for _, f in out if f == k) for k in ("detected", "small_face", "fallback")}
    return emb, secs, counts


def evaluate(emb, pairs, images):
    d = np.array([np.linalg.norm(emb[os.path.join(images, a)] - emb[os.path.join(images, b)])
                  for a, b, _, _ in pairs])
    same = np.array([s for _, _, s, _ in pairs])
    fold = np.array([f for _, _, _, f in pairs])
    return metrics(d, same, fold)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facegate", required=True)
    ap.add_argument("--models", default=os.environ.get("FACEGATE_MODELS", os.path.expanduser("~/.cache/facegate/models")))
    ap.add_argument("--data", default=os.environ.get("FACEGATE_DATA", os.path.join(HERE, "..", "..", "shared", "data")))
    ap.add_argument("--procs", type=int, default=os.cpu_count())
    ap.add_argument("--limit", type=int)
    ap.add_argument("--skip", action="append", default=[], help="facegate, onnxruntime or face_recognition")
    args = ap.parse_args()
    lfw = os.path.join(args.data, "lfw")
    pairs = parse_pairs(os.path.join(lfw, "pairs.txt"), args.limit)
    images = os.path.join(lfw, "images")
    paths = sorted({os.path.join(images, p) for a, b, _, _ in pairs for p in (a, b)})
    print(f"LFW View 2: {len(pairs)} pairs, {len(paths)} images, {args.procs} processes", file=sys.stderr)
    rows = []
    if "facegate" not in args.skip and args.limit is None:
        start = time.time()
        out = subprocess.run([args.facegate, "--models", args.models, "eval", "lfw", "--view", "full",
                              "--data", args.data, "--json", "--no-cache"],
                             check=True, capture_output=True, text=True)
        wall = time.time() - start
        r = json.loads(out.stdout)
        rows.append(("facegate (Rust, tract), MTCNN + dlib ResNet fp32",
                     {"mean": r["folds"]["mean"], "std": r["folds"]["std"], "tar_far_1e3": r["tar_at_far_1e3"][0],
                      "eer": r["eer"]}, r["images"] / r["seconds"], wall,
                     {"detected": r["detected"], "small_face": r["small_face"], "fallback": r["fallback"]}))
    if "onnxruntime" not in args.skip:
        emb, secs, counts = run_python("onnxruntime", _ort_embed, _ort_init, (args.models,), paths, args.procs)
        rows.append(("onnxruntime 1.20.1 (Python), same models and pipeline", evaluate(emb, pairs, images),
                     len(paths) / secs, secs, counts))
    if "face_recognition" not in args.skip:
        emb, secs, counts = run_python("face_recognition", _fr_embed, None, (), paths, args.procs)
        rows.append(("face_recognition 1.3.0 (dlib 20 HOG + 5-point + ResNet)", evaluate(emb, pairs, images),
                     len(paths) / secs, secs, counts))
    print(f"\nLFW View 2 ({len(pairs)} pairs, {len(paths)} images), {args.procs} cores, same machine, same run\n")
    print("| system | accuracy (10 folds) | TAR@FAR=1e-3 | EER | images/s | detected / 2nd pass / fallback |")
    print("|---|---|---|---|---|---|")
    for name, m, ips, secs, c in rows:
        print(f"| {name} | {m['mean'] * 100:.2f} ± {m['std'] * 100:.2f}% | {m['tar_far_1e3'] * 100:.2f}% | "
              f"{m['eer'] * 100:.2f}% | {ips:.1f} | {c['detected']} / {c['small_face']} / {c['fallback']} |")


if __name__ == "__main__":
    main()
