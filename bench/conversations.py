"""Benchmark: encoding conversations for fine-tuning, one process against every core.

    .venv/bin/python bench/conversations.py --corpus ../shared/data/tinyshakespeare.txt [--copies 20]

The play's conversations (``format: play``, as the shipped params fine-tune on) are written
``--copies`` times into one train.jsonl, then encoded in the chat template with a tokenizer
trained on the play (vocab 1,024, the cpu preset's): by one process (the baseline), and by
one process per core. Prints MB/s of each, the speed-up, and whether the files are the same.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sml.chat import with_chat_tokens  # noqa: E402
from sml.data.conversations import build_conversations, encode_conversation_splits  # noqa: E402
from sml.data.encode import available_cores  # noqa: E402
from sml.data.sources import Source  # noqa: E402
from sml.tokenizer import Tokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a play's text (tiny Shakespeare)")
    parser.add_argument("--copies", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sml-conversations-"))
    try:
        build_conversations([Source(args.corpus, "play", "--corpus")], [], work / "one", 0.1)
        one = (work / "one" / "train.jsonl").read_bytes()
        (work / "conv").mkdir()
        (work / "conv" / "train.jsonl").write_bytes(one * args.copies)
        shutil.copy(work / "one" / "val.jsonl", work / "conv" / "val.jsonl")
        tok = with_chat_tokens(Tokenizer.train(args.corpus.read_text(encoding="utf-8"), 1024, "gpt4"))
        size = sum(p.stat().st_size for p in (work / "conv").iterdir())
        print(f"conversations: {size / 1e6:.1f} MB of JSON lines ({args.copies} copies of the play's), vocab"
              f" {tok.vocab_size:,}, {available_cores()} cores")
        rates, files = {}, {}
        for workers in (1, available_cores()):
            start = time.perf_counter()
            encode_conversation_splits(work / "conv", tok, work / f"tokens{workers}", workers=workers)
            seconds = time.perf_counter() - start
            rates[workers] = size / 1e6 / seconds
            files[workers] = {p.name: p.read_bytes() for p in (work / f"tokens{workers}").iterdir()}
            print(f"  {workers} process{'es' if workers > 1 else ''}: {seconds:.2f} s, {rates[workers]:.1f} MB/s")
        cores = available_cores()
        same = "the same files" if files[1] == files[cores] else "DIFFERENT FILES"
        print(f"  speed-up: {rates[cores] / rates[1]:.2f}x on {cores} cores ({same})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
