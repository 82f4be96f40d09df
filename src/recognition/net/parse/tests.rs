//! Each fusion of the graph reader on a tiny hand-built graph: the steps it makes, and the
//! fused network's output against the unfused arithmetic.

use super::Builder;
use crate::recognition::net::kernels::Act;
use crate::recognition::net::onnx::FLOAT;
use crate::recognition::net::{Map, Net, Op};
use std::path::PathBuf;
use tract_onnx::pb;

fn value(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn constant(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        name: output.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

/// A 1 x 1 convolution of `input` into `output` with weights `w` (`[cout][cin]`).
fn conv1(input: &str, output: &str, w: &str) -> pb::NodeProto {
    node(
        "Conv",
        &[input, w],
        output,
        vec![ints("kernel_shape", &[1, 1])],
    )
}

/// The graph `nodes` on an NCHW input `x` of `[1, 3, 2, 2]`, read back to NHWC as `y`.
fn graph(
    mut nodes: Vec<pb::NodeProto>,
    last: &str,
    consts: Vec<pb::TensorProto>,
) -> pb::GraphProto {
    nodes.push(node(
        "Transpose",
        &[last],
        "y",
        vec![ints("perm", &[0, 2, 3, 1])],
    ));
    pb::GraphProto {
        node: nodes,
        initializer: consts,
        input: vec![value("x", &[1, 3, 2, 2])],
        output: vec![value("y", &[])],
        ..Default::default()
    }
}

fn net(g: &pb::GraphProto) -> crate::error::Result<Net> {
    Builder::new(PathBuf::from("tiny.onnx"), g)?.build(g)
}

/// A 2 x 2 map of 3 channels, values of both signs.
fn input() -> Map {
    let data = (0..12).map(|i| i as f32 * 0.25 - 1.5).collect();
    Map::new(2, 2, 3, data).unwrap()
}

/// `W x + b` at each cell of `x` (`w` is `[cout][cin]`).
fn dense(x: &Map, w: &[f32], b: &[f32]) -> Vec<Vec<f32>> {
    let cout = b.len();
    x.data
        .chunks(x.c)
        .map(|v| {
            (0..cout)
                .map(|o| {
                    b[o] + v
                        .iter()
                        .enumerate()
                        .map(|(i, a)| a * w[o * x.c + i])
                        .sum::<f32>()
                })
                .collect()
        })
        .collect()
}

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}

const W: [f32; 6] = [0.5, -1.0, 0.25, 1.5, 0.75, -0.5];
const B: [f32; 2] = [0.125, -0.25];

#[test]
fn a_bias_add_and_a_relu_fold_into_the_convolution() {
    let g = graph(
        vec![
            conv1("x", "c", "w"),
            node("Add", &["c", "b"], "a", vec![]),
            node("Relu", &["a"], "r", vec![]),
        ],
        "r",
        vec![constant("w", &[2, 3, 1, 1], &W), constant("b", &[2], &B)],
    );
    let n = net(&g).unwrap();
    assert_eq!(n.steps.len(), 1, "{:?}", n.steps);
    let Op::Conv(c) = &n.steps[0].op else {
        panic!("{:?}", n.steps[0].op)
    };
    assert_eq!((c.act == Act::Relu, &c.bias[..2]), (true, &B[..]));
    assert_eq!(n.input_channels, 3);
    let want: Vec<f32> = dense(&input(), &W, &B)
        .concat()
        .iter()
        .map(|v| v.max(0.0))
        .collect();
    close(&n.run(input()).unwrap()[0].data, &want);
}

#[test]
fn prelu_folds_into_the_convolution() {
    let slope = [0.1f32, 0.2];
    let g = graph(
        vec![
            conv1("x", "c", "w"),
            node("PRelu", &["c", "s"], "p", vec![]),
        ],
        "p",
        vec![
            constant("w", &[2, 3, 1, 1], &W),
            constant("s", &[2], &slope),
        ],
    );
    let n = net(&g).unwrap();
    assert_eq!(n.steps.len(), 1);
    // The slopes, padded to the channel block.
    assert!(
        matches!(&n.steps[0].op, Op::Conv(c) if matches!(&c.act, Act::Prelu(s) if s[..2] == slope))
    );
    let want: Vec<f32> = dense(&input(), &W, &[0.0, 0.0])
        .iter()
        .flat_map(|v| {
            v.iter()
                .enumerate()
                .map(|(o, &a)| if a < 0.0 { a * slope[o] } else { a })
        })
        .collect();
    close(&n.run(input()).unwrap()[0].data, &want);
}

#[test]
fn an_inputs_sub_and_mul_become_one_scaling() {
    let (m, s) = ([0.5f32, 1.0, -1.0], [2.0f32, 0.5, 4.0]);
    let g = graph(
        vec![
            node("Sub", &["x", "m"], "d", vec![]),
            node("Mul", &["d", "s"], "q", vec![]),
            conv1("q", "c", "w"),
        ],
        "c",
        vec![
            constant("m", &[1, 3, 1, 1], &m),
            constant("s", &[1, 3, 1, 1], &s),
            constant("w", &[2, 3, 1, 1], &W),
        ],
    );
    let n = net(&g).unwrap();
    assert_eq!(n.steps.len(), 2, "{:?}", n.steps);
    assert!(matches!(&n.steps[0].op, Op::Scale { sub, mul } if sub[..] == m && mul[..] == s));
    let x = input();
    let scaled: Vec<f32> = x
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| (v - m[i % 3]) * s[i % 3])
        .collect();
    let want = dense(&Map::new(2, 2, 3, scaled).unwrap(), &W, &[0.0, 0.0]).concat();
    close(&n.run(x).unwrap()[0].data, &want);
}

