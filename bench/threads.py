"""Benchmark: training speed with every core's thread and with one, idle and beside a busy program.

    .venv/bin/python bench/threads.py [--steps 10] [--busy 1]

torch's default on a CPU is one thread per core, and every operation waits for its slowest
thread: when another program keeps a core busy, a whole step waits for it again and again.
This times the real training step at the ``cpu`` preset's shape (``bench/train.py``'s
``training_rate``) with all cores' threads and with one, first on an idle machine, then
beside ``--busy`` processes that spin on a core each; and prints what the train stage's
``pick_threads`` (``sml/run/device.py``) chooses in each case. The choice is good when it
names the faster of the two rows measured under the same load.

Left out on purpose: counts between 1 and all cores (this machine's 2 cores have none).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import REPO, training_rate  # noqa: E402  (bench/train.py)

from sml.config import load_params  # noqa: E402
from sml.run.device import pick_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
    parser.add_argument("--busy", type=int, default=1, help="spinning processes for the busy rows")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml", "cpu")
    model_cfg, cfg, vocab = params.model, params.train, params.tokenizer.vocab_size
    cores = torch.get_num_threads()
    cpu = torch.device("cpu")
    rows = min(cfg.batch_size * model_cfg.block_size, 4096)
    print(f"cpu preset: {model_cfg.n_layer} layers, {model_cfg.n_embd} dims, batch {cfg.batch_size} x"
          f" {model_cfg.block_size}; {cores} cores; {args.steps} timed steps per row")
    for load in ("idle", f"beside {args.busy} busy process(es)"):
        spinners = [] if load == "idle" else [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            time.sleep(0.5 if spinners else 0)
            rates = {}
            for n in (cores, 1):
                torch.set_num_threads(n)
                rates[n], _ = training_rate(model_cfg, cfg, vocab, torch.float32, cpu, args.steps)
            torch.set_num_threads(cores)
            picked, why = pick_threads(0, cpu, model_cfg.n_embd, rows)
            torch.set_num_threads(cores)
            best = max(rates, key=rates.get)
            print(f"{load}: {cores} threads {rates[cores]:8,.0f} tokens/s | 1 thread {rates[1]:8,.0f} tokens/s"
                  f" | picked {picked} ({'the faster' if picked == best else 'NOT the faster'}; {why})")
        finally:
            for p in spinners:
                p.kill()


if __name__ == "__main__":
    main()
