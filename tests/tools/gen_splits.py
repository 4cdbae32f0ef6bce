#!/usr/bin/env python3
"""Writes the word splits of the gpt-4o (o200k_base) pre-tokenizer's
documented expression, as Python's `regex` module finds them, for
tests/test_tokenizer.c to compare engine/pretokenize.c against.

    python3 tests/tools/gen_splits.py > tests/vocab/gpt-4o.splits.jsonl

One JSON object a line: {"text": ..., "words": [...]}, for every string of
tests/vocab/gpt-4o.inp and for random strings over an alphabet that has a
codepoint of each class the expression tells apart (upper, lower, title,
modifier and other letters, marks, digits, punctuation, '/', \\r, \\n,
ASCII and non-ASCII whitespace, contraction letters). The `regex` module
implements \\p{..} and (?i:..) with full Unicode semantics; the alphabet
holds only codepoints whose category is the same in every Unicode version
since 6.0, so its Unicode tables and engine/unicode_data.inc agree on them.
"""
import json
import random
import sys

import regex

GPT4O = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
         r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SEPARATOR = "\n__ggml_vocab_test__\n"
ALPHABET = ["a", "b", "Z", "Q", "s", "S", "t", "l", "L", "e", "E", "r", "v", "m", "d", "'", "'", " ", " ", " ",
            "\n", "\r", "\t", "/", ".", "!", "(", "0", "7", "\u0661", "\u00bd", "\u03b2", "\u0394", "\u01c5",
            "\u02b0", "\u6f22", "\u0301", "\u0903", "\u00a0", "\u3000", "\u2028", "\u017f", "\U0001f600", "_", "$"]


def split(text):
    words, pos = [], 0
    for m in regex.finditer(GPT4O, text):
        if m.start() > pos:
            words.append(text[pos:m.start()])
        words.append(m.group())
        pos = m.end()
    if pos < len(text):
        words.append(text[pos:])
    return words


def main():
    with open("tests/vocab/gpt-4o.inp", encoding="utf-8", newline="") as f:
        texts = [t for t in f.read().split(SEPARATOR) if t]
    rng = random.Random(4)
    for _ in range(400):
        texts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 24))))
    for t in texts:
        words = split(t)
        assert "".join(words) == t
        sys.stdout.write(json.dumps({"text": t, "words": words}) + "\n")


if __name__ == "__main__":
    main()
