#!/usr/bin/env python3
"""Development check: the converted MiniFASNet ONNX files match the publisher's own code.

Run once in a throwaway venv with torch, opencv-python-headless, onnxruntime and pillow, and
a checkout of the publisher's repository (minivision-ai/Silent-Face-Anti-Spoofing, for its
`src/` and its detector under `resources/`). Not part of `fetch`.

For each sample photo it
1. runs the publisher's whole pipeline (its RetinaFace detector, its crops, its PyTorch
   networks): the scores its README reports;
2. takes facegate's face box (`facegate detect --json`), makes facegate's square around it
   (`square` below, as in src/recognition/texture.rs), cuts both crops with the publisher's
   `CropImage`, and runs the publisher's PyTorch networks and the converted ONNX files
   (onnxruntime) on the same pixels; the largest difference is printed and must be < 1e-4;
3. with --write-reference, stores the ONNX outputs of step 2 for tests/texture.rs.

Usage: check_minifasnet.py --publisher DIR --facegate BIN --models DIR IMAGE...
       [--write-reference OUT.json]   (image paths stored relative to $FACEGATE_DATA)
"""
import argparse
import json
import math
import os
import subprocess
import sys

import cv2
import numpy as np
import onnxruntime as ort
import torch

NETS = [("minifasnet_v2_2.7.onnx", "2.7_80x80_MiniFASNetV2.pth", 2.7),
        ("minifasnet_v1se_4.0.onnx", "4_0_0_80x80_MiniFASNetV1SE.pth", 4.0)]
DROP = 0.07  # the square's centre sits this fraction of the box height below the box's


def square(box):
    """facegate's detector box [x, y, w, h] -> the square [x, y, s, s] the networks expect."""
    x, y, w, h = box
    s = math.sqrt(w * h)
    cx, cy = x + w / 2, y + h / 2 + DROP * h
    return [cx - s / 2, cy - s / 2, s, s]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--publisher", required=True)
    ap.add_argument("--facegate", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--write-reference")
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    sys.path.insert(0, a.publisher)
    from src.anti_spoof_predict import AntiSpoofPredict
    from src.generate_patches import CropImage
    cwd = os.getcwd()
    os.chdir(a.publisher)  # its detector is read from a relative path
    pub = AntiSpoofPredict(0)
    os.chdir(cwd)
    cropper = CropImage()
    sessions = [ort.InferenceSession(os.path.join(a.models, o)) for o, _, _ in NETS]
    data = os.environ.get("FACEGATE_DATA", "")
    worst = 0.0
    out = []
    for path in a.images:
        img = cv2.imread(path)  # BGR, EXIF orientation applied
        # 1. the publisher's pipeline
        theirs = np.zeros(3)
        box = pub.get_bbox(img)
        for _, pth, scale in NETS:
            crop = cropper.crop(img, box, scale, 80, 80, True)
            theirs += pub.predict(crop, os.path.join(a.publisher, "resources/anti_spoof_models", pth))[0]
        theirs /= 2
        # 2. facegate's boxes, the publisher's crops and networks against the ONNX files
        det = json.loads(subprocess.run([a.facegate, "detect", "--json", "--models", a.models, path],
                                        check=True, capture_output=True, text=True).stdout)
        faces = []
        for face in det["faces"]:
            sq = square(face["box"])
            bbox = [int(round(v)) for v in sq]
            nets = []
            for (onnx_file, pth, scale), sess in zip(NETS, sessions):
                crop = cropper.crop(img, bbox, scale, 80, 80, True)
                ref = pub.predict(crop, os.path.join(a.publisher, "resources/anti_spoof_models", pth))[0]
                x = crop.transpose(2, 0, 1)[None].astype(np.float32)
                got = sess.run(None, {"input": x})[0][0]
                worst = max(worst, float(np.abs(got - ref).max()))
                nets.append([float(v) for v in got])
            score = (nets[0][1] + nets[1][1]) / 2
            faces.append({"box": face["box"], "crop_box": bbox, "probs": nets, "score": score})
        rel = os.path.relpath(path, data) if data else path
        print(f"{rel}: publisher's pipeline {theirs.round(4).tolist()} (real {theirs[1]:.3f}); "
              f"facegate's boxes: " + ", ".join(f"real {f['score']:.3f}" for f in faces))
        out.append({"image": rel, "publisher": [float(v) for v in theirs], "faces": faces})
    print(f"largest |ONNX - PyTorch| on the same crops: {worst:.2e}")
    if worst >= 1e-4:
        sys.exit("the converted networks differ from the publisher's")
    if a.write_reference:
        with open(a.write_reference, "w") as fh:
            json.dump({"note": "models/check_minifasnet.py: onnxruntime outputs of the converted "
                               "MiniFASNets on facegate's boxes, checked against the publisher's "
                               "PyTorch code on the same crops", "max_abs_diff_vs_pytorch": worst,
                       "images": out}, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
