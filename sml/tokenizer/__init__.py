"""Byte-level BPE, from scratch: the tokenizer that turns text into the ids a GPT reads.

Read in this order:
- ``pretokenize.py``: the split patterns that cut text into chunks, and special tokens;
- ``train.py``: learning merges, fast (incremental pair counts and a heap);
- ``tokenizer.py``: encode, decode, save and load with those merges;
- ``sml/data/tiktoken_backend.py``: the same ids from OpenAI's tiktoken, for bulk encoding.
"""

from sml.tokenizer.tokenizer import Tokenizer, TokenizerError

__all__ = ["Tokenizer", "TokenizerError"]
