//! A bridge between two networks: a map from a newer network's embeddings (v2) into an older
//! one's normalised space (v1), so that a kiosk running v2 can match its probes against
//! templates enrolled with v1 ([`crate::identity::matcher`]) while the gallery migrates.
//! `facegate train --compatible-with V1 --images DIR --out FILE` makes one.
//!
//! The map is linear, `W x₂`, or linear plus a residual hidden layer, `W x₂ + U relu(V x₂)`
//! ([`Residual`]). A probe `x₂` is compared with a v1 template `t` as `‖t/‖t‖ − map(x₂)‖`
//! (fitted to v1's normalised embeddings; not normalising its output measured better on
//! LFW). Those
//! distances have their own scale; the file carries their calibrated [`FarCurve`] (measured
//! on people the map was not fitted on), which puts them on the reference scale of every
//! configured threshold.
//!
//! File format (text): `facegate-bridge v2 <v2 model id> <v2 dim> <v1 model id> <v1 dim>
//! <hidden units>`, `far_curve <far>:<threshold>,...` (loosest first), `sha256 <hex>` of
//! those two lines and the weights line, then the weights (`W`, then `V` and `U`, each
//! row-major, little-endian f32, base64). Version 1 (no hidden units: a linear map) still
//! loads. A damaged file, or one made for other networks, is refused.
//!
//! ```
//! use facegate::identity::bridge::{Bridge, Map};
//! use facegate::identity::threshold::FarCurve;
//! let map = Map { rows: 2, cols: 3, w: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0] };
//! let curve = FarCurve::new(vec![(1e-2, 0.9), (1e-3, 0.8)]).unwrap();
//! let b = Bridge::new("v2:aa", "v1:bb", map.into(), curve);
//! assert_eq!(b.project(&[3.0, 4.0, 9.0]), vec![3.0, 4.0]);
//! ```

use crate::error::{Error, Result};
use crate::identity::threshold::FarCurve;
use crate::recognition::head::{decode_weights, encode_weights};
use std::path::Path;

/// A linear map `rows × cols`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    /// Output dimension.
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
    /// The weights.
    pub w: Vec<f32>,
}

impl Map {
    /// `W x`.
    pub fn linear(&self, x: &[f32]) -> Vec<f32> {
        matvec(&self.w, self.cols, x)
    }

    /// `W x / ‖W x‖`.
    pub fn unit(&self, x: &[f32]) -> Vec<f32> {
        unit(&self.linear(x))
    }
}

/// `v / ‖v‖`.
pub fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / n).collect()
}

/// `W x + U relu(V x)`: a linear map plus a residual hidden layer (none with `hidden` 0).
/// Parameters in one buffer: `W` (rows × cols), `V` (hidden × cols), `U` (rows × hidden),
/// each row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Residual {
    /// Output dimension.
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
    /// Hidden units.
    pub hidden: usize,
    /// `W`, `V`, `U`.
    pub p: Vec<f32>,
}

impl From<Map> for Residual {
    fn from(m: Map) -> Self {
        Residual {
            rows: m.rows,
            cols: m.cols,
            hidden: 0,
            p: m.w,
        }
    }
}

fn matvec(m: &[f32], cols: usize, x: &[f32]) -> Vec<f32> {
    m.chunks_exact(cols.max(1))
        .map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

impl Residual {
    /// `W`, `V` and `U`.
    pub fn parts(&self) -> (&[f32], &[f32], &[f32]) {
        let (w, rest) = self.p.split_at(self.rows * self.cols);
        let (v, u) = rest.split_at(self.hidden * self.cols);
        (w, v, u)
    }

    /// The hidden layer's input `V x`.
    pub fn pre(&self, x: &[f32]) -> Vec<f32> {
        matvec(self.parts().1, self.cols, x)
    }

    /// `W x + U relu(V x)`.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let (w, _, u) = self.parts();
        let y = matvec(w, self.cols, x);
        if self.hidden == 0 {
            return y;
        }
        let h: Vec<f32> = self.pre(x).into_iter().map(|a| a.max(0.0)).collect();
        y.into_iter()
            .zip(matvec(u, self.hidden, &h))
            .map(|(a, b)| a + b)
            .collect()
    }
}

