//! llama.cpp's BERT sequence classifier, written in candle ops that all have a backward pass.
//!
//! The graph is the one llama.cpp runs for a `bert` GGUF with RANK pooling (src/models/bert.cpp
//! and llama-graph.cpp in the llama.cpp that llama-cpp-sys-2 0.1.161 vendors), so what is trained
//! here is what `moat classify` later runs: token + token-type-0 + position embeddings →
//! LayerNorm → per layer: non-causal multi-head attention with biases (scale 1/√head_dim) →
//! residual → LayerNorm → up → GELU (tanh form, as `ggml_gelu`) → down → residual → LayerNorm;
//! then the [CLS] row → `cls` + bias → tanh → `cls.output` + bias → logits (no softmax).
//!
//! Every op is a plain candle op (matmul, broadcast arithmetic, exp, tanh, gelu, index_select),
//! never a fused kernel: candle-nn's fused LayerNorm and softmax have no backward pass, so
//! gradients would silently stop at them while the loss still falls (candle #3011, #3752).
//! `tests::every_trainable_weight_gets_a_gradient` and the finite-difference test hold this.

use candle_core::{DType, Device, Tensor, Var, D};

/// The encoder's shape, from a Hugging Face `config.json` (BERT family).
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
}

impl BertConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// GGUF names of one layer's tensors, in export order. Weights are `[out, in]` (as PyTorch and
/// the upstream converter store them; ggml reads them as `ne = [in, out]`).
pub const LAYER_TENSORS: [&str; 8] =
    ["attn_q", "attn_k", "attn_v", "attn_output", "attn_output_norm", "ffn_up", "ffn_down", "layer_output_norm"];

/// Every parameter, by GGUF tensor name, in the order llama.cpp's converter writes them.
pub struct BertParams {
    pub config: BertConfig,
    pub n_labels: usize,
    /// `(gguf name, variable)`; matrices `[out, in]`, vectors `[n]`, embeddings `[rows, hidden]`.
    pub vars: Vec<(String, Var)>,
}

/// The tensor names of a model with `n_layers` layers, in export order.
pub fn tensor_names(n_layers: usize) -> Vec<String> {
    let mut names: Vec<String> =
        ["token_embd.weight", "token_types.weight", "position_embd.weight"].iter().map(|s| s.to_string()).collect();
    names.push("token_embd_norm.weight".into());
    names.push("token_embd_norm.bias".into());
    for i in 0..n_layers {
        for t in LAYER_TENSORS {
            names.push(format!("blk.{i}.{t}.weight"));
            names.push(format!("blk.{i}.{t}.bias"));
        }
    }
    for t in ["cls", "cls.output"] {
        names.push(format!("{t}.weight"));
        names.push(format!("{t}.bias"));
    }
    names
}

/// Dropout during training: a seeded mask source, so a run is the same for a given seed.
pub struct Dropout {
    pub p: f32,
    pub rng: crate::rng::Rng,
}

impl Dropout {
    /// `x` with each element zeroed with probability `p` and the rest scaled by 1/(1−p).
    fn apply(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let n = x.elem_count();
        let keep = 1.0 / (1.0 - self.p);
        // 24 random bits per element are plenty for p in steps of 1e-6.
        let threshold = (self.p as f64 * (1u64 << 24) as f64) as u64;
        let mask: Vec<f32> = (0..n).map(|_| if (self.rng.next_u64() >> 40) < threshold { 0.0 } else { keep }).collect();
        x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
    }
}

