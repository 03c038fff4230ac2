#!/usr/bin/env python3
"""SentencePiece BPE tokenizer trained on the training split, and its Hugging Face files.

The library (Debian's python3-sentencepiece) trains a BPE model with byte fallback and no
normalization (identity rule, spaces kept as they are, a dummy-prefix space at the start of a
text). The same model is written as tokenizer.json in the SentencePiece-style BPE form that
transformers' LlamaTokenizerFast uses (normalizer Prepend U+2581 + Replace ' ' -> U+2581, byte
fallback, merges ordered by the merged piece's score), which `bitnet convert` reads into GGUF
tokenizer keys (model "llama", scores from the merge ranks).

A text is always encoded whole (one string, newlines included), as the engine does.
"""
import argparse
import json
import os

import sentencepiece as spm

SPACE = "\u2581"


def train(train_txt, out_dir, vocab_size, seed=14):
    with open(train_txt, encoding="ascii") as f:
        chapters = [c + "\n" for c in f.read().split("\n\n")]
    spm.set_random_generator_seed(seed)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(chapters), model_prefix=os.path.join(out_dir, "tokenizer"),
        model_type="bpe", vocab_size=vocab_size, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, byte_fallback=True,
        character_coverage=1.0, split_digits=True, max_sentence_length=1 << 20,
        input_sentence_size=0, num_threads=1, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2)
    write_hf_files(os.path.join(out_dir, "tokenizer.model"), out_dir)


def load(model_file):
    return spm.SentencePieceProcessor(model_file=model_file)


def encode(sp, text):
    """Token ids of a whole text, without BOS."""
    return sp.encode(text)


def write_hf_files(model_file, out_dir):
    sp = load(model_file)
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    vocab = {p: i for i, p in enumerate(pieces)}
    # Every way of writing a normal piece as two pieces, pieces in score order (for BPE the
    # score falls with the id), so a piece's first merge rank orders the pieces as the scores do.
    order = sorted((i for i in range(n) if sp.is_unknown(i) is False and not sp.is_control(i)
                    and not sp.is_byte(i)), key=lambda i: -sp.get_score(i))
    merges = []
    for i in order:
        p = pieces[i]
        for k in range(1, len(p)):
            a, b = p[:k], p[k:]
            if a in vocab and b in vocab:
                merges.append([a, b])
    special = [{"id": i, "content": pieces[i], "single_word": False, "lstrip": False,
                "rstrip": False, "normalized": False, "special": True}
               for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": special,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "vocab": vocab, "merges": merges},
    }
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    cfg = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
           "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
           "legacy": True, "model_max_length": 1 << 30}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True, help="train.txt from corpus.py")
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=4096)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    train(args.train, args.out, args.vocab)
    sp = load(os.path.join(args.out, "tokenizer.model"))
    with open(args.train, encoding="ascii") as f:
        n = len(encode(sp, f.read()))
    print(f"tokenizer: {sp.get_piece_size()} pieces; train split {n} tokens")


if __name__ == "__main__":
    main()
