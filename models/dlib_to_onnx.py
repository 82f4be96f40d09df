#!/usr/bin/env python3
"""Convert dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) to ONNX.

The .dat file is dlib's own DNN serialisation of

    loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>

Stream grammar (all little-endian):
  int     : one length byte (high bit = sign, low bits = byte count), then that many bytes.
  string  : int length, then the bytes.
  float   : int mantissa, int exponent  (value = mantissa * 2**exponent).
  bool    : the character '0' or '1'.
  tensor  : int version (2), ints n, k, nr, nc, then n*k*nr*nc raw f32.
After the loss header and one version int per layer (top-down), the layers follow from the
input upward; each is its name string, its own fields, then 3 bools and 3 (empty) tensors
(the layer on the input adds one int, its sample expansion factor).

Graph facts: strided convolutions and pools use padding 0, 3x3 stride-1 convolutions padding
1; each affine (frozen batch norm) is folded into the convolution before it; a residual add
of tensors of different shapes zero-extends the smaller one at the end of each axis (dlib's
`add_prev`). The input is raw RGB 0..255, NCHW [1,3,150,150]; dlib's input layer subtracts
the per-channel mean and divides by 256, which is baked into the graph. The output is the
128-d descriptor, not normalised (Euclidean distance, threshold 0.6).

Usage: dlib_to_onnx.py INPUT.dat OUTPUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Reader:
    def __init__(self, data):
        self.d = data
        self.p = 0

    def int(self):
        b = self.d[self.p]
        self.p += 1
        n, neg = b & 0x0F, b & 0x80
        v = int.from_bytes(self.d[self.p:self.p + n], "little")
        self.p += n
        return -v if neg else v

    def string(self):
        n = self.int()
        s = self.d[self.p:self.p + n].decode("ascii")
        self.p += n
        return s

    def float(self):
        m = self.int()
        e = self.int()
        return m * 2.0 ** e

    def bools(self, n):
        s = self.d[self.p:self.p + n]
        if any(c not in b"01" for c in s):
            raise ValueError(f"expected {n} bools at offset {self.p}, got {s!r}")
        self.p += n

    def tensor(self):
        version = self.int()
        if version != 2:
            raise ValueError(f"unsupported tensor version {version} at offset {self.p}")
        n, k, nr, nc = (self.int() for _ in range(4))
        count = n * k * nr * nc
        a = np.frombuffer(self.d, dtype="<f4", count=count, offset=self.p).reshape(n, k, nr, nc)
        self.p += 4 * count
        return a.astype(np.float32)

    def alias(self):
        self.int()  # version
        return tuple(self.int() for _ in range(4))


def read_layers(data):
    """Parse the stream into [(kind, fields)] from the input upward, plus the input mean."""
    r = Reader(data)
    r.int()  # add_loss_layer version
    if r.string() != "loss_metric_2":
        raise ValueError("not a dlib loss_metric network")
    marker = b"\x01\x15input_rgb_image_sized"
    start = data.find(marker)
    if start < 0:
        raise ValueError("no input_rgb_image_sized layer found")
    r.p = start
    r.string()
    mean = [r.float() for _ in range(3)]
    size = (r.int(), r.int())
    if size != (150, 150):
        raise ValueError(f"unexpected input size {size}")
    layers = []
    while r.p < len(data):
        name = r.string()
        f = {}
        if name == "con_4":
            params = r.tensor().reshape(-1)
            nf, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
            wshape = r.alias()
            r.alias()  # biases
            for _ in range(4):
                r.float()  # learning-rate / weight-decay multipliers
            nw = int(np.prod(wshape))
            f = dict(w=params[:nw].reshape(wshape), b=params[nw:nw + nf], stride=sy, pad=py)
            assert sy == sx and py == px and nr == nc
        elif name == "affine_":
            params = r.tensor().reshape(-1)
            g = r.alias()
            r.alias()
            r.int()  # mode
            n = g[1]
            f = dict(gamma=params[:n], beta=params[n:2 * n])
        elif name in ("max_pool_2", "avg_pool_2"):
            nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
            f = dict(size=nr, stride=sy, pad=py)
        elif name in ("relu_", "add_prev_"):
            pass
        elif name == "fc_2":
            _n_out, _n_in = r.int(), r.int()
            params = r.tensor()
            wshape = r.alias()
            r.alias()
            r.int()  # bias mode
            for _ in range(4):
                r.float()
            f = dict(w=params.reshape(wshape[0], wshape[1]))
        else:
            raise ValueError(f"unknown layer {name!r} at offset {r.p}")
        r.bools(3)
        for _ in range(3):
            r.tensor()  # x_grad, cached_output, params_grad: empty in a trained net
        if not layers:
            r.int()  # the layer on the input also stores its sample expansion factor
        layers.append((name, f))
    return mean, layers


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def const(self, arr, p="c"):
        nm = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def op(self, op, inputs, p, **attrs):
        out = self.name(p)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def out_size(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def build(mean, layers):
    g = Graph()
    x = g.op("Sub", ["input", g.const(np.array(mean, np.float32).reshape(1, 3, 1, 1), "mean")], "sub")
    x = g.op("Mul", [x, g.const(np.array(1 / 256, np.float32), "scale")], "norm")
    shape = [3, 150, 150]  # channels, height, width of the current tensor

    def conv(x, shape, i):
        c, a = layers[i][1], layers[i + 1][1]
        assert layers[i][0] == "con_4" and layers[i + 1][0] == "affine_"
        w = (c["w"] * a["gamma"][:, None, None, None]).astype(np.float32)
        b = (c["b"] * a["gamma"] + a["beta"]).astype(np.float32)
        k, s, p = w.shape[2], c["stride"], c["pad"]
        y = g.op("Conv", [x, g.const(w, "w"), g.const(b, "b")], "conv",
                 kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
        h = out_size(shape[1], k, s, p)
        return y, [w.shape[0], h, h]

    def pool(x, shape, f, kind):
        y = g.op(kind, [x], "pool", kernel_shape=[f["size"]] * 2, strides=[f["stride"]] * 2,
                 pads=[f["pad"]] * 4)
        h = out_size(shape[1], f["size"], f["stride"], f["pad"])
        return y, [shape[0], h, h]

    def pad_to(x, shape, target):
        if shape == target:
            return x
        pads = [0, 0, 0, 0] + [0] + [t - s for s, t in zip(shape, target)]
        return g.op("Pad", [x, g.const(np.array(pads, np.int64), "pads")], "zext", mode="constant")

    # Stem: con, affine, relu, max_pool.
    x, shape = conv(x, shape, 0)
    x = g.op("Relu", [x], "relu")
    assert layers[3][0] == "max_pool_2"
    x, shape = pool(x, shape, layers[3][1], "MaxPool")
    i = 4
    while layers[i][0] == "con_4":
        block_in, in_shape = x, shape
        y, ys = conv(x, shape, i)
        y = g.op("Relu", [y], "relu")
        y, ys = conv(y, ys, i + 3)
        i += 5
        if layers[i][0] == "avg_pool_2":  # down-sampling block: shortcut is avg_pool(input)
            sc, ss = pool(block_in, in_shape, layers[i][1], "AveragePool")
            i += 1
        else:
            sc, ss = block_in, in_shape
        assert layers[i][0] == "add_prev_" and layers[i + 1][0] == "relu_", layers[i]
        target = [max(a, b) for a, b in zip(ys, ss)]
        x = g.op("Add", [pad_to(y, ys, target), pad_to(sc, ss, target)], "add")
        x = g.op("Relu", [x], "relu")
        shape = target
        i += 2
    assert layers[i][0] == "avg_pool_2" and layers[i][1]["size"] == 0  # avg_pool_everything
    x = g.op("GlobalAveragePool", [x], "gap")
    x = g.op("Flatten", [x], "flat", axis=1)
    assert layers[i + 1][0] == "fc_2" and i + 2 == len(layers)
    w = layers[i + 1][1]["w"].astype(np.float32)
    g.nodes.append(helper.make_node("MatMul", [x, g.const(w, "fc")], ["embedding"], name="fc"))

    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 150, 150])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 128])],
        g.inits)
    model = helper.make_model(graph, producer_name="facegate-dlib2onnx", producer_version="1",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data = open(sys.argv[1], "rb").read()
    mean, layers = read_layers(data)
    n_conv = sum(1 for n, _ in layers if n == "con_4")
    n_aff = sum(1 for n, _ in layers if n == "affine_")
    if (n_conv, n_aff) != (29, 29):
        sys.exit(f"expected 29 conv + 29 affine layers, found {n_conv} + {n_aff}")
    model = build(mean, layers)
    with open(sys.argv[2], "wb") as fh:
        fh.write(model.SerializeToString())
    n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    print(f"converted {n_conv} conv + {n_aff} affine layers, {n_params / 1e6:.2f} M parameters "
          f"-> {sys.argv[2]}")


if __name__ == "__main__":
    main()
