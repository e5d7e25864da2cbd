"""What the BERT classifier GGUF generators share: llama.cpp's BERT, mirrored in Python.

Two scripts write BERT sequence-classifier GGUFs for moat: the tiny trained test fixture
(tests/fixtures/classify/native/make_tiny_bert.py) and the fine-tuned MiniLM benchmark model
(make_minilm_sentiment.py beside this file). Both only make sense if what PyTorch trains and
scores is exactly what llama.cpp runs, so the WPM tokenizer mirror, the torch graph and the GGUF
layout live here once: a fix for a llama.cpp difference then reaches both models.

Mirrors the llama.cpp vendored in llama-cpp-sys-2 0.1.161:
* src/llama-vocab.cpp, llm_tokenizer_wpm_session: NFD + accent stripping, lowercase, split on
  whitespace, every punctuation char / ASCII symbol / CJK char a word of its own, then greedy
  longest match over "\u2581" + word; a word with any unmatched position becomes [UNK] as a
  whole. [CLS] (tokenizer.ggml.bos_token_id) ... [SEP] come from add_special.
* src/models/bert.cpp: tok_embd[id] + token_types[0] + position_embd[pos] -> LayerNorm -> per
  layer: non-causal MHA with biases, scale 1/sqrt(head_dim) -> + input -> LayerNorm -> ffn_up ->
  GELU (ggml_gelu, the tanh form) -> ffn_down -> + input -> LayerNorm.
* src/llama-graph.cpp, LLAMA_POOLING_TYPE_RANK: the [CLS] row -> cls + bias -> tanh ->
  cls.output + bias -> raw logits (no softmax for BERT).

Only the standard library is imported here; callers pass torch / numpy / gguf in, so that their
--sentences and --compare modes keep working without them.
"""

import math
import unicodedata


def phantom(tok):
    """What the upstream converter (convert_hf_to_gguf.py, BERT phantom()) stores for an entry."""
    if tok.startswith("[") and tok.endswith("]"):
        return tok
    if tok.startswith("##"):
        return tok[2:]
    return "\u2581" + tok


def is_chinese_char(c):
    return (0x4E00 <= c <= 0x9FFF or 0x3400 <= c <= 0x4DBF or 0x20000 <= c <= 0x2A6DF
            or 0x2A700 <= c <= 0x2B73F or 0x2B740 <= c <= 0x2B81F or 0x2B920 <= c <= 0x2CEAF
            or 0xF900 <= c <= 0xFAFF or 0x2F800 <= c <= 0x2FA1F)


class WpmTokenizer:
    """Matches over the GGUF token texts (phantom()), as llama.cpp does, not over HF's "##"."""

    def __init__(self, vocab, specials):
        self.vocab = vocab
        # llama.cpp fills token_to_id in id order, so a later duplicate text would win; neither
        # vocab built by the two scripts has a duplicate
        self.text_to_id = {phantom(t).encode("utf-8"): i for i, t in enumerate(vocab)}
        self.max_len = max(len(k) for k in self.text_to_id)
        self.cls, self.sep, self.unk = specials["[CLS]"], specials["[SEP]"], specials["[UNK]"]

    @staticmethod
    def preprocess(text):
        # llama.cpp's defaults for a BERT vocab: lowercase=true, strip_accents=true
        words = [""]
        for ch in unicodedata.normalize("NFD", text):
            cat = unicodedata.category(ch)
            if ch.isspace() or cat == "Zs":
                if words[-1]:
                    words.append("")
                continue
            if ord(ch) == 0 or ord(ch) == 0xFFFD or cat == "Cc":
                continue
            if cat == "Mn":  # accent mark
                continue
            s = ch.lower()
            if cat.startswith("P") or (ord(ch) < 0x7F and cat.startswith("S")) or is_chinese_char(ord(ch)):
                if words[-1]:
                    words.append("")
                words[-1] = s
                words.append("")
            else:
                words[-1] += s
        if not words[-1]:
            words.pop()
        return words

    def tokenize(self, text):
        out = [self.cls]
        for word in self.preprocess(text):
            if not word:
                continue
            w = ("\u2581" + word).encode("utf-8")
            n, start, i, ok = len(w), len(out), 0, True
            while i < n:
                # llama.cpp's bound; the extra length never matches, it only mirrors the loop
                for j in range(min(n, i + self.max_len + 1), i, -1):
                    tid = self.text_to_id.get(w[i:j])
                    if tid is not None:
                        out.append(tid)
                        i = j
                        break
                else:
                    ok = False
                    break
            if not ok:
                del out[start:]
            if len(out) == start:
                out.append(self.unk)
        out.append(self.sep)
        return out


