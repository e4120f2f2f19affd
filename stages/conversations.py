"""Stage conversations: fetch the conversations to fine-tune on and encode them in the chat template.

Reads ``finetune.sources``, ``finetune.val_sources`` and ``finetune.val_fraction`` (fetched and
checked like the corpus's: ``SML_DATA_MIRROR``, sha256, .gz) and the trained tokenizer. Writes
``data/chat/``: ``conversations/{train,val}.jsonl`` (every source's conversations, checked,
in one format: ``sml/data/conversations.py``), ``tokenizer/`` (the trained tokenizer with the
chat tokens added: ``sml.chat.with_chat_tokens``) and ``tokens/`` (the ids, and which of them
the model learns: ``render``, the learner's with ``impl.chat: mine``).
"""

from pathlib import Path
from typing import Annotated

import typer

from sml.chat import with_chat_tokens
from sml.config import load_params
from sml.data.conversations import build_conversations, encode_conversation_splits
from sml.data.download import fetch_sources
from sml.data.encode import available_cores
from sml.learn.mine import load_mine
from sml.tokenizer import Tokenizer
from stages.common import ParamsFile, TokenizerFile, run, stage


@stage
def main(
    tokenizer: TokenizerFile = Path("artifacts/tokenizer/tokenizer.json"),
    out: Annotated[Path, typer.Option(help="Directory for conversations/, tokenizer/ and tokens/.")] = Path(
        "data/chat"),
    downloads: Annotated[Path, typer.Option(help="Where downloaded files are kept (and resumed).")] = Path(
        "data/downloads"),
    workers: Annotated[int, typer.Option(help="Processes to encode with; 0 = one per core.", min=0)] = 0,
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Fetch the conversations, split them, and encode them for fine-tuning."""
    p = load_params(params)
    cfg, mine = p.finetune, load_mine(p.impl, params.parent, ("chat",))
    train = fetch_sources(cfg.sources, "finetune.sources", downloads, params)
    val = fetch_sources(cfg.val_sources, "finetune.val_sources", downloads, params)
    counted = build_conversations(train, val, out / "conversations", cfg.val_fraction)
    base_tok = Tokenizer.load(tokenizer)
    chat_tok = with_chat_tokens(base_tok)
    chat_tok.save(out / "tokenizer")
    meta = encode_conversation_splits(out / "conversations", chat_tok, out / "tokens",
                                      mine.files["chat"] if mine is not None else None, workers or available_cores())
    for split, count in zip(("train", "val"), counted, strict=True):
        m = meta[split]
        print(f"conversations: {split}: {plural(count.conversations, 'conversation')}, {count.messages:,} messages,"
              f" {m['tokens']:,} tokens of which {m['learned_tokens']:,} learned (the replies: {m['chars']:,}"
              f" chars){' (mine/chat.py)' if mine is not None else ''}")
    print(f"conversations: tokenizer {tokenizer} + {chat_tok.vocab_size - base_tok.vocab_size}"
          f" chat tokens = {chat_tok.vocab_size:,} ids -> {out / 'tokenizer'}")


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


if __name__ == "__main__":
    run(main)
