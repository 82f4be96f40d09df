#!/usr/bin/env python3
"""Write the int8 variant of an embedder with onnxruntime's static quantization.

QOperator format, only Conv and Relu quantized, per-tensor, uint8 activations / int8 weights:
the one variant that tract has run faster than fp32 (QDQ is de-quantized by tract, full
QOperator needs QLinearConcat which tract lacks, dynamic quantization is slower). fp32 stays
the default embedder: on our x86 bench int8 was not faster in tract (10.6 vs 10.0 ms); measure
both on the device (`facegate bench`).

Calibration uses real faces: the central 120x120 of 250x250 LFW images (the deep-funneled set
centres the face), resized to the 150x150 chip. `--calib DIR` reads any folder of images the
same way (they should be roughly centred faces).

For FaceNet (`--net facenet`) the chip is the central 150x150 of 250 (its crop has a margin
round the face) resized to 160x160, fed as (x - 127.5) / 128 to input `input:0`.

Usage: quantize.py FP32.onnx INT8.onnx CALIB_DIR [--max N] [--net dlib|facenet]
"""
import os
import sys

import numpy as np
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)
from PIL import Image


def list_images(root, limit):
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if f.lower().endswith((".jpg", ".jpeg", ".png")):
                out.append(os.path.join(dirpath, f))
    # Spread the sample over the whole folder (many people, not the first few).
    step = max(1, len(out) // limit)
    return out[::step][:limit]


# name: (input name, crop of 250, chip side, mean, scale)
NETS = {
    "dlib": ("input", 120, 150, 0.0, 1.0),
    "facenet": ("input:0", 150, 160, 127.5, 1.0 / 128.0),
}


def chip(path, net):
    _, crop, side, mean, scale = NETS[net]
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = min(w, h) * crop // 250
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    c = np.asarray(im.crop(box).resize((side, side), Image.BILINEAR), dtype=np.float32)
    return ((c - mean) * scale).astype(np.float32).transpose(2, 0, 1)[None]


class Reader(CalibrationDataReader):
    def __init__(self, paths, net):
        self.it = iter(paths)
        self.net = net

    def get_next(self):
        p = next(self.it, None)
        return None if p is None else {NETS[self.net][0]: chip(p, self.net)}


def main():
    args = sys.argv[1:]
    limit = 200
    if "--max" in args:
        k = args.index("--max")
        limit = int(args[k + 1])
        del args[k:k + 2]
    net = "dlib"
    if "--net" in args:
        k = args.index("--net")
        net = args[k + 1]
        del args[k:k + 2]
    if len(args) != 3 or net not in NETS:
        sys.exit(__doc__)
    src, dst, calib = args
    paths = list_images(calib, limit)
    if len(paths) < 20:
        sys.exit(f"quantize: need at least 20 calibration images under {calib}, found {len(paths)}")
    quantize_static(src, dst, Reader(paths, net), quant_format=QuantFormat.QOperator,
                    op_types_to_quantize=["Conv", "Relu"], per_channel=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    print(f"quantized with {len(paths)} calibration images from {calib} -> {dst}")


if __name__ == "__main__":
    main()
