#!/usr/bin/env python3
"""Reference outputs for the Rust pipeline, computed independently with numpy + onnxruntime.

Implements the same MTCNN pre/post-processing as src/detect.rs (DESIGN.md §2), the Umeyama
alignment of src/align.rs and the embedder, runs the networks in onnxruntime, and writes the
boxes, landmarks and embeddings as JSON (numbers only, never the photo). The Rust test
`tests/reference.rs` compares its own output with this file.

Use PNG images: JPEG decoders (libjpeg here, zune-jpeg in Rust) differ by a grey level here
and there, enough to move boxes by ~5e-3 px.

Usage: reference.py MODEL_DIR OUT.json IMAGE...   (paths stored relative to $FACEGATE_DATA)
Made with: reference.py ~/.cache/facegate/models tests/reference/pipeline.json \
           $FACEGATE_DATA/faces/labeled/obama/32bit.png $FACEGATE_DATA/faces/aligned_reference/*/1.png
"""
import json
import math
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

TEMPLATE = np.array([[47.158, 45.688], [101.806, 45.096], [73.416, 76.929],
                     [50.810, 105.148], [99.104, 104.723]])


def taps(src, dst):
    scale = src / dst
    out = []
    for i in range(dst):
        if dst <= src:
            a, b = i * scale, (i + 1) * scale
            v, k = [], math.floor(a)
            while k < b and k < src:
                w = (min(b, k + 1) - max(a, k)) / scale
                if w > 1e-12:
                    v.append((k, w))
                k += 1
        else:
            x = min(max((i + 0.5) * scale - 0.5, 0.0), src - 1)
            k = math.floor(x)
            f = x - k
            v = [(k, 1 - f), (k + 1, f)] if k + 1 < src and f > 0 else [(k, 1.0)]
        out.append(v)
    return out


def matrix(src, dst):
    m = np.zeros((dst, src), np.float64)
    for i, v in enumerate(taps(src, dst)):
        for k, w in v:
            m[i, k] += w
    return m


def resize(img, w, h):  # img: H x W x 3 float
    t = np.tensordot(matrix(img.shape[0], h), img, axes=(1, 0))  # h x W x 3
    return np.tensordot(t, matrix(img.shape[1], w), axes=(1, 1)).transpose(0, 2, 1)


def crop(img, x0, y0, w, h):
    out = np.zeros((h, w, 3))
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(img.shape[0], y0 + h), min(img.shape[1], x0 + w)
    if ye > ys and xe > xs:
        out[ys - y0:ye - y0, xs - x0:xe - x0] = img[ys:ye, xs:xe]
    return out


def x_major(img):
    return ((img - 127.5) * 0.0078125).transpose(1, 0, 2).astype(np.float32)


