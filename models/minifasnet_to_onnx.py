#!/usr/bin/env python3
"""Convert a MiniFASNet anti-spoofing network (a PyTorch state dict in the legacy, pre-1.6
serialisation) to ONNX, without PyTorch.

    minifasnet_to_onnx.py WEIGHTS.pth OUT.onnx

The legacy file is a run of pickles: a magic number, a protocol version, system facts, the
state dict (tensors as `torch._utils._rebuild_tensor_v2` calls on storages named by a
persistent id), the list of storage keys, and then each storage's raw bytes (an int64 element
count, then the little-endian elements). The state dict is read with an unpickler that admits
only tensor rebuilds, the two storage types and ordered dicts: anything else in the file is
refused, so a crafted file cannot run code.

The graph is built from the tensors' names and shapes and the published layer structure:
  conv1 (3x3 stride 2) · conv2_dw (3x3 depthwise) · conv_23 (a depthwise block, stride 2) ·
  conv_3 (4 residual blocks) · conv_34 (stride 2) · conv_4 (6 residual blocks) · conv_45
  (stride 2) · conv_5 (2 residual blocks) · conv_6_sep (1x1) · conv_6_dw (5x5 depthwise, no
  padding) · flatten · linear (512 -> 128) · batch norm · prob (128 -> 3) · softmax.
A depthwise block is 1x1 conv + BN + PReLU, 3x3 grouped conv + BN + PReLU, 1x1 conv + BN; a
residual block adds its input, after a squeeze-excitation (global average, 1x1 conv + BN +
ReLU, 1x1 conv + BN, sigmoid, scale) where the file has one (the last block of each stage in
the SE variant). Every batch norm (eps 1e-5) is folded into the convolution or dense layer
before it. Every tensor of the file must be used (batch norms' `num_batches_tracked` aside),
or the conversion fails: a file of another structure is refused rather than half-read.

Input [1, 3, 80, 80] NCHW, **BGR**, values 0..255 as they are. Output `probs` [1, 3]: the
softmax; class 1 is a real face, 0 and 2 are attacks. The output file is byte-reproducible.
"""
import collections
import pickle
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MAGIC = 0x1950A86A20F9469CFC6C
EPS = 1e-5
ELEMENT = {"FloatStorage": (4, "<f4"), "LongStorage": (8, "<i8")}


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    return _Tensor(storage, offset, size, stride)


