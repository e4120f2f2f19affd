"""Your own parts of the model: one file per part, each a stub until you write it.

SML ships a complete, tested reference of every part in ``sml/``. This package is where
you build the same parts yourself, in the order of LEARN.md:

 1. micrograd.py   the scalar autograd engine: Value's operations and backward
 2. bpe.py         the tokenizer: learning BPE merges, encoding and decoding
 3. embeddings.py  token and position embeddings: learned, sinusoidal, RoPE
 4. attention.py   scaled dot-product attention with the causal mask
 5. heads.py       splitting channels into heads and merging them back
 6. layernorm.py   layer normalization, written out
 7. mlp.py         the feed-forward network of a block
 8. block.py       the transformer block: two residual branches
 9. training.py    batches, cross-entropy, clipping, the AdamW step, the lr schedule
10. sampling.py    greedy, temperature, top-k and top-p

Each stub keeps the reference's signature and states its contract in the docstring.
``make grade`` checks what you have written (``make grade PART=attention`` one part) and
prints a checklist; a stub you have not started shows as "to do", not as a failure.
"""
