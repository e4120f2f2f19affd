"""Several processes (DDP over gloo on the CPU): the averaged gradient is the big batch's
gradient, and a 2-process run from the stage command trains, is interrupted and resumes."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from sml.model import GPT
from sml.run.checkpoint import load_checkpoint
from sml.run.device import Runtime
from sml.train import train_step
from tests.conftest import params_template
from tests.test_train import MODEL, TRAIN, data  # noqa: F401  (data: the tiny corpus fixture)

VOCAB, MICRO = 300, 2


def fixed_batches(rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Rank ``rank``'s micro-batches: different on each rank, the same in every process."""
    g = torch.Generator().manual_seed(100 + rank)
    ids = [torch.randint(0, VOCAB, (4, MODEL.block_size + 1), generator=g) for _ in range(MICRO)]
    return [(b[:, :-1], b[:, 1:]) for b in ids]


class FixedSampler:
    def __init__(self, batches):
        self.batches = iter(batches)

    def next(self):
        return next(self.batches)


def gradients_of_one_step(model, forward, ddp, batches, grad_accum) -> dict[str, torch.Tensor]:
    """The gradient ``train_step`` hands the optimizer (caught just before the step)."""
    caught = {}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: caught.update({n: p.grad.clone() for n, p in model.named_parameters()}))
    cfg = dataclasses.replace(TRAIN, grad_accum=grad_accum, grad_clip=0.0)
    runtime = Runtime(torch.device("cpu"), torch.float32, compile=False)
    parts = SimpleNamespace(cfg=cfg, runtime=runtime, model=model, forward=forward, ddp=ddp,
                            optimizer=optimizer, scaler=torch.amp.GradScaler("cpu", enabled=False),
                            sampler=FixedSampler(batches))
    train_step(parts)
    return caught


def _rank_gradients(rank: int, world: int, init: str, out: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(MODEL, dropout=0.0), VOCAB)
    ddp = DistributedDataParallel(model)
    grads = gradients_of_one_step(model, ddp, ddp, fixed_batches(rank), MICRO)
    if rank == 0:
        torch.save(grads, out)
    dist.destroy_process_group()


@pytest.mark.e2e
def test_the_averaged_gradient_equals_the_gradient_of_the_union_of_the_batches(tmp_path):
    out = tmp_path / "ddp_grads.pt"
    mp.spawn(_rank_gradients, args=(2, f"file://{tmp_path / 'rendezvous'}", str(out)), nprocs=2)
    ddp_grads = torch.load(out)

    torch.manual_seed(0)
    model = GPT(dataclasses.replace(MODEL, dropout=0.0), VOCAB)
    union = fixed_batches(0) + fixed_batches(1)  # one process, all four micro-batches
    single = gradients_of_one_step(model, model, None, union, 2 * MICRO)
    assert single.keys() == ddp_grads.keys()
    for name in single:
        torch.testing.assert_close(ddp_grads[name], single[name], rtol=1e-4, atol=1e-6, msg=name)


def distributed_params(**train) -> dict:
    """The train stage's params.yaml here: the suite's own, with test_train's model and train."""
    raw = params_template()
    raw["model"].update(dataclasses.asdict(MODEL))
    raw["train"].update(dataclasses.asdict(TRAIN) | train)
    return raw


def stage_params(tmp_path, **train) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(distributed_params(**train)), encoding="utf-8")
    return str(path)


def train_command(data, out, params) -> list[str]:  # noqa: F811
    return [sys.executable, "-m", "stages.train", "--tokens", str(data / "tokens"),
            "--tokenizer", str(data / "tokenizer" / "tokenizer.json"),
            "--checkpoint", str(out / "ckpt" / "checkpoint.pt"), "--model", str(out / "model"),
            "--log", str(out / "log.tsv"), "--metrics", str(out / "metrics.json"), "--params", params]


@pytest.mark.e2e
def test_a_two_process_run_trains_is_interrupted_and_resumes_exactly(data, tmp_path):  # noqa: F811
    params = stage_params(tmp_path, nproc=2, max_iters=100, log_interval=5, eval_interval=50,
                          checkpoint_interval=10)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    straight = subprocess.run(train_command(data, tmp_path / "straight", params), cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert "x 2 processes" in straight.stdout and "done: best val" in straight.stdout
    metrics = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert metrics["steps"] == 100
    header = (tmp_path / "straight" / "log.tsv").read_text().splitlines()
    assert int(header[1].split("\t")[1]) == 5 * 2 * TRAIN.batch_size * MODEL.block_size  # 2 ranks' tokens

    resumed = tmp_path / "resumed"
    proc = subprocess.Popen(train_command(data, resumed, params), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    saved = resumed / "ckpt" / "checkpoint.json"
    deadline = time.monotonic() + 240
    while not saved.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C, once the first checkpoint is there
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    step = json.loads(saved.read_text())["step"]
    assert 10 <= step < 100 and f"interrupted at step {step}" in err

    again = subprocess.run(train_command(data, resumed, params), cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming at step {step}" in again.stdout
    a = load_checkpoint(tmp_path / "straight" / "model" / "model.pt")
    b = load_checkpoint(resumed / "model" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_more_processes_than_gpus_is_one_line(monkeypatch):
    from sml.run import distributed
    from sml.run.errors import SMLError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(SMLError, match="train.nproc = 3, but this machine has 2 CUDA GPU"):
        distributed.launch(3, "stages.train", [])


def test_several_processes_on_an_apple_gpu_is_one_line(monkeypatch):
    from sml.run import distributed
    from sml.run.errors import SMLError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(SMLError, match="2 processes on MPS: an Apple GPU trains in one process; set train.nproc: 1"):
        distributed.start("mps")
