//! AdamW with global gradient-norm clipping and a linear warm-up / linear decay schedule, kept on
//! plain `Vec<f32>` so its moments can be saved and restored for `--resume`.

use candle_core::{Tensor, Var};

/// One trainable tensor's AdamW state.
pub struct Slot {
    pub name: String,
    pub var: Var,
    /// Decoupled weight decay applies (matrices and embeddings, not biases or LayerNorm gains,
    /// as BERT fine-tuning recipes do).
    pub decay: bool,
    pub w: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

/// AdamW over the slots; `step` counts updates done.
pub struct AdamW {
    pub slots: Vec<Slot>,
    pub step: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub clip: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
    /// Threads for the update of large tensors.
    pub threads: usize,
}

impl AdamW {
    /// The slots for `vars` (name, variable).
    pub fn new(vars: &[(String, Var)], lr: f64, weight_decay: f64, warmup_steps: usize, total_steps: usize) -> AdamW {
        let slots = vars
            .iter()
            .map(|(name, var)| {
                let w = var.as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("f32 parameters");
                let n = w.len();
                Slot {
                    name: name.clone(),
                    var: var.clone(),
                    decay: var.as_tensor().rank() >= 2,
                    w,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        AdamW {
            slots,
            step: 0,
            lr,
            weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip: 1.0,
            warmup_steps,
            total_steps: total_steps.max(1),
            threads: 1,
        }
    }

    /// The learning rate for the next step: linear warm-up, then linear decay to 0.
    pub fn current_lr(&self) -> f64 {
        let s = self.step as f64;
        if self.step < self.warmup_steps {
            self.lr * (s + 1.0) / self.warmup_steps as f64
        } else {
            let left = (self.total_steps.saturating_sub(self.step)) as f64;
            let span = (self.total_steps - self.warmup_steps.min(self.total_steps)).max(1) as f64;
            self.lr * (left / span).clamp(0.0, 1.0)
        }
    }

    /// One update from `grads`; returns the gradient norm before clipping. A slot without a
    /// gradient (a tensor the loss did not reach) is left alone.
    ///
    /// Errors: a non-finite gradient (the step is skipped and the weights are unchanged).
    pub fn update(&mut self, grads: &candle_core::backprop::GradStore) -> Result<f64, String> {
        let mut gs: Vec<Option<Vec<f32>>> = Vec::with_capacity(self.slots.len());
        let mut sq = 0f64;
        for s in &self.slots {
            let g = match grads.get(s.var.as_tensor()) {
                Some(g) => Some(g.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string())?),
                None => None,
            };
            if let Some(g) = &g {
                sq += g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
            }
            gs.push(g);
        }
        let norm = sq.sqrt();
        if !norm.is_finite() {
            return Err("the gradient is not finite (try a lower --lr)".into());
        }
        let scale = if self.clip > 0.0 && norm > self.clip { (self.clip / norm) as f32 } else { 1.0 };
        let lr = self.current_lr();
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let (b1, b2, eps) = (self.beta1 as f32, self.beta2 as f32, self.eps as f32);
        let step_size = (lr / bc1) as f32;
        let inv_bc2 = (1.0 / bc2) as f32;
        for (s, g) in self.slots.iter_mut().zip(gs) {
            let Some(g) = g else { continue };
            let decay = if s.decay { (lr * self.weight_decay) as f32 } else { 0.0 };
            let apply = |w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
                for i in 0..g.len() {
                    let gi = g[i] * scale;
                    m[i] = b1 * m[i] + (1.0 - b1) * gi;
                    v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                    let denom = (v[i] * inv_bc2).sqrt() + eps;
                    w[i] -= decay * w[i] + step_size * m[i] / denom;
                }
            };
            // Element-wise, so splitting across threads changes no result; only the embedding
            // table (millions of entries) is worth it.
            let parts = self.threads.clamp(1, 16);
            if parts > 1 && g.len() >= 1 << 20 {
                let chunk = g.len().div_ceil(parts);
                std::thread::scope(|scope| {
                    let it =
                        s.w.chunks_mut(chunk)
                            .zip(s.m.chunks_mut(chunk))
                            .zip(s.v.chunks_mut(chunk))
                            .zip(g.chunks(chunk));
                    for (((w, m), v), g) in it {
                        scope.spawn(move || apply(w, m, v, g));
                    }
                });
            } else {
                apply(&mut s.w, &mut s.m, &mut s.v, &g);
            }
            let t = Tensor::from_slice(&s.w, s.var.as_tensor().shape(), s.var.as_tensor().device())
                .map_err(|e| e.to_string())?;
            s.var.set(&t).map_err(|e| e.to_string())?;
        }
        Ok(norm)
    }

    /// Sets every slot's variable to `w` (after a restore).
    pub fn sync_vars(&self) -> Result<(), String> {
        for s in &self.slots {
            let t = Tensor::from_slice(&s.w, s.var.as_tensor().shape(), s.var.as_tensor().device())
                .map_err(|e| e.to_string())?;
            s.var.set(&t).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn warm_up_then_linear_decay() {
        let mut o = AdamW::new(&[], 1.0, 0.0, 10, 110);
        assert!((o.current_lr() - 0.1).abs() < 1e-12);
        o.step = 9;
        assert!((o.current_lr() - 1.0).abs() < 1e-12);
        o.step = 60;
        assert!((o.current_lr() - 0.5).abs() < 1e-12);
        o.step = 110;
        assert_eq!(o.current_lr(), 0.0);
    }

    #[test]
    fn adamw_minimises_a_quadratic() {
        let x = Var::from_tensor(&Tensor::from_vec(vec![3f32, -2.0], 2, &Device::Cpu).unwrap()).unwrap();
        let mut o = AdamW::new(&[("x".into(), x.clone())], 0.1, 0.0, 0, 1_000_000);
        for _ in 0..300 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            o.update(&loss.backward().unwrap()).unwrap();
        }
        let v = x.as_tensor().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|a| a.abs() < 0.05), "{v:?}");
    }
}
