"""bench/gpu.py works the first time on a GPU: every step of it runs here, tiny, on the CPU."""

import json
import subprocess
import sys

import pytest

from tests.conftest import MIXED, ROOT, SONNET


@pytest.mark.e2e
def test_the_gpu_script_runs_every_step_on_the_cpu(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(SONNET * 6 + MIXED, encoding="utf-8")
    out = tmp_path / "figures"
    done = subprocess.run([sys.executable, str(ROOT / "bench/gpu.py"), "--device", "cpu", "--tiny", "--corpus",
                           str(corpus), "--out-dir", str(out)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((out / "figures.json").read_text())
    for step in ("data", "shipped_run", "compile_off", "resume", "generation", "finetune"):
        assert step in figures and "error" not in figures[step], (step, figures.get(step))
    assert figures["shipped_run"]["steps"] == 40 and figures["shipped_run"]["tokens_per_s"] > 0
    assert figures["resume"]["default"]["bit_exact"] and figures["resume"]["deterministic"]["bit_exact"]  # CPU
    assert figures["generation"]["cached_tokens_per_s"] > 0
    assert figures["generation"]["decode_step_eager_tokens_per_s"] > 0  # (the CUDA graph is only on CUDA)
    assert "CUDA graphs: not on this device" in done.stdout
    assert "shipped_run: val never reached 1.47 nats/char" in done.stdout  # 40 steps of a tiny model
    assert (out / "shipped.txt").read_text().startswith("model:")
    assert figures["finetune"]["steps"] == 20 and figures["finetune"]["replies_bits_per_char"] > 0
    assert "finetune: from" in (out / "finetune.txt").read_text()
