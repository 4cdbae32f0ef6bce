#!/usr/bin/env python3
"""Writes a small byte-level BPE vocabulary (a GGUF with metadata only, no
tensors) for tokenizer vector tests of a pre-tokenizer.

    python3 tests/tools/gen_vocab.py --pre gpt-4o --corpus tests/vocab/gpt-4o.inp --out X.gguf

The merges are learned from the corpus (the test strings, separator lines
dropped) as whole texts, without any pre-splitting, so that merges span the
places where pre-tokenizers differ: a word boundary in another place then
changes the token ids. Training is plain BPE: repeatedly merge the most
frequent adjacent pair (ties: the smallest pair in byte order) until
--merges merges or every text is one token; pairs seen once merge too, so
most of a test string's words end up as a few long tokens. The vocabulary is the 256 byte
symbols (GPT-2's byte-to-unicode mapping), one token per merge, then
<|endoftext|> as a control token. The same corpus always gives the same
file, so a test can write it again instead of storing it.

The metadata carries the shape keys of a phi3 model so that a reference
engine's vocabulary-only loader accepts the file. The expected ids
(tests/vocab/NAME.out) come from the reference's llama-tokenize run on each
string with --ids --no-bos --no-parse-special, never from prbot.
"""
import argparse
import collections
import sys

try:
    import gguf
except ImportError:
    sys.exit("gen_vocab: the gguf Python package is not installed")

SEPARATOR = "\n__ggml_vocab_test__\n"


def byte_symbols():
    """GPT-2's printable stand-in for each byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    symbols, extra = {}, 0
    for b in range(256):
        if b in keep:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return symbols


def train(texts, n_merges):
    seqs = [[bytes([b]) for b in t.encode("utf-8")] for t in texts]
    merges = []
    for _ in range(n_merges):
        counts = collections.Counter()
        for s in seqs:
            for a, b in zip(s, s[1:]):
                counts[(a, b)] += 1
        if not counts:
            break
        best = max(counts.values())
        pair = min(p for p, c in counts.items() if c == best)
        merges.append(pair)
        joined = pair[0] + pair[1]
        for k, s in enumerate(seqs):
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == pair:
                    out.append(joined)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[k] = out
    return merges


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pre", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--merges", type=int, default=1000)
    args = ap.parse_args()
    with open(args.corpus, encoding="utf-8", newline="") as f:
        texts = [t for t in f.read().split(SEPARATOR) if t]
    sym = byte_symbols()

    def spell(bs):
        return "".join(sym[b] for b in bs)

    merges = train(texts, args.merges)
    tokens = [sym[b] for b in range(256)] + [spell(a + b) for a, b in merges] + ["<|endoftext|>"]
    types = [1] * (len(tokens) - 1) + [3]
    w = gguf.GGUFWriter(args.out, "phi3")
    w.add_name("gen_vocab " + args.pre)
    w.add_context_length(4096)
    w.add_embedding_length(256)
    w.add_feed_forward_length(512)
    w.add_block_count(1)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(64)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(args.pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([spell(a) + " " + spell(b) for a, b in merges])
    w.add_bos_token_id(len(tokens) - 1)
    w.add_eos_token_id(len(tokens) - 1)
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