/// A map from `from` (v2) embeddings into `to` (v1) normalised space, with the threshold
/// curve of the distances it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Bridge {
    /// Model id of the probes it takes (v2).
    pub from: String,
    /// Model id of the templates it compares with (v1).
    pub to: String,
    /// `to`'s dimension × `from`'s.
    pub map: Residual,
    /// The calibrated curve of template-vs-projected-probe distances.
    pub curve: FarCurve,
}

const TAG: &str = "facegate-bridge";

impl Bridge {
    /// A bridge from `from` to `to` through `map`, whose distances follow `curve`.
    pub fn new(from: &str, to: &str, map: Residual, curve: FarCurve) -> Self {
        Bridge {
            from: from.into(),
            to: to.into(),
            map,
            curve,
        }
    }

    /// A v2 embedding in v1's normalised space: `W x`.
    pub fn project(&self, x: &[f32]) -> Vec<f32> {
        self.map.apply(x)
    }

    /// `bridge:` and the first 12 hex digits of the file's sha256.
    pub fn id(&self) -> String {
        let (h, c, w) = self.lines();
        format!("bridge:{}", &digest(&h, &c, &w)[..12])
    }

    fn lines(&self) -> (String, String, String) {
        let curve: Vec<String> = self
            .curve
            .points()
            .iter()
            .map(|(f, t)| format!("{f:e}:{t}"))
            .collect();
        (
            format!(
                "{TAG} v2 {} {} {} {} {}",
                self.from, self.map.cols, self.to, self.map.rows, self.map.hidden
            ),
            format!("far_curve {}", curve.join(",")),
            encode_weights(&self.map.p),
        )
    }

    /// Writes the bridge to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let (h, c, w) = self.lines();
        let text = format!("{h}\n{c}\nsha256 {}\n{w}\n", digest(&h, &c, &w));
        crate::files::write_atomic(path, text.as_bytes(), crate::files::Backup::None)
    }

    /// Reads the bridge at `path`, which must take `from` embeddings of `from_dim` values.
    /// The v1 model it targets is whatever the file says ([`Bridge::to`]): the gallery
    /// decides whether that is the one it was enrolled with.
    pub fn load(path: &Path, from: &str, from_dim: usize) -> Result<Self> {
        Self::parse(
            path,
            crate::files::read_capped(path, 64 << 20)?,
            from,
            from_dim,
        )
    }

    /// [`Bridge::load`] from the file's bytes (already read, e.g. to check a signature on
    /// exactly these bytes); `path` names it in errors.
    pub fn parse(path: &Path, bytes: Vec<u8>, from: &str, from_dim: usize) -> Result<Self> {
        let bad = |why: String| Error::model(path, format!("not a usable bridge: {why}"));
        let text = String::from_utf8(bytes).map_err(|_| bad("not text".into()))?;
        let mut lines = text.lines();
        let header_line = lines.next().unwrap_or("");
        let header: Vec<&str> = header_line.split(' ').collect();
        let (tag, made_from, cols, to, rows, hidden) = match header.as_slice() {
            [t, v, m, c, to, r] if *v == "v1" => (*t, *m, *c, *to, *r, "0"),
            [t, v, m, c, to, r, h] if *v == "v2" => (*t, *m, *c, *to, *r, *h),
            _ => return Err(bad(format!("no {TAG} v1 or v2 header"))),
        };
        if tag != TAG {
            return Err(bad(format!("no {TAG} header")));
        }
        let hidden: usize = hidden
            .parse()
            .ok()
            .filter(|h| *h <= 4096)
            .ok_or_else(|| bad("bad hidden size".into()))?;
        let cols: usize = cols.parse().map_err(|_| bad("bad input size".into()))?;
        let rows: usize = rows
            .parse()
            .ok()
            .filter(|r| (1..=4096).contains(r))
            .ok_or_else(|| bad("bad output size".into()))?;
        if made_from != from || cols != from_dim {
            return Err(bad(format!(
                "made for probes of {made_from} ({cols} values), this kiosk runs {from} ({from_dim})"
            )));
        }
        let curve_line = lines.next().unwrap_or("");
        let want = lines
            .next()
            .and_then(|l| l.strip_prefix("sha256 "))
            .ok_or_else(|| bad("no sha256 line".into()))?;
        let weights = lines.next().unwrap_or("").trim();
        if digest(header_line, curve_line, weights) != want.trim() {
            return Err(bad("damaged: the file does not match its sha256".into()));
        }
        let points = curve_line
            .strip_prefix("far_curve ")
            .ok_or_else(|| bad("no far_curve line".into()))?
            .split(',')
            .map(|p| {
                let (f, t) = p.split_once(':')?;
                Some((f.parse().ok()?, t.parse().ok()?))
            })
            .collect::<Option<Vec<(f64, f32)>>>()
            .ok_or_else(|| bad("far_curve: not far:threshold pairs".into()))?;
        let curve = FarCurve::new(points).map_err(|e| bad(format!("far_curve: {e}")))?;
        let p = decode_weights(weights, 1, rows * cols + hidden * (cols + rows)).map_err(bad)?;
        let map = Residual {
            rows,
            cols,
            hidden,
            p,
        };
        Ok(Bridge::new(from, to, map, curve))
    }
}