#[test]
fn a_relu_after_a_residual_add_folds_into_the_add() {
    let w2 = [1.0f32, 0.0, 0.0, 1.0];
    let g = graph(
        vec![
            conv1("x", "c1", "w"),
            conv1("c1", "c2", "w2"),
            node("Add", &["c2", "c1"], "a", vec![]),
            node("Relu", &["a"], "r", vec![]),
        ],
        "r",
        vec![
            constant("w", &[2, 3, 1, 1], &W),
            constant("w2", &[2, 2, 1, 1], &w2),
        ],
    );
    let n = net(&g).unwrap();
    assert_eq!(n.steps.len(), 3, "{:?}", n.steps);
    assert!(matches!(n.steps[2].op, Op::Add { relu: true, .. }));
    // c2 = c1 (identity weights), so the output is relu(2 c1).
    let want: Vec<f32> = dense(&input(), &W, &[0.0, 0.0])
        .concat()
        .iter()
        .map(|v| (2.0 * v).max(0.0))
        .collect();
    close(&n.run(input()).unwrap()[0].data, &want);
}

#[test]
fn heads_that_read_one_map_are_merged_and_split_back() {
    let wb = [1.0f32, 2.0, 3.0];
    let mut g = graph(
        vec![conv1("x", "h1", "w"), conv1("x", "h2", "wb")],
        "h1",
        vec![
            constant("w", &[2, 3, 1, 1], &W),
            constant("wb", &[1, 3, 1, 1], &wb),
        ],
    );
    g.node.push(node(
        "Transpose",
        &["h2"],
        "z",
        vec![ints("perm", &[0, 2, 3, 1])],
    ));
    g.output.push(value("z", &[]));
    let n = net(&g).unwrap();
    let convs: Vec<usize> = n
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Conv(c) => Some(c.cout),
            _ => None,
        })
        .collect();
    assert_eq!(
        convs,
        vec![3],
        "one convolution of both heads' channels: {:?}",
        n.steps
    );
    let parts = n
        .steps
        .iter()
        .filter(|s| matches!(s.op, Op::Channels { .. }))
        .count();
    assert_eq!(parts, 2);
    let out = n.run(input()).unwrap();
    close(&out[0].data, &dense(&input(), &W, &[0.0, 0.0]).concat());
    close(&out[1].data, &dense(&input(), &wb, &[0.0]).concat());
}

#[test]
fn an_unknown_operator_and_an_input_without_channels_are_named() {
    let g = graph(vec![node("Erf", &["x"], "e", vec![])], "e", vec![]);
    let e = net(&g).unwrap_err().to_string();
    assert!(
        e.contains("operator Erf is not implemented") && e.contains("tiny.onnx"),
        "{e}"
    );
    let mut g = graph(
        vec![conv1("x", "c", "w")],
        "c",
        vec![constant("w", &[2, 3, 1, 1], &W)],
    );
    g.input = vec![value("x", &[1, 3])];
    let e = net(&g).unwrap_err().to_string();
    assert!(e.contains("does not give its channels"), "{e}");
}
