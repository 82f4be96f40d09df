//! `facegate bench IMG`: per-stage latency on a 640x480 frame, and 1:N search time.

use super::Global;
use clap::Args;
use facegate::eval::bench;
use facegate::recognition::frame::load_image;
use facegate::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// A photo with one face (fitted into a 640x480 frame).
    image: PathBuf,
    /// Runs per stage (at least 1).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    runs: u32,
    /// Instead of the timings: where each network spends its time on one thread, per
    /// operator kind and the matrix-product kernels this CPU's plans selected.
    #[arg(long)]
    profile: bool,
}

/// Times every stage and prints a table (or the rows as JSON).
pub fn run(g: &Global, a: &BenchArgs) -> Result<ExitCode> {
    let store = g.store()?;
    let frame = bench::kiosk_frame(&load_image(&a.image)?);
    let runs = a.runs as usize;
    if a.profile {
        let rows = bench::profile(&store, &frame, runs)?;
        g.emit(&rows, || {
            let mut s = format!(
                "{:<13} {:<22} {:<28} {:>5} {:>9} {:>6} {:>8} {:>8}\n",
                "model", "op", "kernel", "nodes", "ms/run", "share", "MMAC", "GMAC/s"
            );
            for r in &rows {
                s += &format!(
                    "{:<13} {:<22} {:<28} {:>5} {:>9.3} {:>5.1}% {:>8} {:>8}\n",
                    r.model,
                    r.op,
                    r.kernel,
                    r.nodes,
                    r.ms,
                    r.share * 100.0,
                    if r.macs > 0 { format!("{:.1}", r.macs as f64 / 1e6) } else { String::new() },
                    if r.macs > 0 && r.ms > 0.0 {
                        format!("{:.1}", r.macs as f64 / r.ms / 1e6)
                    } else {
                        String::new()
                    }
                );
            }
            s += "(one thread; P-Net on the pyramid's first level, R-Net and O-Net on one candidate, embedders on the face's chip)\n";
            s
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = bench::stages(&store, &frame, runs)?;
    t.extend(bench::search(&[1_000, 10_000, 100_000], runs.min(20))?);
    t.extend(bench::gallery_load(&[10_000, 100_000], runs.clamp(1, 3))?);
    g.emit(&t, || {
        let mut s = format!(
            "{:<20} {:>8} {:>10} {:>10}\n",
            "stage", "threads", "median ms", "p95 ms"
        );
        for x in &t {
            s += &format!(
                "{:<20} {:>8} {:>10.2} {:>10.2}\n",
                x.stage, x.threads, x.median_ms, x.p95_ms
            );
        }
        s += "(640x480 frame with one face; detect_N: minimum face N px; frame: detect_40 + align + embed_fp32)\n";
        s += &format!(
            "(embed_int8: dlib_q8 on the {} int8 kernel; FACEGATE_INT8_KERNEL picks another)\n",
            facegate::recognition::net::int8_kernel()
        );
        s
    })?;
    Ok(ExitCode::SUCCESS)
}