fn digest(header: &str, curve: &str, weights: &str) -> String {
    crate::recognition::models::sha256_hex(format!("{header}\n{curve}\n{weights}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bridge {
        let map = Map {
            rows: 2,
            cols: 3,
            w: vec![0.5, -1.0, 0.25, 2.0, 0.0, 1.5],
        };
        let curve = FarCurve::new(vec![(1e-2, 0.9), (1e-3, 0.8), (1e-4, 0.7)]).unwrap();
        Bridge::new("facenet:aa", "dlib_fp32:bb", map.into(), curve)
    }

    #[test]
    fn a_residual_bridge_round_trips_and_a_version_1_file_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let b = sample();
        // W (2x3) then V (2 hidden x 3) then U (2 x 2).
        let mut p = b.map.p.clone();
        p.extend([1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.5, 0.0, 0.0, 2.0]);
        let r = Bridge {
            map: Residual {
                hidden: 2,
                p,
                ..b.map.clone()
            },
            ..b.clone()
        };
        // x = (3, 4, 9): W x = (0.5*3 - 4 + 2.25, 6 + 13.5) = (-0.25, 19.5); V x = (3, -4),
        // relu (3, 0); U h = (1.5, 0).
        assert_eq!(r.project(&[3.0, 4.0, 9.0]), vec![1.25, 19.5]);
        let p2 = dir.path().join("r.bridge");
        r.save(&p2).unwrap();
        assert_eq!(Bridge::load(&p2, "facenet:aa", 3).unwrap(), r);
        // Version 1: the header without hidden units.
        let (h, c, w) = b.lines();
        let h1 = h.replace(" v2 ", " v1 ").trim_end_matches(" 0").to_string();
        let p1 = dir.path().join("v1.bridge");
        std::fs::write(
            &p1,
            format!("{h1}\n{c}\nsha256 {}\n{w}\n", digest(&h1, &c, &w)),
        )
        .unwrap();
        assert_eq!(Bridge::load(&p1, "facenet:aa", 3).unwrap(), b);
    }

    #[test]
    fn files_round_trip_and_damage_or_other_networks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.bridge");
        let b = sample();
        b.save(&p).unwrap();
        let back = Bridge::load(&p, "facenet:aa", 3).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.id(), b.id());
        let e = Bridge::load(&p, "facenet:cc", 3).unwrap_err().to_string();
        assert!(e.contains("made for probes of facenet:aa"), "{e}");
        assert!(Bridge::load(&p, "facenet:aa", 4).is_err());
        let text = std::fs::read_to_string(&p).unwrap();
        for (from, to) in [
            ("0.8", "0.85"),
            ("1e-2", "1e-1"),
            ("dlib_fp32:bb", "dlib_fp32:bc"),
        ] {
            std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
            let e = Bridge::load(&p, "facenet:aa", 3).unwrap_err().to_string();
            assert!(e.contains("damaged"), "{from}: {e}");
        }
        std::fs::write(&p, "").unwrap();
        assert!(Bridge::load(&p, "facenet:aa", 3).is_err());
    }
}