def nms(boxes, scores, t, mode_min=False):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    area = lambda b: (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    keep, dead = [], set()
    for n, i in enumerate(order):
        if i in dead:
            continue
        keep.append(i)
        for j in order[n + 1:]:
            if j in dead:
                continue
            a, b = boxes[i], boxes[j]
            w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
            h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
            inter = w * h
            o = inter / min(area(a), area(b)) if mode_min else inter / (area(a) + area(b) - inter)
            if o > t:
                dead.add(j)
    return keep


def square(b):
    w, h = b[2] - b[0], b[3] - b[1]
    l = max(w, h)
    x1, y1 = b[0] + w * 0.5 - l * 0.5, b[1] + h * 0.5 - l * 0.5
    return [x1, y1, x1 + l, y1 + l]


def regress(b, r):
    w, h = b[2] - b[0] + 1, b[3] - b[1] + 1
    return [b[0] + r[0] * w, b[1] + r[1] * h, b[2] + r[2] * w, b[3] + r[3] * h]


def detect(sess, img, min_face=40.0):
    pnet, rnet, onet = sess
    H, W = img.shape[:2]
    m = 12.0 / min_face
    min_layer, k, scales = min(W, H) * m, 0, []
    while min_layer >= 12:
        scales.append(m * 0.709 ** k)
        min_layer *= 0.709
        k += 1
    boxes, scores, regs = [], [], []
    for s in scales:
        ws, hs = math.ceil(W * s), math.ceil(H * s)
        x = x_major(resize(img, ws, hs))[None]
        reg, prob = pnet.run(["conv2d_4", "softmax"], {"input_1": x})
        b, sc, rg = [], [], []
        for i in range(reg.shape[1]):
            for j in range(reg.shape[2]):
                if prob[0, i, j, 1] >= 0.6:
                    b.append([math.trunc((2 * i + 1) / s), math.trunc((2 * j + 1) / s),
                              math.trunc((2 * i + 12) / s), math.trunc((2 * j + 12) / s)])
                    sc.append(float(prob[0, i, j, 1]))
                    rg.append([float(v) for v in reg[0, i, j]])
        for i in nms(b, sc, 0.5):
            boxes.append(b[i]); scores.append(sc[i]); regs.append(rg[i])
    c1 = []
    for i in nms(boxes, scores, 0.7):
        b, r = boxes[i], regs[i]
        w, h = b[2] - b[0], b[3] - b[1]
        nb = [b[0] + r[0] * w, b[1] + r[1] * h, b[2] + r[2] * w, b[3] + r[3] * h]
        c1.append([math.trunc(v) for v in square(nb)])
    if not c1:
        return []

    def net_input(b, size):
        w, h = max(int(b[2] - b[0] + 1), 1), max(int(b[3] - b[1] + 1), 1)
        return x_major(resize(crop(img, int(b[0]) - 1, int(b[1]) - 1, w, h), size, size))[None]

    kept, ks, kr = [], [], []
    for b in c1:
        reg, prob = rnet.run(["dense_2", "softmax_1"], {"input_2": net_input(b, 24)})
        if prob[0, 1] > 0.7:
            kept.append(b); ks.append(float(prob[0, 1])); kr.append(reg[0].astype(np.float64))
    c2 = [square(regress(kept[i], kr[i])) for i in nms(kept, ks, 0.7)]
    if not c2:
        return []
    faces = []
    for b in c2:
        b = [math.trunc(v) for v in b]
        reg, lm, prob = onet.run(["dense_5", "dense_6", "softmax_2"], {"input_3": net_input(b, 48)})
        if prob[0, 1] > 0.7:
            w, h = b[2] - b[0] + 1, b[3] - b[1] + 1
            pts = [[w * float(lm[0, k]) + b[0] - 1, h * float(lm[0, k + 5]) + b[1] - 1] for k in range(5)]
            faces.append((regress(b, reg[0].astype(np.float64)), float(prob[0, 1]), pts))
    pick = nms([f[0] for f in faces], [f[1] for f in faces], 0.7, mode_min=True)
    return [faces[i] for i in pick]


def align(img, pts, size=150):
    # Landmarks as f32 (as the Rust Face stores them), then f64 arithmetic like src/align.rs.
    src = np.array(pts, np.float32).astype(np.float64)
    dst = TEMPLATE.astype(np.float32).astype(np.float64)
    sm, dm = src.mean(0), dst.mean(0)
    p, q = src - sm, dst - dm
    sxx = (p ** 2).sum()
    a = (p * q).sum() / sxx
    b = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum() / sxx
    tx, ty = dm[0] - (a * sm[0] - b * sm[1]), dm[1] - (b * sm[0] + a * sm[1])
    d = a * a + b * b
    ia, ib = a / d, -b / d
    itx, ity = -(ia * tx - ib * ty), -(ib * tx + ia * ty)
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    x, y = ia * u - ib * v + itx, ib * u + ia * v + ity
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = x0.astype(int), y0.astype(int)
    H, W = img.shape[:2]

    def px(xx, yy):
        ok = (xx >= 0) & (yy >= 0) & (xx < W) & (yy < H)
        return np.where(ok[..., None], img[np.clip(yy, 0, H - 1), np.clip(xx, 0, W - 1)], 0.0)

    top = px(x0, y0) * (1 - fx) + px(x0 + 1, y0) * fx
    bot = px(x0, y0 + 1) * (1 - fx) + px(x0 + 1, y0 + 1) * fx
    # Round half away from zero, as Rust's f64::round.
    return np.clip(np.floor(top * (1 - fy) + bot * fy + 0.5), 0, 255)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    mdir, out, images = sys.argv[1], sys.argv[2], sys.argv[3:]
    data = os.environ.get("FACEGATE_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    mk = lambda f: ort.InferenceSession(os.path.join(mdir, f), opts, providers=["CPUExecutionProvider"])
    sess = (mk("mtcnn_pnet.onnx"), mk("mtcnn_rnet.onnx"), mk("mtcnn_onet.onnx"))
    emb = mk("dlib_resnet_v1_fp32.onnx")
    result = []
    for path in images:
        img = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"), np.float64)
        faces = []
        for box, score, pts in detect(sess, img):
            chip = align(img, pts).astype(np.float32).transpose(2, 0, 1)[None]
            e = emb.run(None, {"input": chip})[0][0]
            pts = [[float(np.float32(v)) for v in p] for p in pts]
            faces.append({"bbox": box, "score": score, "landmarks": pts,
                          "embedding": [float(v) for v in e]})
        result.append({"image": os.path.relpath(os.path.abspath(path), os.path.abspath(data)),
                       "faces": faces})
        print(f"{path}: {len(faces)} faces")
    with open(out, "w") as fh:
        json.dump({"generator": "models/reference.py (numpy + onnxruntime)", "images": result}, fh, indent=1)


if __name__ == "__main__":
    main()
