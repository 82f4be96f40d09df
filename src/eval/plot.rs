//! Evaluation plots as PNG: the ROC curve (TAR against FAR on a log axis, with the operating
//! point marked), the distance histogram of genuine and impostor pairs, training curves, and
//! presentation-attack scores with their detection-error trade-off.
//!
//! Text is drawn with DejaVu Sans compiled into the binary, so plots look the same on any
//! machine and need no system fonts.

use crate::error::{Error, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const SIZE: (u32, u32) = (900, 640);

/// The kiosk's operating point to mark on the plots.
#[derive(Debug, Clone)]
pub struct OperatingPoint {
    /// Distance threshold.
    pub threshold: f32,
    /// What it is, e.g. "default threshold (FAR 1e-3 on View 1 DevTrain)".
    pub label: String,
}

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Only fails on bytes that are not a font; these are DejaVu's own.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws on a white canvas of [`SIZE`] with `draw`, then writes it to `path` as PNG.
fn render(path: &Path, draw: impl FnOnce(&Area) -> std::result::Result<(), String>) -> Result<()> {
    render_sized(path, SIZE, draw)
}

/// Draws on a white canvas of `size` with `draw`, then writes it to `path` as PNG.
fn render_sized(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> std::result::Result<(), String>,
) -> Result<()> {
    fonts();
    let failed = |e: String| {
        Error::Invalid(format!(
            "{}: drawing the picture failed: {e}",
            path.display()
        ))
    };
    let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|x| failed(x.to_string()))?;
        draw(&root).map_err(failed)?;
        root.present().map_err(|x| failed(x.to_string()))?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, buf)
        .ok_or_else(|| failed("buffer size".into()))?;
    img.save(path)
        .map_err(|x| Error::Invalid(format!("{}: {x}", path.display())))
}

/// Side of a contact-sheet thumbnail, pixels.
pub const THUMB: u32 = 72;
/// Thumbnails per contact-sheet row; a longer group continues on the next row.
pub const PER_ROW: usize = 12;

/// A contact sheet: one labelled row (or more) of thumbnails per group, in order.
pub fn contact_sheet(
    path: &Path,
    groups: &[(String, Vec<crate::recognition::frame::Frame>)],
) -> Result<()> {
    let label_w = 150u32;
    let pad = 6u32;
    let rows: Vec<(Option<&str>, &[crate::recognition::frame::Frame])> = groups
        .iter()
        .flat_map(|(label, thumbs)| {
            let mut chunks: Vec<(Option<&str>, &[crate::recognition::frame::Frame])> = thumbs
                .chunks(PER_ROW)
                .enumerate()
                .map(|(k, c)| ((k == 0).then_some(label.as_str()), c))
                .collect();
            if chunks.is_empty() {
                chunks.push((Some(label.as_str()), &[]));
            }
            chunks
        })
        .collect();
    let width = label_w + PER_ROW as u32 * (THUMB + pad) + pad;
    let height = (rows.len() as u32).max(1) * (THUMB + pad) + pad;
    render_sized(path, (width, height), |root| {
        for (r, (label, thumbs)) in rows.iter().enumerate() {
            let y = (pad + r as u32 * (THUMB + pad)) as i32;
            if let Some(label) = label {
                root.draw(&Text::new(
                    label.to_string(),
                    (8, y + THUMB as i32 / 2 - 9),
                    ("sans-serif", 18).into_font(),
                ))
                .map_err(|x| x.to_string())?;
            }
            for (k, t) in thumbs.iter().enumerate() {
                let small =
                    image::imageops::resize(t, THUMB, THUMB, image::imageops::FilterType::Triangle);
                let x = (label_w + pad + k as u32 * (THUMB + pad)) as i32;
                let el: BitMapElement<(i32, i32)> =
                    BitMapElement::with_owned_buffer((x, y), (THUMB, THUMB), small.into_raw())
                        .ok_or("thumbnail buffer")?;
                root.draw(&el).map_err(|x| x.to_string())?;
            }
        }
        Ok(())
    })
}

/// A chart with a title and room for axis labels.
fn frame<'a, 'b>(root: &'a Area<'b>, title: &str) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70);
    b
}

/// A linear chart's grid and axes with their descriptions, in the pictures' one style.
fn linear_axes<'a>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    x_desc: &str,
    y_desc: &str,
) -> std::result::Result<(), String> {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(|x| x.to_string())
}

/// The series legend in a framed box at `pos`.
fn legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    pos: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(pos)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|x| x.to_string())
}

