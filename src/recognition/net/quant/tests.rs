use super::*;

/// A deterministic sequence in `lo..=hi`.
fn seq(n: usize, seed: u64, lo: i32, hi: i32) -> Vec<i32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (s % (hi - lo + 1) as u64) as i32
        })
        .collect()
}

#[test]
fn every_kernel_gives_the_definitions_sums_bit_for_bit() {
    // The kernel this CI machine must have picked (qemu's Cortex-A72 and A76).
    if let Ok(want) = std::env::var("FACEGATE_EXPECT_INT8_KERNEL") {
        let got = QIsa::detected().name();
        assert!(got.starts_with(&want), "{got}, expected {want}");
    }
    for (kp, blocks, seed) in [(4, 1, 1), (12, 2, 2), (2304, 1, 3), (148, 3, 4)] {
        let rows = 2 * MR;
        let a: Vec<u8> = seq(rows * kp, seed, 0, 127)
            .into_iter()
            .map(|v| v as u8)
            .collect();
        let w: Vec<i8> = seq(blocks * NB * kp, seed + 9, -127, 127)
            .into_iter()
            .map(|v| v as i8)
            .collect();
        // The extremes too: every pair at ±127 · 127, the edge of vpmaddubsw's i16.
        let hi_a = vec![127u8; rows * kp];
        let hi_w: Vec<i8> = (0..blocks * NB * kp)
            .map(|i| if i % 3 == 0 { -127 } else { 127 })
            .collect();
        for (a, w) in [(&a, &w), (&hi_a, &hi_w)] {
            let mut want = vec![0; rows * blocks * NB];
            let im2col = (1, kp, 0);
            gemm(
                QIsa::Plain,
                a,
                rows,
                |p| p * kp,
                im2col,
                w,
                blocks * NB,
                &mut want,
            );
            // The definition written out once more, for one value.
            let (p, c) = (rows - 1, blocks * NB - 1);
            let direct: i32 = (0..kp)
                .map(|i| a[p * kp + i] as i32 * w[wpos(kp, i, c)] as i32)
                .sum();
            assert_eq!(want[p * blocks * NB + c], direct);
            for isa in QIsa::available() {
                let mut got = vec![0; rows * blocks * NB];
                gemm(isa, a, rows, |p| p * kp, im2col, w, blocks * NB, &mut got);
                assert_eq!(got, want, "{} (kp {kp})", isa.name());
                // The same rows as runs of 4 bytes 8 bytes apart in a buffer twice as
                // long (how an in-place convolution reads).
                let mut spread = vec![0u8; 2 * a.len() + 8];
                for (i, &v) in a.iter().enumerate() {
                    spread[2 * (i / 4) * 4 + i % 4] = v;
                }
                let runs = (kp / 4, 4, 8);
                let mut got = vec![0; rows * blocks * NB];
                gemm(
                    isa,
                    &spread,
                    rows,
                    |p| 2 * p * kp,
                    runs,
                    w,
                    blocks * NB,
                    &mut got,
                );
                assert_eq!(got, want, "{} in runs (kp {kp})", isa.name());
            }
        }
    }
}

#[test]
fn a_quantized_convolution_follows_the_fp32_one() {
    // 3x3 with 20 channels in and 24 out, and 7x7 with 3 in (cells padded to 4 bytes) and
    // 32 out; zero-padded, stride 1 and 2, inputs in [0, 4].
    for (cin, cout, k) in [(20, 24, 3), (3, 32, 7)] {
        let w: Vec<f32> = seq(cout * cin * k * k, 5, -100, 100)
            .into_iter()
            .map(|v| v as f32 / 400.0)
            .collect();
        let b: Vec<f32> = (0..cout).map(|i| i as f32 / 10.0 - 1.0).collect();
        let x = Map {
            w: 11,
            h: 9,
            c: cin,
            data: seq(11 * 9 * cin, 6, 0, 1000)
                .into_iter()
                .map(|v| v as f32 / 250.0)
                .collect(),
        };
        for (stride, relu) in [(1, true), (2, false)] {
            let mut conv = Conv::new(k, cin, cout, &w, &b).strided(stride, 1);
            if relu {
                conv.act = Act::Relu;
            }
            let want = conv.apply(&x).unwrap();
            let q = QConv::new(&conv, 0.0, 4.0).unwrap();
            let mut outs = Vec::new();
            for isa in QIsa::available() {
                outs.push(q.apply_with(&x, isa, true).unwrap());
                outs.push(q.apply_with(&x, isa, false).unwrap());
            }
            let got = &outs[0];
            assert!(outs.iter().all(|o| o == got), "kernels differ");
            assert_eq!((got.w, got.h, got.c), (want.w, want.h, want.c));
            let span = want.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = got
                .data
                .iter()
                .zip(&want.data)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            // 7-bit inputs and 8-bit weights: within 2% of the output's range.
            let at = format!("{k}x{k}x{cin}, stride {stride}");
            assert!(err < 0.02 * span, "{at}: error {err} of {span}");
            assert!(
                err > 0.0,
                "{at}: quantization changed nothing: the int8 path did not run"
            );
        }
    }
}

#[test]
fn a_negative_input_range_keeps_zero_exact() {
    let (sx, zx) = input_quant(-1.0, 3.0);
    assert_eq!(zx, 32); // 127 · 1/4 rounded
    assert!((sx - 4.0 / 127.0).abs() < 1e-7);
    assert_eq!(input_quant(0.0, 5.0).1, 0);
}
