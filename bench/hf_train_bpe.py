"""The baseline trainer for ``bench/tokenizer.py``: Hugging Face ``tokenizers`` byte-level BPE.

Usage: .venv/bin/python bench/hf_train_bpe.py CORPUS VOCAB_SIZE OUT_JSON

Set up as close to SML's tokenizer as HF allows: the ByteLevel pre-tokenizer (GPT-2's split,
no prefix space), all 256 bytes in the starting alphabet, and "<|endoftext|>" as the one
special token, so ``VOCAB_SIZE`` counts the same ids as ``tokenizer.vocab_size`` does.
This file is kept minimal on purpose: the bench times it as a whole process.
"""

import sys

from tokenizers import Tokenizer, models, pre_tokenizers, trainers


def train(text: str, vocab_size: int) -> Tokenizer:
    """An HF BPE tokenizer of ``vocab_size`` ids learned from ``text``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer=trainer)
    return tok


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: hf_train_bpe.py CORPUS VOCAB_SIZE OUT_JSON")
    corpus, vocab_size, out = sys.argv[1:]
    with open(corpus, encoding="utf-8", newline="") as f:
        train(f.read(), int(vocab_size)).save(out)