impl BertParams {
    /// The variable named `name`. Panics on a name this module did not create (a programming
    /// error, never input-driven: names come from [`tensor_names`]).
    pub fn get(&self, name: &str) -> &Tensor {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_tensor()).expect("a known tensor name")
    }

    /// Builds the parameters from tensors by GGUF name (all `f32`), checking every shape.
    ///
    /// Errors: a missing tensor or a wrong shape, naming it.
    pub fn from_tensors(
        config: BertConfig,
        n_labels: usize,
        mut tensors: std::collections::HashMap<String, Tensor>,
    ) -> Result<BertParams, String> {
        let (h, ff) = (config.hidden_size, config.intermediate_size);
        let mut vars = Vec::new();
        for name in tensor_names(config.num_hidden_layers) {
            let want: Vec<usize> = expected_shape(&config, n_labels, &name);
            let t = tensors.remove(&name).ok_or_else(|| format!("the checkpoint has no tensor {name}"))?;
            if t.dims() != want.as_slice() {
                return Err(format!(
                    "tensor {name} has shape {:?}, expected {want:?} (hidden {h}, ffn {ff})",
                    t.dims()
                ));
            }
            let t = t.to_dtype(DType::F32).map_err(|e| format!("tensor {name}: {e}"))?;
            vars.push((name, Var::from_tensor(&t).map_err(|e| e.to_string())?));
        }
        Ok(BertParams { config, n_labels, vars })
    }

    /// Logits `[batch, n_labels]` for `ids` `[batch, seq]` (u32, [CLS] first, padded at the end),
    /// with `lengths[b]` real tokens in row b; padding is masked out of attention as keys, and
    /// only the [CLS] row is read, so padding never changes a row's logits.
    ///
    /// `first_layer` > 0 starts from cached hidden states instead: `hidden` `[batch, seq, hidden]`
    /// (the output of layer `first_layer - 1`), `ids` is then ignored.
    pub fn forward(
        &self,
        ids: &Tensor,
        lengths: &[usize],
        hidden: Option<(&Tensor, usize)>,
        mut dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let (mut x, first_layer) = match hidden {
            Some((h, first)) => (h.clone(), first),
            None => {
                let e = self.embed(ids)?;
                let e = match dropout.as_deref_mut() {
                    Some(d) => d.apply(&e)?,
                    None => e,
                };
                (e, 0)
            }
        };
        let mask = key_mask(lengths, x.dim(1)?, x.device())?;
        for layer in first_layer..self.config.num_hidden_layers {
            x = self.layer(layer, &x, &mask, dropout.as_deref_mut())?;
        }
        self.head(&x, dropout)
    }

    /// Embeddings after their LayerNorm: `[batch, seq, hidden]`.
    pub fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.config.hidden_size;
        let tok = self.get("token_embd.weight").embedding(&ids.flatten_all()?)?.reshape((b, t, h))?;
        // llama.cpp adds token type 0 to every token
        let typ = self.get("token_types.weight").narrow(0, 0, 1)?;
        let pos = self.get("position_embd.weight").narrow(0, 0, t)?;
        let x = tok.broadcast_add(&typ)?.broadcast_add(&pos)?;
        layer_norm(&x, self.get("token_embd_norm.weight"), self.get("token_embd_norm.bias"), self.config.layer_norm_eps)
    }

    /// One encoder layer: `[batch, seq, hidden]` → the same shape.
    pub fn layer(
        &self,
        i: usize,
        x: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (b, t, h) = x.dims3()?;
        let (nh, hd) = (c.num_attention_heads, c.head_dim());
        let p = |name: &str| self.get(&format!("blk.{i}.{name}")).clone();
        let heads = |name: &str| -> candle_core::Result<Tensor> {
            linear(x, &p(&format!("{name}.weight")), &p(&format!("{name}.bias")))?
                .reshape((b, t, nh, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (heads("attn_q")?, heads("attn_k")?, heads("attn_v")?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (hd as f64).sqrt()))?.broadcast_add(mask)?;
        let probs = softmax_last(&scores)?;
        let a = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, t, h))?;
        let mut a = linear(&a, &p("attn_output.weight"), &p("attn_output.bias"))?;
        if let Some(d) = dropout.as_deref_mut() {
            a = d.apply(&a)?;
        }
        let x = layer_norm(&(x + a)?, &p("attn_output_norm.weight"), &p("attn_output_norm.bias"), c.layer_norm_eps)?;
        let up = linear(&x, &p("ffn_up.weight"), &p("ffn_up.bias"))?.gelu()?;
        let mut down = linear(&up, &p("ffn_down.weight"), &p("ffn_down.bias"))?;
        if let Some(d) = dropout {
            down = d.apply(&down)?;
        }
        layer_norm(&(x + down)?, &p("layer_output_norm.weight"), &p("layer_output_norm.bias"), c.layer_norm_eps)
    }

    /// RANK pooling's head on the [CLS] row: `[batch, seq, hidden]` → `[batch, n_labels]`.
    fn head(&self, x: &Tensor, dropout: Option<&mut Dropout>) -> candle_core::Result<Tensor> {
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        let mut pooled = linear(&cls, self.get("cls.weight"), self.get("cls.bias"))?.tanh()?;
        if let Some(d) = dropout {
            pooled = d.apply(&pooled)?;
        }
        linear(&pooled, self.get("cls.output.weight"), self.get("cls.output.bias"))
    }
}

