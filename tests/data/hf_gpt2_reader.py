#!/usr/bin/env python3
"""Encodes texts with the vocab.json + merges.txt of a model directory, reading them the way
Hugging Face's GPT2Tokenizer does (json.load; merges.txt split on newlines minus its first
and last line), with its own byte-level BPE written from the GPT-2 paper's description.
Independent of meshlm's C++ reader: tokenizer_files tests compare the two.

usage: hf_gpt2_reader.py MODEL_DIR TEXTS_JSON   (prints a JSON list of id lists)
"""
import json
import sys

try:  # the pattern needs \p{L} and \p{N}: the `regex` module has them
    import regex as re
    PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
except ImportError:  # `re`: letters are \w minus digits and "_", numbers are \d (exact for the tests' texts)
    import re
    PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""


def byte_alphabet():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def main():
    model_dir, texts_path = sys.argv[1], sys.argv[2]
    with open(f"{model_dir}/vocab.json", encoding="utf-8") as f:
        vocab = json.load(f)
    with open(f"{model_dir}/merges.txt", encoding="utf-8") as f:
        merge_lines = f.read().split("\n")[1:-1]
    ranks = {tuple(line.split()): i for i, line in enumerate(merge_lines)}
    alphabet = byte_alphabet()
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)

    def bpe(word):
        parts = list(word)
        while len(parts) > 1:
            pairs = [(ranks.get((parts[i], parts[i + 1]), None), i) for i in range(len(parts) - 1)]
            pairs = [p for p in pairs if p[0] is not None]
            if not pairs:
                break
            best = min(pairs)[0]
            a, b = merge_lines[best].split()
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    out = []
    for text in texts:
        ids = []
        for piece in re.findall(PATTERN, text):
            word = "".join(alphabet[b] for b in piece.encode("utf-8"))
            ids.extend(vocab[t] for t in bpe(word))
        out.append(ids)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
