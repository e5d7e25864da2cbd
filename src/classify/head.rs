//! A trained head: a linear softmax classifier over pooled hidden states, trained on a labelled
//! file and saved as a small JSON file with its provenance (base model and hash, labels, data,
//! held-out metrics, and the prompt and pooling the features came from).

use super::calibrate::softmax;
use crate::engine::{Pooling, PromptSpec};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FORMAT: &str = "moat-classify-head/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// Registry name (or file name) of the base model.
    pub model: String,
    pub model_sha256: String,
    pub training_set: String,
    pub n_train: usize,
    pub n_heldout: usize,
    pub heldout_accuracy: Option<f64>,
    pub heldout_macro_f1: Option<f64>,
    pub created: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Head {
    pub format: String,
    pub labels: Vec<String>,
    pub pooling: Pooling,
    /// Prompt wrapped around each line before pooling (`{text}` = the line).
    pub template: String,
    pub max_tokens: usize,
    /// Feature standardisation.
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    /// `weights[label][feature]`.
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    pub epochs: usize,
    pub lr: f32,
    pub l2: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { epochs: 300, lr: 0.05, l2: 1e-3 }
    }
}

impl Head {
    pub fn prompt(&self) -> PromptSpec {
        PromptSpec::raw(self.template.clone())
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Label probabilities for one feature vector.
    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        let z: Vec<f32> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| {
                b + w
                    .iter()
                    .zip(x)
                    .zip(self.mean.iter().zip(&self.scale))
                    .map(|((w, x), (m, s))| w * (x - m) / s)
                    .sum::<f32>()
            })
            .collect();
        softmax(&z)
    }

    /// Full-batch softmax regression with Adam and L2 on standardised features.
    #[allow(clippy::too_many_arguments)]
    pub fn train(
        labels: Vec<String>,
        xs: &[Vec<f32>],
        ys: &[usize],
        pooling: Pooling,
        template: String,
        max_tokens: usize,
        opts: TrainOptions,
        provenance: Provenance,
    ) -> Head {
        let d = xs.first().map(|x| x.len()).unwrap_or(0);
        let k = labels.len();
        let n = xs.len().max(1) as f32;
        let mut mean = vec![0.0f32; d];
        for x in xs {
            for (m, v) in mean.iter_mut().zip(x) {
                *m += v / n;
            }
        }
        let mut scale = vec![0.0f32; d];
        for x in xs {
            for ((s, v), m) in scale.iter_mut().zip(x).zip(&mean) {
                *s += (v - m) * (v - m) / n;
            }
        }
        for s in scale.iter_mut() {
            *s = s.sqrt().max(1e-6);
        }
        let z: Vec<Vec<f32>> =
            xs.iter().map(|x| x.iter().zip(&mean).zip(&scale).map(|((v, m), s)| (v - m) / s).collect()).collect();
        let mut w = vec![vec![0.0f32; d]; k];
        let mut b = vec![0.0f32; k];
        let (mut mw, mut vw) = (vec![vec![0.0f32; d]; k], vec![vec![0.0f32; d]; k]);
        let (mut mb, mut vb) = (vec![0.0f32; k], vec![0.0f32; k]);
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        for t in 1..=opts.epochs {
            let mut gw = vec![vec![0.0f32; d]; k];
            let mut gb = vec![0.0f32; k];
            for (x, &y) in z.iter().zip(ys) {
                let logits: Vec<f32> =
                    w.iter().zip(&b).map(|(wr, bb)| bb + wr.iter().zip(x).map(|(a, c)| a * c).sum::<f32>()).collect();
                let p = softmax(&logits);
                for c in 0..k {
                    let g = (p[c] - if c == y { 1.0 } else { 0.0 }) / n;
                    gb[c] += g;
                    for (gwv, xv) in gw[c].iter_mut().zip(x) {
                        *gwv += g * xv;
                    }
                }
            }
            let c1 = 1.0 - b1.powi(t as i32);
            let c2 = 1.0 - b2.powi(t as i32);
            for c in 0..k {
                for j in 0..d {
                    let g = gw[c][j] + opts.l2 * w[c][j];
                    mw[c][j] = b1 * mw[c][j] + (1.0 - b1) * g;
                    vw[c][j] = b2 * vw[c][j] + (1.0 - b2) * g * g;
                    w[c][j] -= opts.lr * (mw[c][j] / c1) / ((vw[c][j] / c2).sqrt() + eps);
                }
                mb[c] = b1 * mb[c] + (1.0 - b1) * gb[c];
                vb[c] = b2 * vb[c] + (1.0 - b2) * gb[c] * gb[c];
                b[c] -= opts.lr * (mb[c] / c1) / ((vb[c] / c2).sqrt() + eps);
            }
        }
        Head {
            format: FORMAT.into(),
            labels,
            pooling,
            template,
            max_tokens,
            mean,
            scale,
            weights: w,
            bias: b,
            provenance,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a head serialises")
    }

    pub fn from_json(text: &str) -> Result<Head, String> {
        let h: Head = serde_json::from_str(text).map_err(|e| format!("not a moat classifier head: {e}"))?;
        if h.format != FORMAT {
            return Err(format!("head format {:?}, this moat reads {FORMAT:?}", h.format));
        }
        let d = h.mean.len();
        if h.labels.len() < 2
            || h.weights.len() != h.labels.len()
            || h.bias.len() != h.labels.len()
            || h.scale.len() != d
            || h.weights.iter().any(|w| w.len() != d)
        {
            return Err("the head file is inconsistent (label/weight sizes differ); train it again".into());
        }
        Ok(h)
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        crate::atomic_write::write_atomic(path, self.to_json().as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    pub fn load(path: &Path) -> Result<Head, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read head {}: {e}", path.display()))?;
        Head::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prov() -> Provenance {
        Provenance {
            model: "m".into(),
            model_sha256: "00".into(),
            training_set: "t.tsv".into(),
            n_train: 4,
            n_heldout: 0,
            heldout_accuracy: None,
            heldout_macro_f1: None,
            created: "now".into(),
        }
    }

    #[test]
    fn learns_a_separable_problem_and_round_trips() {
        let xs = vec![vec![1.0, 0.1], vec![0.9, -0.2], vec![-1.0, 0.0], vec![-0.8, 0.3]];
        let ys = vec![0, 0, 1, 1];
        let labels = vec!["pos".to_string(), "neg".to_string()];
        let h = Head::train(labels, &xs, &ys, Pooling::Mean, "{text}".into(), 64, TrainOptions::default(), prov());
        assert!(h.predict(&[1.2, 0.0])[0] > 0.9);
        assert!(h.predict(&[-1.2, 0.0])[1] > 0.9);
        let back = Head::from_json(&h.to_json()).unwrap();
        assert_eq!(back, h);
        assert!(Head::from_json("{}").is_err());
    }
}