class _Restricted(pickle.Unpickler):
    """Admits tensor rebuilds, float and long storages and ordered dicts; nothing else."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in ELEMENT:
            return name
        raise pickle.UnpicklingError(f"refused: {module}.{name} is not a tensor description")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and pid[1] in ELEMENT):
            raise pickle.UnpicklingError(f"refused persistent id {pid!r}")
        _, kind, key, _location, numel = pid[:5]
        return (kind, str(key), int(numel))


def _plain_load(fh):
    """A pickle of plain values only (the header)."""
    class Plain(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"refused: {module}.{name} in the header")
    return Plain(fh).load()


def read_state_dict(path):
    """{name: float32 or int64 array} from a legacy PyTorch file."""
    with open(path, "rb") as fh:
        if _plain_load(fh) != MAGIC:
            raise SystemExit(f"{path}: not a legacy PyTorch file (wrong magic number)")
        if _plain_load(fh) != 1001:
            raise SystemExit(f"{path}: unknown legacy protocol version")
        info = _plain_load(fh)
        if not info.get("little_endian", False):
            raise SystemExit(f"{path}: big-endian storages are not supported")
        tensors = _Restricted(fh).load()
        keys = _plain_load(fh)
        if not isinstance(tensors, dict) or not isinstance(keys, list):
            raise SystemExit(f"{path}: not a state dict")
        storages = {}
        kinds = {t.storage[1]: t.storage for t in tensors.values() if isinstance(t, _Tensor)}
        for key in keys:
            if key not in kinds:
                raise SystemExit(f"{path}: storage {key} is not used by any tensor")
            kind, _, numel = kinds[key]
            size, dtype = ELEMENT[kind]
            (count,) = struct.unpack("<q", fh.read(8))
            if count != numel:
                raise SystemExit(f"{path}: storage {key} holds {count} elements, described {numel}")
            raw = fh.read(count * size)
            if len(raw) != count * size:
                raise SystemExit(f"{path}: truncated at storage {key}")
            storages[key] = np.frombuffer(raw, dtype=dtype)
        if fh.read(1):
            raise SystemExit(f"{path}: bytes after the last storage")
    out = {}
    for name, t in tensors.items():
        if not isinstance(t, _Tensor):
            raise SystemExit(f"{path}: {name} is not a tensor")
        data = storages[t.storage[1]]
        n = int(np.prod(t.size)) if t.size else 1
        contiguous = tuple(int(np.prod(t.size[i + 1:])) for i in range(len(t.size)))
        if t.stride != contiguous:
            raise SystemExit(f"{path}: {name} is not contiguous")
        out[name.removeprefix("module.")] = data[t.offset:t.offset + n].reshape(t.size).copy()
    return out


class Builder:
    def __init__(self, sd):
        self.sd = sd
        self.used = set()
        self.nodes = []
        self.inits = []

    def take(self, name):
        if name not in self.sd:
            raise SystemExit(f"the file has no tensor {name}: not a MiniFASNet of the known structure")
        self.used.add(name)
        return self.sd[name].astype(np.float64)

    def has(self, prefix):
        return any(k.startswith(prefix) for k in self.sd)

    def const(self, name, value):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value.astype(np.float32)), name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def bn(self, prefix):
        g, b = self.take(prefix + ".weight"), self.take(prefix + ".bias")
        m, v = self.take(prefix + ".running_mean"), self.take(prefix + ".running_var")
        self.used.add(prefix + ".num_batches_tracked")
        s = g / np.sqrt(v + EPS)
        return s, b - m * s

    def conv_bn(self, x, prefix, stride=1, bn="bn", conv="conv"):
        """Conv (no bias) with the batch norm after it folded in."""
        w = self.take(f"{prefix}.{conv}.weight")
        s, shift = self.bn(f"{prefix}.{bn}")
        c_in = self.channels[x]
        group = c_in // w.shape[1]
        if group * w.shape[1] != c_in:
            raise SystemExit(f"{prefix}: weight {w.shape} does not fit {c_in} input channels")
        k = w.shape[2]
        pad = 0 if prefix == "conv_6_dw" else k // 2
        y = self.node("Conv", [x, self.const(prefix + ".w", w * s[:, None, None, None]),
                               self.const(prefix + ".b", shift)], prefix + ".conv",
                      group=group, kernel_shape=[k, k], pads=[pad] * 4, strides=[stride, stride])
        self.channels[y] = w.shape[0]
        return y

    def prelu(self, x, prefix):
        a = self.take(prefix + ".prelu.weight")
        y = self.node("PRelu", [x, self.const(prefix + ".slope", a[:, None, None])], prefix + ".prelu")
        self.channels[y] = self.channels[x]
        return y

    def conv_block(self, x, prefix, stride=1):
        return self.prelu(self.conv_bn(x, prefix, stride), prefix)

    def depth_wise(self, x, prefix, stride, residual):
        y = self.conv_block(x, prefix + ".conv")
        y = self.conv_block(y, prefix + ".conv_dw", stride)
        y = self.conv_bn(y, prefix + ".project")
        if self.has(prefix + ".se_module."):
            se = prefix + ".se_module"
            p = self.node("GlobalAveragePool", [y], se + ".pool")
            self.channels[p] = self.channels[y]
            h = self.conv_bn(p, se, bn="bn1", conv="fc1")
            h = self.node("Relu", [h], se + ".relu")
            self.channels[h] = self.channels[se + ".conv"]
            h2 = self._se_fc2(h, se)
            g = self.node("Sigmoid", [h2], se + ".sigmoid")
            y2 = self.node("Mul", [y, g], se + ".scale")
            self.channels[y2] = self.channels[y]
            y = y2
        if residual:
            z = self.node("Add", [x, y], prefix + ".add")
            self.channels[z] = self.channels[y]
            y = z
        return y

    def _se_fc2(self, h, se):
        w = self.take(se + ".fc2.weight")
        s, shift = self.bn(se + ".bn2")
        y = self.node("Conv", [h, self.const(se + ".fc2.w", w * s[:, None, None, None]),
                               self.const(se + ".fc2.b", shift)], se + ".fc2",
                      kernel_shape=[1, 1], pads=[0] * 4, strides=[1, 1])
        self.channels[y] = w.shape[0]
        return y

    def build(self, name):
        self.channels = {"input": 3}
        x = self.conv_block("input", "conv1", stride=2)
        x = self.conv_block(x, "conv2_dw")
        x = self.depth_wise(x, "conv_23", 2, residual=False)
        for stage, down in (("conv_3", "conv_34"), ("conv_4", "conv_45"), ("conv_5", None)):
            i = 0
            while self.has(f"{stage}.model.{i}."):
                x = self.depth_wise(x, f"{stage}.model.{i}", 1, residual=True)
                i += 1
            if i == 0:
                raise SystemExit(f"the file has no {stage} blocks")
            if down:
                x = self.depth_wise(x, down, 2, residual=False)
        x = self.conv_block(x, "conv_6_sep")
        x = self.conv_bn(x, "conv_6_dw")
        x = self.node("Flatten", [x], "flatten", axis=1)
        w = self.take("linear.weight")
        s, shift = self.bn("bn")
        x = self.node("Gemm", [x, self.const("linear.w", w * s[:, None]), self.const("linear.b", shift)],
                      "linear", transB=1)
        p = self.take("prob.weight")
        x = self.node("Gemm", [x, self.const("prob.w", p), self.const("prob.b", np.zeros(p.shape[0]))],
                      "prob", transB=1)
        self.node("Softmax", [x], "probs", axis=1)
        unused = sorted(set(self.sd) - self.used)
        if unused:
            raise SystemExit(f"tensors not used by the known structure: {', '.join(unused[:5])}")
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 80, 80])],
            [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, p.shape[0]])],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                  producer_name="facegate minifasnet_to_onnx")
        model.ir_version = 7
        onnx.checker.check_model(model)
        return model


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1])
    src, dst = sys.argv[1], sys.argv[2]
    model = Builder(read_state_dict(src)).build("minifasnet")
    with open(dst, "wb") as fh:
        fh.write(model.SerializeToString())


if __name__ == "__main__":
    main()
