//! An ONNX node's attributes and an initializer's values, read and checked against what
//! the kernels implement (square kernels, equal strides, the paddings they handle). Each
//! error is a sentence about the node, which [`super::parse::Builder`] prefixes with its name.

use tract_onnx::pb;

/// ONNX `TensorProto.DataType` of 32-bit floats (weights, biases, slopes).
pub(super) const FLOAT: i32 = 1;
/// ONNX `TensorProto.DataType` of 64-bit integers (`Pad`'s pads).
pub(super) const INT64: i32 = 7;

/// What an f32 initializer holds.
pub(super) struct Init {
    pub(super) dims: Vec<usize>,
    pub(super) data: Vec<f32>,
}

/// The values of an f32 initializer, checked against its dims.
pub(super) fn init_of(t: &pb::TensorProto) -> std::result::Result<Init, String> {
    if t.data_type != FLOAT {
        return Err(format!("initializer {} is not f32", t.name));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("initializer {}: dim {d}", t.name)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let data: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    if data.len() != dims.iter().product::<usize>() {
        return Err(format!(
            "initializer {}: {} values for dims {dims:?}",
            t.name,
            data.len()
        ));
    }
    Ok(Init { dims, data })
}

/// The node's attribute `name`, if it has one.
pub(super) fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// The node's integer-list attribute `name` (empty when absent).
pub(super) fn ints(n: &pb::NodeProto, name: &str) -> Vec<i64> {
    attr(n, name).map(|a| a.ints.clone()).unwrap_or_default()
}

/// The node's `auto_pad` (`NOTSET` when absent).
fn auto_pad(n: &pb::NodeProto) -> String {
    attr(n, "auto_pad")
        .map(|a| String::from_utf8_lossy(&a.s).to_string())
        .unwrap_or_else(|| "NOTSET".into())
}

/// `VALID`, `SAME_UPPER`, or `NOTSET` with explicit pads that must all be 0 (= `VALID`).
pub(super) fn same_padding(n: &pb::NodeProto) -> std::result::Result<bool, String> {
    let pad = auto_pad(n);
    match pad.as_str() {
        "VALID" => Ok(false),
        "SAME_UPPER" => Ok(true),
        "NOTSET" if ints(n, "pads").iter().all(|&p| p == 0) => Ok(false),
        other => Err(format!("padding {other} {:?}", ints(n, "pads"))),
    }
}

/// A square kernel side from `kernel_shape`.
pub(super) fn square_kernel(n: &pb::NodeProto) -> std::result::Result<usize, String> {
    match ints(n, "kernel_shape").as_slice() {
        [a, b] if a == b && *a > 0 => Ok(*a as usize),
        other => Err(format!("kernel shape {other:?}")),
    }
}

/// The equal strides of both spatial axes (1 when absent).
pub(super) fn square_strides(n: &pb::NodeProto) -> std::result::Result<usize, String> {
    match ints(n, "strides").as_slice() {
        [] => Ok(1),
        [a, b] if a == b && *a > 0 => Ok(*a as usize),
        other => Err(format!("strides {other:?}")),
    }
}

/// A convolution's zero border: `VALID` or explicit pads, equal on every side.
pub(super) fn conv_padding(n: &pb::NodeProto) -> std::result::Result<usize, String> {
    let pad = auto_pad(n);
    let pads = ints(n, "pads");
    match pad.as_str() {
        "VALID" => Ok(0),
        "NOTSET" if pads.is_empty() => Ok(0),
        "NOTSET" if pads.len() == 4 && pads.iter().all(|&p| p == pads[0] && p >= 0) => {
            Ok(pads[0] as usize)
        }
        other => Err(format!("padding {other} {pads:?}")),
    }
}

/// A per-channel constant of an elementwise operator on an NCHW tensor: one value for all
/// channels (`[]` or `[1]`) or one per channel (`[1, C, 1, 1]`).
pub(super) fn channel_constant(c: &Init) -> std::result::Result<Vec<f32>, String> {
    match c.dims[..] {
        [] | [1] => Ok(c.data.clone()),
        [1, _, 1, 1] => Ok(c.data.clone()),
        ref d => Err(format!("a constant of dims {d:?}")),
    }
}
