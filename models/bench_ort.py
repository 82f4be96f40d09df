#!/usr/bin/env python3
"""The onnxruntime reference for `facegate bench`: the same models, one thread, same frame.

Times MTCNN's networks over the same pyramid a 640x480 frame gets (P-Net at every scale plus
R-Net and O-Net once per candidate, with the candidate counts `facegate bench` reports) and
the embedder (fp32, int8) on a 150x150 chip. Network time only: the Rust numbers include
resampling and post-processing, so they are an upper bound on tract's share.

With `--json` it prints the rows `facegate bench --json` prints, for the stages both have:
`{"stage": S, "threads": T, "median_ms": m, "p95_ms": p, "runs": r}` for `detect_40`,
`detect_80` (network time over the pyramid and the candidates), `track` (one R-Net and one
O-Net run: a tracked frame with one face), `embed_fp32`, `embed_int8`,
and `embed_facenet`, `embed_facenet_int8` when fetched, each at 1 thread and at every core.

Usage: bench_ort.py MODEL_DIR [--min-face 40] [--runs 50] [--rnet N] [--onet N] [--json]
"""
import argparse
import json
import math
import os
import time

import numpy as np
import onnxruntime as ort


def timed(f, runs):
    f()
    v = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        v.append((time.perf_counter() - t) * 1e3)
    v.sort()
    return v[len(v) // 2], v[round((len(v) - 1) * 0.95)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models")
    ap.add_argument("--min-face", type=float, default=40)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--rnet", type=int, default=10, help="R-Net candidates per frame")
    ap.add_argument("--onet", type=int, default=2, help="O-Net candidates per frame")
    ap.add_argument("--json", action="store_true", help="rows as facegate bench --json")
    a = ap.parse_args()
    if a.json:
        return rows_json(a)
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    s = lambda f: ort.InferenceSession(os.path.join(a.models, f), o, providers=["CPUExecutionProvider"])
    pnet, rnet, onet = s("mtcnn_pnet.onnx"), s("mtcnn_rnet.onnx"), s("mtcnn_onet.onnx")
    rng = np.random.default_rng(0)
    m = 12 / a.min_face
    scales, layer = [], 480 * m
    while layer >= 12:
        scales.append(m * 0.709 ** len(scales))
        layer *= 0.709
    inputs = [rng.uniform(-1, 1, (1, math.ceil(640 * sc), math.ceil(480 * sc), 3)).astype(np.float32) for sc in scales]
    r24 = rng.uniform(-1, 1, (1, 24, 24, 3)).astype(np.float32)
    o48 = rng.uniform(-1, 1, (1, 48, 48, 3)).astype(np.float32)

    def mtcnn():
        for x in inputs:
            pnet.run(None, {"input_1": x})
        for _ in range(a.rnet):
            rnet.run(None, {"input_2": r24})
        for _ in range(a.onet):
            onet.run(None, {"input_3": o48})

    chip = rng.uniform(0, 255, (1, 3, 150, 150)).astype(np.float32)
    rows = [(f"MTCNN nets ({len(scales)} scales, {a.rnet} R-Net, {a.onet} O-Net)", timed(mtcnn, a.runs))]
    for name in ["dlib_resnet_v1_fp32.onnx", "dlib_resnet_v1_int8.onnx"]:
        e = s(name)
        rows.append((f"embed {name}", timed(lambda: e.run(None, {"input": chip}), a.runs)))
    print(f"{'onnxruntime ' + ort.__version__ + ', one thread':<52} {'median ms':>10} {'p95 ms':>10}")
    for n, (med, p95) in rows:
        print(f"{n:<52} {med:>10.2f} {p95:>10.2f}")


def session(models, f, threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(os.path.join(models, f), o, providers=["CPUExecutionProvider"])


def rows_json(a):
    rng = np.random.default_rng(0)
    out = []
    cores = os.cpu_count() or 1
    for threads in sorted({1, cores}):
        s = lambda f: session(a.models, f, threads)
        pnet, rnet, onet = s("mtcnn_pnet.onnx"), s("mtcnn_rnet.onnx"), s("mtcnn_onet.onnx")
        for min_face in (40, 80):
            m = 12 / min_face
            scales, layer = [], 480 * m
            while layer >= 12:
                scales.append(m * 0.709 ** len(scales))
                layer *= 0.709
            inputs = [rng.uniform(-1, 1, (1, math.ceil(640 * sc), math.ceil(480 * sc), 3)).astype(np.float32)
                      for sc in scales]
            r24 = rng.uniform(-1, 1, (1, 24, 24, 3)).astype(np.float32)
            o48 = rng.uniform(-1, 1, (1, 48, 48, 3)).astype(np.float32)

            def mtcnn():
                for x in inputs:
                    pnet.run(None, {"input_1": x})
                for _ in range(a.rnet):
                    rnet.run(None, {"input_2": r24})
                for _ in range(a.onet):
                    onet.run(None, {"input_3": o48})

            med, p95 = timed(mtcnn, a.runs)
            out.append({"stage": f"detect_{min_face}", "threads": threads, "median_ms": med,
                        "p95_ms": p95, "runs": a.runs})
        # A tracked frame: R-Net and O-Net once each on the face's last box.
        r24 = rng.uniform(-1, 1, (1, 24, 24, 3)).astype(np.float32)
        o48 = rng.uniform(-1, 1, (1, 48, 48, 3)).astype(np.float32)
        med, p95 = timed(lambda: (rnet.run(None, {"input_2": r24}), onet.run(None, {"input_3": o48})), a.runs)
        out.append({"stage": "track", "threads": threads, "median_ms": med, "p95_ms": p95, "runs": a.runs})
        for stage, f, side, name in [("embed_fp32", "dlib_resnet_v1_fp32.onnx", 150, "input"),
                                     ("embed_int8", "dlib_resnet_v1_int8.onnx", 150, "input"),
                                     ("embed_facenet", "facenet_20180408_fp32.onnx", 160, "input:0"),
                                     ("embed_facenet_int8", "facenet_20180408_int8.onnx", 160, "input:0")]:
            if not os.path.exists(os.path.join(a.models, f)):
                continue
            e = s(f)
            chip = rng.uniform(0, 255, (1, 3, side, side)).astype(np.float32)
            med, p95 = timed(lambda: e.run(None, {name: chip}), a.runs)
            out.append({"stage": stage, "threads": threads, "median_ms": med, "p95_ms": p95,
                        "runs": a.runs})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
