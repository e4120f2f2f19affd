"""Will training fit? The memory estimate of ``sml/run/memory.py`` for params.yaml, without training.

    python -m stages.fit                     # the shipped params, on the device train.device picks
    python -m stages.fit --preset cpu        # a preset's shape
    python -m stages.fit --memory-gb 16      # on a 16 GB CUDA card (asked from any machine)

Prints the model's size, the tokens per step and the estimated peak, part by part, against
the device's memory; exits 1 with a one-line error naming train.batch_size and
model.block_size when it clearly does not fit. Not a pipeline stage: it reads only params.yaml.
"""

from pathlib import Path
from typing import Annotated

import torch
import typer

from sml.config import load_params
from sml.run.device import pick_device, pick_dtype
from sml.run.memory import check_fits, count_parameters, device_memory, estimate_training_memory
from stages.common import ParamsFile, run, stage


@stage
def main(
    preset: Annotated[str | None, typer.Option(help="A preset under `presets:` in params.yaml.",
                                               show_default=False)] = None,
    memory_gb: Annotated[float | None, typer.Option(
        help="Check against a CUDA card with this much memory, in GB (1e9 bytes; a card sold as 16 GB"
             " has about 16.7), instead of this machine's device.", show_default=False)] = None,
    params: ParamsFile = Path("params.yaml"),
) -> None:
    """Estimate the training step's peak memory and check it against the device's."""
    p = load_params(params, preset)
    if memory_gb is not None:  # a hypothetical card: CUDA, and bfloat16 unless train.dtype says otherwise
        device_type = "cuda"
        dtype = torch.bfloat16 if p.train.dtype == "auto" else getattr(torch, p.train.dtype)
        available, where = int(memory_gb * 1e9), f"a {memory_gb:g} GB card"
    else:
        device = pick_device(p.train.device)
        device_type, dtype = device.type, pick_dtype(p.train.dtype, device)
        available = device_memory(device)
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    m, t = p.model, p.train
    print(f"model: {count_parameters(m, p.tokenizer.vocab_size) / 1e6:.2f}M parameters ({m.n_layer} layers,"
          f" {m.n_head} heads, {m.n_embd} wide, attention {m.attention}, vocabulary {p.tokenizer.vocab_size:,})")
    print(f"train: batch_size {t.batch_size} x grad_accum {t.grad_accum} x block_size {m.block_size}"
          f" = {t.batch_size * t.grad_accum * m.block_size:,} tokens/step; autocast {str(dtype)[6:]} on {where}")
    estimate = estimate_training_memory(m, p.tokenizer.vocab_size, t.batch_size, dtype, world_size=t.nproc,
                                        device_type=device_type)
    print(f"memory: {check_fits(estimate, available, where)}")


if __name__ == "__main__":
    run(main)