def build_model(torch, cfg, n_labels, dropout=0.0):
    """llama.cpp's BERT graph + RANK head, sized by a Hugging Face style config.json dict.

    Weights keep torch's default init; each caller initialises (or loads) them itself, since the
    fixture trains from scratch and MiniLM starts from a checkpoint. Dropout 0 is the identity,
    so a caller without dropout gets the same numbers as a graph without the layers.
    """
    nn = torch.nn
    F = torch.nn.functional
    H, NH, FF = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"]
    eps = cfg["layer_norm_eps"]

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(H, H) for _ in range(4))
            self.ln1 = nn.LayerNorm(H, eps=eps)
            self.up = nn.Linear(H, FF)
            self.down = nn.Linear(FF, H)
            self.ln2 = nn.LayerNorm(H, eps=eps)
            self.drop = nn.Dropout(dropout)

        def forward(self, x, key_mask):
            B, T, _ = x.shape
            hd = H // NH

            def heads(t):
                return t.view(B, T, NH, hd).transpose(1, 2)

            q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
            if key_mask is not None:  # padding exists only in PyTorch batches, never in llama.cpp
                att = att.masked_fill(~key_mask[:, None, None, :], float("-inf"))
            att = self.drop(att.softmax(-1))
            a = (att @ v).transpose(1, 2).reshape(B, T, H)
            x = self.ln1(x + self.drop(self.o(a)))
            h = self.down(F.gelu(self.up(x), approximate="tanh"))  # ggml_gelu is the tanh form
            return self.ln2(x + self.drop(h))

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(cfg["vocab_size"], H)
            self.typ = nn.Embedding(cfg["type_vocab_size"], H)
            self.pos = nn.Embedding(cfg["max_position_embeddings"], H)
            self.emb_ln = nn.LayerNorm(H, eps=eps)
            self.layers = nn.ModuleList([Layer() for _ in range(cfg["num_hidden_layers"])])
            self.cls = nn.Linear(H, H)
            self.cls_out = nn.Linear(H, n_labels)
            self.drop = nn.Dropout(dropout)

        def forward(self, ids, key_mask=None):
            T = ids.shape[1]
            # llama.cpp adds token type 0 to every token
            x = self.tok(ids) + self.typ.weight[0] + self.pos.weight[:T]
            x = self.drop(self.emb_ln(x))
            for layer in self.layers:
                x = layer(x, key_mask)
            c = torch.tanh(self.cls(x[:, 0]))  # [CLS] row, as RANK pooling takes it
            return self.cls_out(self.drop(c))

    return Classifier()


def write_gguf(gguf, np, model, path, cfg, labels, vocab, specials, *, name, description,
               license=None, outtype="f32", extra_kv=None):
    """A GGUF laid out as the upstream converter writes a BERT classifier.

    extra_kv: more string keys (written after general.file_type), e.g. how the model was made.
    """
    T = gguf.MODEL_TENSOR

    def tname(t, suffix, bid=None):
        base = gguf.TENSOR_NAMES[t]
        return (base.format(bid=bid) if bid is not None else base) + "." + suffix

    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    w.add_name(name)
    w.add_description(description)
    if license is not None:
        w.add_string("general.license", license)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.RANK)
    w.add_classifier_output_labels(labels)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32)
    for k, v in (extra_kv or {}).items():
        w.add_string(k, str(v))

    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list([phantom(t) for t in vocab])
    ctrl = set(specials.values())
    w.add_token_types([gguf.TokenType.CONTROL if i in ctrl else gguf.TokenType.NORMAL
                       for i in range(len(vocab))])
    w.add_token_type_count(cfg["type_vocab_size"])
    # llama.cpp adds tokenizer.ggml.bos_token_id as [CLS] (it does not read cls_token_id)
    w.add_bos_token_id(specials["[CLS]"])
    w.add_uint32("tokenizer.ggml.cls_token_id", specials["[CLS]"])  # gguf-py has no helper
    w.add_sep_token_id(specials["[SEP]"])
    w.add_unk_token_id(specials["[UNK]"])
    w.add_pad_token_id(specials["[PAD]"])
    w.add_mask_token_id(specials["[MASK]"])

    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}

    def put(name, key, force_f32=False):
        a = sd[key]
        # as the upstream converter does: 1-D tensors (norms, biases) and the position /
        # token-type embeddings stay F32, matrices become F16
        if outtype == "f16" and a.ndim == 2 and not force_f32:
            a = a.astype(np.float16)
        w.add_tensor(name, np.ascontiguousarray(a))

    put(tname(T.TOKEN_EMBD, "weight"), "tok.weight")
    put(tname(T.TOKEN_TYPES, "weight"), "typ.weight", force_f32=True)
    put(tname(T.POS_EMBD, "weight"), "pos.weight", force_f32=True)
    put(tname(T.TOKEN_EMBD_NORM, "weight"), "emb_ln.weight")
    put(tname(T.TOKEN_EMBD_NORM, "bias"), "emb_ln.bias")
    for i in range(cfg["num_hidden_layers"]):
        p = f"layers.{i}."
        for t, m in ((T.ATTN_Q, "q"), (T.ATTN_K, "k"), (T.ATTN_V, "v"), (T.ATTN_OUT, "o"),
                     (T.ATTN_OUT_NORM, "ln1"), (T.FFN_UP, "up"), (T.FFN_DOWN, "down"),
                     (T.LAYER_OUT_NORM, "ln2")):
            put(tname(t, "weight", i), p + m + ".weight")
            put(tname(t, "bias", i), p + m + ".bias")
    put(tname(T.CLS, "weight"), "cls.weight")
    put(tname(T.CLS, "bias"), "cls.bias")
    put(tname(T.CLS_OUT, "weight"), "cls_out.weight")
    put(tname(T.CLS_OUT, "bias"), "cls_out.bias")

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
