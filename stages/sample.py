"""Stage sample: text from the trained model for the prompts in params.yaml.

As a DVC stage it writes ``artifacts/samples.md``. By hand, with ``--prompt``, it streams
one continuation to the terminal as it is generated:

    python -m stages.sample --prompt "ROMEO:" --temperature 0.8

Options given on the command line override the ``sample`` section of params.yaml.
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from sml.config import load_params, with_options
from sml.generate import complete, samples_markdown
from sml.learn.mine import MODEL_PARTS, load_mine
from sml.run.atomic import write_text
from sml.run.checkpoint import load_model
from sml.run.device import pick_runtime, prepare_decoding
from sml.tokenizer import Tokenizer
from sml.tokenizer.tokenizer import replace_surrogates
from stages.common import ModelDir, ParamsFile, TokenizerFile, from_params, run, stage


@stage
def main(
    prompt: Annotated[str | None, typer.Option(
        help="Stream one continuation of this text (without it: sample.prompts in params.yaml, to --out).",
        show_default=False)] = None,
    temperature: Annotated[float | None, typer.Option(
        help="0 = greedy.", show_default=from_params("sample.temperature"))] = None,
    top_k: Annotated[int | None, typer.Option(help="0 = off.", show_default=from_params("sample.top_k"))] = None,
    top_p: Annotated[float | None, typer.Option(help="1.0 = off.", show_default=from_params("sample.top_p"))] = None,
    max_new_tokens: Annotated[int | None, typer.Option(
        help="Tokens to generate.", show_default=from_params("sample.max_new_tokens"))] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.", show_default=from_params("sample.seed"))] = None,
    model: ModelDir = Path("artifacts/model"),
    tokenizer: TokenizerFile = Path("artifacts/tokenizer/tokenizer.json"),
    out: Annotated[Path, typer.Option(help="Samples file (markdown).")] = Path("artifacts/samples.md"),
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Write samples for the configured prompts, or stream one for --prompt."""
    p = load_params(params)  # the options in place of their params, checked the same way
    cfg = with_options(p.sample, "sample", temperature=temperature, top_k=top_k, top_p=top_p,
                       max_new_tokens=max_new_tokens, seed=seed)
    mine = load_mine(p.impl, params.parent, (*MODEL_PARTS, "bpe", "sampling"))  # graded first
    settings = {key: getattr(cfg, key) for key in ("max_new_tokens", "temperature", "top_k", "top_p", "seed")}
    runtime = pick_runtime(cfg.device, "float32", compile=False, key="sample")  # generation runs in float32
    tok = Tokenizer.load(tokenizer)
    if mine is not None and mine.decode is not None:  # impl.bpe: mine
        tok.use(mine.encode_chunk, mine.decode)
    net = load_model(model, tokenizer, runtime.device, mine)
    net = prepare_decoding(net, runtime.device, cfg.max_new_tokens * (1 if prompt is not None else len(cfg.prompts)))
    if prompt is not None:
        pieces, note = complete(net, tok, prompt, **settings)
        if note:
            print(f"({note})", file=sys.stderr)
        # A prompt that was not UTF-8 on the command line holds lone surrogates, which
        # stdout cannot print: show it as the model read it, with U+FFFD in their place.
        shown = replace_surrogates(prompt)
        if shown != prompt:
            print("(the prompt is not valid UTF-8: each bad byte became U+FFFD)", file=sys.stderr)
        print(shown, end="", flush=True)
        for piece in pieces:
            print(piece, end="", flush=True)
        print()
        return
    write_text(out, samples_markdown(net, tok, list(cfg.prompts), settings, f"Model `{model}`"))
    print(f"sample: {len(cfg.prompts)} samples of {settings['max_new_tokens']} tokens -> {out}")


if __name__ == "__main__":
    run(main)