/// The shape each named tensor must have.
pub fn expected_shape(c: &BertConfig, n_labels: usize, name: &str) -> Vec<usize> {
    let (h, ff) = (c.hidden_size, c.intermediate_size);
    let base = name.rsplit_once('.').map(|(b, _)| b).unwrap_or(name);
    let weight = name.ends_with(".weight");
    let kind = base.rsplit('.').next().unwrap_or(base);
    match (base, kind, weight) {
        ("token_embd", _, _) => vec![c.vocab_size, h],
        ("token_types", _, _) => vec![c.type_vocab_size, h],
        ("position_embd", _, _) => vec![c.max_position_embeddings, h],
        ("cls.output", _, true) => vec![n_labels, h],
        ("cls.output", _, false) => vec![n_labels],
        ("cls", _, true) => vec![h, h],
        (_, "ffn_up", true) => vec![ff, h],
        (_, "ffn_up", false) => vec![ff],
        (_, "ffn_down", true) => vec![h, ff],
        (_, k, true) if !k.ends_with("norm") => vec![h, h],
        _ => vec![h],
    }
}

/// `x W^T + b` for `x` `[.., in]`, `w` `[out, in]`, `b` `[out]`. The leading dimensions are
/// flattened into one 2-D matmul: a broadcast (batched) matmul would copy `w` per batch row and
/// sum a per-row weight gradient in the backward pass.
fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let (rows, inner) = (dims[..dims.len() - 1].iter().product::<usize>(), dims[dims.len() - 1]);
    let y = x.reshape((rows, inner))?.matmul(&w.t()?)?.broadcast_add(b)?;
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = w.dim(0)?;
    y.reshape(out)
}

/// LayerNorm over the last dimension from differentiable ops (candle-nn's fused one has no
/// backward pass).
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    normed.broadcast_mul(gamma)?.broadcast_add(beta)
}

/// Softmax over the last dimension; the max taken out for stability is a constant (detached),
/// which leaves the gradient unchanged.
pub fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&sum)
}

/// Mean cross-entropy of `logits` `[batch, n]` against class indices `targets` (u32 `[batch]`).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_z = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let log_p = shifted.broadcast_sub(&log_z)?;
    let picked = log_p.gather(&targets.unsqueeze(1)?, 1)?;
    picked.mean_all()?.neg()
}

/// Additive attention mask `[batch, 1, 1, seq]`: 0 for real keys, −1e9 for padding.
pub fn key_mask(lengths: &[usize], seq: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mut m = Vec::with_capacity(lengths.len() * seq);
    for &n in lengths {
        m.extend((0..seq).map(|j| if j < n { 0f32 } else { -1e9 }));
    }
    Tensor::from_vec(m, (lengths.len(), 1, 1, seq), device)
}

/// A toy model for tests of this module and of the training loop.
#[cfg(test)]
pub mod toy {
    use super::*;
    use std::collections::HashMap;

    pub fn toy_config() -> BertConfig {
        BertConfig {
            vocab_size: 20,
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 12,
            max_position_embeddings: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
        }
    }

