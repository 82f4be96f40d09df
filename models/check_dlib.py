#!/usr/bin/env python3
"""Development check: the converted ONNX matches dlib's own descriptors.

Needs PyPI `dlib-bin` (a prebuilt dlib) besides numpy, onnxruntime and pillow. For each image
it makes 150x150 chips (see `chips`), computes dlib's
`face_recognition_model_v1(...).compute_face_descriptor(chip)` and the ONNX output on the
same pixels, and prints the largest absolute difference. Not part of `fetch`.

Usage: check_dlib.py MODEL.dat MODEL.onnx IMAGE... [--write-reference OUT.json]
(with --write-reference, image paths are stored relative to $FACEGATE_DATA)
"""
import json
import os
import sys

import dlib
import numpy as np
import onnxruntime as ort
from PIL import Image


def chips(path):
    """150x150 chips of an image: its exact centre crop when it is large enough (so that a
    test can cut the same pixels), else a centre square resized, plus its mirror image."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    if w >= 150 and h >= 150:
        x0, y0 = (w - 150) // 2, (h - 150) // 2
        return [np.asarray(im, dtype=np.uint8)[y0:y0 + 150, x0:x0 + 150].copy()]
    s = min(w, h)
    c = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    chip = np.asarray(c.resize((150, 150), Image.BILINEAR), dtype=np.uint8)
    return [chip, np.ascontiguousarray(chip[:, ::-1])]


def main():
    args = sys.argv[1:]
    ref_out = None
    if "--write-reference" in args:
        k = args.index("--write-reference")
        ref_out = args[k + 1]
        del args[k:k + 2]
    if len(args) < 3:
        sys.exit(__doc__)
    dat, onnx_path, images = args[0], args[1], args[2:]
    net = dlib.face_recognition_model_v1(dat)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    worst = 0.0
    refs = []
    for path in images:
        for chip in chips(path):
            want = np.array(net.compute_face_descriptor(chip), dtype=np.float64)
            x = chip.astype(np.float32).transpose(2, 0, 1)[None]
            got = sess.run(None, {"input": x})[0][0].astype(np.float64)
            diff = float(np.abs(want - got).max())
            worst = max(worst, diff)
            data = os.environ.get("FACEGATE_DATA", "")
            rel = os.path.relpath(os.path.abspath(path), os.path.abspath(data)) if data else path
            refs.append({"image": rel, "crop": "centre 150x150", "dlib": want.tolist()})
            print(f"{path}: max |dlib - onnx| = {diff:.2e}, |d| = {np.linalg.norm(want):.4f}")
    print(f"worst: {worst:.2e}")
    if ref_out:
        with open(ref_out, "w") as fh:
            json.dump(refs, fh)
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main()
