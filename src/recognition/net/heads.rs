//! Merging the heads of a network: convolutions of one kernel size that read one map.

use super::kernels::{coutp, packed, Act, Conv};
use super::{Op, Step};

/// Convolutions of one kernel size that read the same map and have no PReLU (the networks'
/// heads: box offsets, landmarks, class logits) merged into one, whose channels are then
/// split back in order: their input is read once and their few channels share vector lanes
/// (P-Net's two heads had 4 and 2 of 16). Every channel is computed exactly as before.
pub(super) fn merge_heads(steps: Vec<Step>, slots: &mut usize) -> Vec<Step> {
    let head = |s: &Step| match &s.op {
        Op::Conv(c) if c.act == Act::Linear => Some((s.input, c.k, c.cin, c.stride, c.pad)),
        _ => None,
    };
    let mut done = vec![false; steps.len()];
    let mut out = Vec::with_capacity(steps.len() + 2);
    for i in 0..steps.len() {
        if done[i] {
            continue;
        }
        let group: Vec<usize> = match head(&steps[i]) {
            Some(key) => (i..steps.len())
                .filter(|&j| !done[j] && head(&steps[j]) == Some(key))
                .collect(),
            None => vec![i],
        };
        let convs: Vec<&Conv> = group
            .iter()
            .filter_map(|&j| match &steps[j].op {
                Op::Conv(c) => Some(c),
                _ => None,
            })
            .collect();
        if group.len() < 2 || convs.len() != group.len() {
            out.push(steps[i].clone());
            done[i] = true;
            continue;
        }
        let (k, cin, stride, pad) = (convs[0].k, convs[0].cin, convs[0].stride, convs[0].pad);
        let cout: usize = convs.iter().map(|c| c.cout).sum();
        let cp = coutp(cout);
        let mut weights = vec![0.0; k * k * cin * cp];
        let mut bias = vec![0.0; cp];
        let mut at = 0;
        for c in &convs {
            let rows = k * k * cin;
            for r in 0..rows {
                for o in 0..c.cout {
                    weights[packed(rows, r, at + o)] = c.weights[packed(rows, r, o)];
                }
            }
            bias[at..at + c.cout].copy_from_slice(&c.bias[..c.cout]);
            at += c.cout;
        }
        let merged = *slots;
        *slots += 1;
        out.push(Step {
            name: group
                .iter()
                .map(|&j| steps[j].name.as_str())
                .collect::<Vec<_>>()
                .join("+"),
            op: Op::Conv(Conv {
                k,
                stride,
                pad,
                cin,
                cout,
                coutp: cp,
                weights,
                bias,
                act: Act::Linear,
            }),
            input: steps[i].input,
            output: merged,
        });
        let mut at = 0;
        for (&j, c) in group.iter().zip(&convs) {
            out.push(Step {
                name: steps[j].name.clone(),
                op: Op::Channels {
                    start: at,
                    len: c.cout,
                },
                input: merged,
                output: steps[j].output,
            });
            at += c.cout;
            done[j] = true;
        }
    }
    out
}