    /// Random small weights (norm gains near 1) for a 2-layer, hidden-8 model with 3 labels.
    pub fn toy(seed: u64) -> BertParams {
        let c = toy_config();
        let mut rng = crate::rng::Rng::new(seed);
        let mut tensors = HashMap::new();
        for name in tensor_names(c.num_hidden_layers) {
            let shape = expected_shape(&c, 3, &name);
            let n: usize = shape.iter().product();
            let norm_weight = name.contains("norm") && name.ends_with(".weight");
            let data: Vec<f32> = (0..n)
                .map(|_| {
                    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    if norm_weight {
                        (1.0 + 0.2 * (u - 0.5)) as f32
                    } else {
                        (0.6 * (u - 0.5)) as f32
                    }
                })
                .collect();
            tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu).unwrap());
        }
        BertParams::from_tensors(c, 3, tensors).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::toy::toy;
    use super::*;

    fn batch() -> (Tensor, Vec<usize>, Tensor) {
        let ids = Tensor::from_vec(vec![1u32, 5, 7, 9, 2, 1, 4, 2, 0, 0], (2, 5), &Device::Cpu).unwrap();
        let targets = Tensor::from_vec(vec![2u32, 0], 2, &Device::Cpu).unwrap();
        (ids, vec![5, 3], targets)
    }

    fn loss(p: &BertParams) -> Tensor {
        let (ids, lengths, targets) = batch();
        cross_entropy(&p.forward(&ids, &lengths, None, None).unwrap(), &targets).unwrap()
    }

    #[test]
    fn every_trainable_weight_gets_a_gradient_and_changes_after_a_step() {
        let p = toy(7);
        let grads = loss(&p).backward().unwrap();
        for (name, var) in &p.vars {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient reaches {name}"));
            let n = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(n.is_finite(), "{name}: gradient norm² {n}");
            // The key bias adds the same q·b to every score of a query row, which softmax
            // cancels: its true gradient is 0, and float noise is all it gets.
            if name.ends_with("attn_k.bias") {
                assert!(n < 1e-10, "{name}: gradient norm² {n}");
                continue;
            }
            assert!(n > 1e-12, "{name}: gradient norm² {n}");
            let before = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            var.set(&(var.as_tensor() - (g * 0.1).unwrap()).unwrap()).unwrap();
            let after = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(before.iter().zip(&after).any(|(a, b)| a != b), "{name} did not change");
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let p = toy(11);
        let grads = loss(&p).backward().unwrap();
        let mut checked = 0;
        for (name, var) in &p.vars {
            let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let w = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            // a few entries per tensor, including the largest gradient
            let big = (0..g.len()).max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs())).unwrap();
            for idx in [0, w.len() / 2, big] {
                let eps = 1e-2f32;
                let at = |delta: f32| {
                    let mut w2 = w.clone();
                    w2[idx] += delta;
                    var.set(&Tensor::from_vec(w2, var.as_tensor().shape(), &Device::Cpu).unwrap()).unwrap();
                    let l = loss(&p).to_scalar::<f32>().unwrap();
                    var.set(&Tensor::from_vec(w.clone(), var.as_tensor().shape(), &Device::Cpu).unwrap()).unwrap();
                    l as f64
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
                let analytic = g[idx] as f64;
                let tol = 2e-3 + 2e-2 * analytic.abs().max(numeric.abs());
                assert!((numeric - analytic).abs() <= tol, "{name}[{idx}]: analytic {analytic}, numeric {numeric}");
                checked += 1;
            }
        }
        assert!(checked >= 3 * p.vars.len());
    }

    #[test]
    fn padding_never_changes_a_rows_logits() {
        let p = toy(3);
        let alone = Tensor::from_vec(vec![1u32, 4, 2], (1, 3), &Device::Cpu).unwrap();
        let a = p.forward(&alone, &[3], None, None).unwrap().to_vec2::<f32>().unwrap();
        let (ids, lengths, _) = batch();
        let b = p.forward(&ids, &lengths, None, None).unwrap().to_vec2::<f32>().unwrap();
        for (x, y) in a[0].iter().zip(&b[1]) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn cached_lower_layers_give_the_same_logits() {
        let p = toy(5);
        let (ids, lengths, _) = batch();
        let full = p.forward(&ids, &lengths, None, None).unwrap().to_vec2::<f32>().unwrap();
        let mask = key_mask(&lengths, 5, &Device::Cpu).unwrap();
        let h = p.layer(0, &p.embed(&ids).unwrap(), &mask, None).unwrap();
        let from_cache = p.forward(&ids, &lengths, Some((&h, 1)), None).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(full, from_cache);
    }
}
