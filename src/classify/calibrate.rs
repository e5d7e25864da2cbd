//! Turning label logits into probabilities, and contextual calibration (Zhao et al. 2021): score
//! content-free inputs with the same prompt, then divide each label's probability by the
//! probability the prompt alone gives it, so a small model's bias towards one label cancels out.

/// Inputs with no content: whatever the model predicts for them is the prompt's own bias.
pub const CONTENT_FREE: &[&str] = &["N/A", "[MASK]", "..."];

pub fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![1.0 / x.len().max(1) as f32; x.len()];
    }
    let e: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    /// Mean label probabilities over the content-free inputs.
    pub prior: Vec<f32>,
}

impl Calibration {
    /// From the label logits of each content-free input.
    pub fn from_logits(rows: &[Vec<f32>]) -> Option<Calibration> {
        let k = rows.first()?.len();
        let mut prior = vec![0.0f32; k];
        for r in rows {
            for (p, q) in prior.iter_mut().zip(softmax(r)) {
                *p += q / rows.len() as f32;
            }
        }
        Some(Calibration { prior })
    }

    /// Reweights probabilities by 1/prior and renormalises.
    pub fn apply(&self, probs: &[f32]) -> Vec<f32> {
        let w: Vec<f32> = probs.iter().zip(&self.prior).map(|(p, q)| p / q.max(1e-6)).collect();
        let s: f32 = w.iter().sum();
        if s > 0.0 && s.is_finite() {
            w.iter().map(|v| v / s).collect()
        } else {
            probs.to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_cancels_a_prompt_bias() {
        // The prompt alone says 80/20; a line the model puts at 80/20 is really undecided.
        let c = Calibration { prior: vec![0.8, 0.2] };
        let p = c.apply(&[0.8, 0.2]);
        assert!((p[0] - 0.5).abs() < 1e-6);
        let p = c.apply(&[0.6, 0.4]);
        assert!(p[1] > p[0]);
        let c = Calibration::from_logits(&[vec![0.0, 0.0], vec![(3.0f32).ln(), 0.0]]).unwrap();
        assert!((c.prior[0] - 0.625).abs() < 1e-6);
    }

    #[test]
    fn calibration_with_three_labels_restores_the_class_the_prompt_starves() {
        // Labels positive, neutral, negative. The prompt alone (content-free inputs) leans to
        // positive and rarely says neutral, as gemma3-270m's market prompt measured (0.46/0.17/0.37).
        let c = Calibration::from_logits(&[vec![1.0, -0.5, 0.7], vec![1.2, -0.4, 0.6]]).unwrap();
        let argmax = |p: &[f32]| p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        // A line that raises neutral well above what the prompt alone gives it, yet not to the
        // top of the raw scores: uncalibrated it reads positive, calibrated neutral.
        let line = softmax(&[1.0, 0.6, 0.6]);
        assert_eq!(argmax(&line), 0);
        let p = c.apply(&line);
        assert_eq!(argmax(&p), 1, "{p:?}");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // A clearly negative line stays negative, and the prompt's own bias maps to uniform.
        assert_eq!(argmax(&c.apply(&softmax(&[0.2, -0.5, 1.5]))), 2);
        let flat = c.apply(&c.prior);
        assert!(flat.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-5), "{flat:?}");
    }

    #[test]
    fn softmax_is_stable() {
        let p = softmax(&[1000.0, 1000.0]);
        assert!((p[0] - 0.5).abs() < 1e-6);
        assert_eq!(softmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), vec![0.5, 0.5]);
    }
}