/// (FAR, TAR) at every distinct distance, FAR ascending; a pair is accepted when its distance
/// is at most the threshold.
pub fn roc_points(genuine: &[f32], impostor: &[f32]) -> Vec<(f64, f64)> {
    let mut all: Vec<(f32, bool)> = genuine
        .iter()
        .map(|&d| (d, true))
        .chain(impostor.iter().map(|&d| (d, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ng, ni) = (genuine.len().max(1) as f64, impostor.len().max(1) as f64);
    let (mut g, mut i) = (0usize, 0usize);
    let mut out = Vec::with_capacity(all.len());
    for (k, &(d, same)) in all.iter().enumerate() {
        if same {
            g += 1;
        } else {
            i += 1;
        }
        if k + 1 == all.len() || all[k + 1].0 != d {
            out.push((i as f64 / ni, g as f64 / ng));
        }
    }
    out
}

fn rates_at(genuine: &[f32], impostor: &[f32], t: f32) -> (f64, f64) {
    // Accepted when d < t, as everywhere in facegate.
    let far = impostor.iter().filter(|&&d| d < t).count() as f64 / impostor.len().max(1) as f64;
    let tar = genuine.iter().filter(|&&d| d < t).count() as f64 / genuine.len().max(1) as f64;
    (far, tar)
}

/// Writes the ROC curve: TAR against FAR, FAR on a log axis from one impostor pair up.
pub fn roc_png(
    path: &Path,
    title: &str,
    genuine: &[f32],
    impostor: &[f32],
    op: Option<&OperatingPoint>,
) -> Result<()> {
    let floor = 1.0 / impostor.len().max(1) as f64;
    let pts: Vec<(f64, f64)> = roc_points(genuine, impostor)
        .into_iter()
        .filter(|p| p.0 >= floor)
        .collect();
    let ymin = pts.first().map(|p| p.1).unwrap_or(0.0);
    let ymin = ((ymin - 0.02) * 20.0).floor().max(0.0) / 20.0;
    render(path, |root| {
        let mut chart = frame(root, title)
            .build_cartesian_2d((floor..1.0f64).log_scale(), ymin..1.0f64)
            .map_err(|x| x.to_string())?;
        chart
            .configure_mesh()
            .x_desc("FAR (false accepts / impostor pairs), log scale")
            .y_desc("TAR (true accepts / genuine pairs)")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(|x| x.to_string())?;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), BLUE.stroke_width(2)))
            .map_err(|x| x.to_string())?
            .label(format!(
                "{} genuine, {} impostor pairs",
                genuine.len(),
                impostor.len()
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        if let Some(op) = op {
            let (far, tar) = rates_at(genuine, impostor, op.threshold);
            let at = (far.max(floor), tar);
            chart
                .draw_series(std::iter::once(Circle::new(at, 7, RED.filled())))
                .map_err(|x| x.to_string())?
                .label(format!(
                    "{}: {:.4} → FAR {:.1e}, TAR {:.2}%",
                    op.label,
                    op.threshold,
                    far,
                    tar * 100.0
                ))
                .legend(|(x, y)| Circle::new((x + 10, y), 6, RED.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// Writes training curves against the optimiser step: each named series is a list of
/// (step, value) points, all on one 0…1 axis (losses, fractions and accuracies of a triplet
/// run all fall there).
pub fn curves_png(path: &Path, title: &str, series: &[(&str, Vec<(f64, f64)>)]) -> Result<()> {
    let xmax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let ymax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let colours = [BLUE, RED, GREEN, MAGENTA, BLACK];
    render(path, |root| {
        let mut chart = frame(root, title)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax * 1.05)
            .map_err(|x| x.to_string())?;
        linear_axes(&mut chart, "optimiser step", "value")?;
        for (k, (name, pts)) in series.iter().enumerate() {
            let c = colours[k % colours.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(|x| x.to_string())?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// Writes the histogram of genuine and impostor distances (each normalised to its own count),
/// with the operating threshold as a vertical line.
pub fn histogram_png(
    path: &Path,
    title: &str,
    genuine: &[f32],
    impostor: &[f32],
    op: Option<&OperatingPoint>,
) -> Result<()> {
    let xmax = genuine
        .iter()
        .chain(impostor)
        .fold(0.1f32, |m, &d| m.max(d))
        .min(4.0) as f64;
    histogram(
        path,
        title,
        ("embedding distance (lower = more alike)", xmax),
        [("genuine pairs", genuine), ("impostor pairs", impostor)],
        op,
    )
}

/// Writes the histogram of bona fide and attack texture scores (each normalised to its own
/// count), with the threshold as a vertical line.
pub fn scores_png(
    path: &Path,
    title: &str,
    real: &[f32],
    attack: &[f32],
    op: Option<&OperatingPoint>,
) -> Result<()> {
    histogram(
        path,
        title,
        ("texture score, P(real)", 1.0),
        [("bona fide", real), ("attacks", attack)],
        op,
    )
}

/// Two normalised histograms (green, red) over `0..xmax` and an optional vertical line.
fn histogram(
    path: &Path,
    title: &str,
    (x_desc, xmax): (&str, f64),
    series: [(&str, &[f32]); 2],
    op: Option<&OperatingPoint>,
) -> Result<()> {
    let bins = 80usize;
    let width = xmax / bins as f64;
    let hist = |d: &[f32]| -> Vec<f64> {
        let mut h = vec![0.0; bins];
        for &x in d {
            let b = ((x.max(0.0) as f64 / width) as usize).min(bins - 1);
            h[b] += 1.0 / d.len().max(1) as f64;
        }
        h
    };
    let hs = series.map(|(_, d)| hist(d));
    let ymax = hs.iter().flatten().fold(0.0f64, |m, &v| m.max(v)) * 1.1;
    render(path, |root| {
        let mut chart = frame(root, title)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax.max(1e-3))
            .map_err(|x| x.to_string())?;
        linear_axes(&mut chart, x_desc, "fraction")?;
        for ((h, colour), (name, d)) in hs.iter().zip([GREEN, RED]).zip(series) {
            chart
                .draw_series(h.iter().enumerate().map(|(b, &v)| {
                    let x0 = b as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width, v)], colour.mix(0.45).filled())
                }))
                .map_err(|x| x.to_string())?
                .label(format!("{name} ({})", d.len()))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 20, y + 6)], colour.mix(0.45).filled())
                });
        }
        if let Some(op) = op {
            let t = op.threshold as f64;
            chart
                .draw_series(LineSeries::new(
                    [(t, 0.0), (t, ymax)],
                    BLACK.stroke_width(2),
                ))
                .map_err(|x| x.to_string())?
                .label(format!("{}: {:.4}", op.label, op.threshold))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// Writes a detection-error trade-off curve: BPCER against APCER, both 0..1.
pub fn det_png(
    path: &Path,
    title: &str,
    points: &[(f64, f64)],
    mark: Option<(f64, f64, &str)>,
) -> Result<()> {
    render(path, |root| {
        let mut chart = frame(root, title)
            .build_cartesian_2d(0.0..1.0f64, 0.0..1.0f64)
            .map_err(|x| x.to_string())?;
        linear_axes(
            &mut chart,
            "APCER (attacks accepted)",
            "BPCER (people refused)",
        )?;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                BLUE.stroke_width(2),
            ))
            .map_err(|x| x.to_string())?
            .label("texture check")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        if let Some((a, b, label)) = mark {
            chart
                .draw_series(std::iter::once(Circle::new((a, b), 7, RED.filled())))
                .map_err(|x| x.to_string())?
                .label(format!(
                    "{label}: APCER {:.1}%, BPCER {:.1}%",
                    a * 100.0,
                    b * 100.0
                ))
                .legend(|(x, y)| Circle::new((x + 10, y), 6, RED.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_points_on_known_distances() {
        // Genuine 0.1 0.3; impostor 0.2 0.4 0.5 0.6.
        let p = roc_points(&[0.1, 0.3], &[0.2, 0.4, 0.5, 0.6]);
        assert_eq!(
            p,
            vec![
                (0.0, 0.5),
                (0.25, 0.5),
                (0.25, 1.0),
                (0.5, 1.0),
                (0.75, 1.0),
                (1.0, 1.0)
            ]
        );
        // Ties: one point for the shared distance.
        assert_eq!(roc_points(&[0.2], &[0.2]), vec![(1.0, 1.0)]);
    }

    #[test]
    fn plots_are_written_as_png() {
        let dir = tempfile::tempdir().unwrap();
        let g: Vec<f32> = (0..300).map(|i| 0.2 + 0.3 * (i as f32 / 300.0)).collect();
        let im: Vec<f32> = (0..3000)
            .map(|i| 0.45 + 1.2 * (i as f32 / 3000.0))
            .collect();
        let op = OperatingPoint {
            threshold: 0.5,
            label: "test".into(),
        };
        let (roc, hist) = (dir.path().join("roc.png"), dir.path().join("hist.png"));
        roc_png(&roc, "t", &g, &im, Some(&op)).unwrap();
        histogram_png(&hist, "t", &g, &im, Some(&op)).unwrap();
        for (name, p) in [("roc", roc), ("hist", hist)] {
            let img = image::open(&p).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), SIZE);
            // Not blank: plenty of non-white pixels (curve, bars, text).
            let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
            assert!(inked > 5000, "{name}: {inked} inked pixels");
        }
    }
}
