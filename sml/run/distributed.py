"""Training on several GPUs (or CPU processes): data parallelism with PyTorch's own engine.

Data parallelism in four lines: every process (a *rank*) holds a full copy of the model and
draws its own batches; after the backward pass the gradients are averaged across ranks
(an all-reduce), so every copy takes the same optimizer step and the weights stay equal.
The global batch is ``batch_size x grad_accum x world_size`` windows.

PyTorch does the hard parts: ``torchrun`` starts the processes and tells each its rank
(environment variables RANK, LOCAL_RANK, WORLD_SIZE), ``init_process_group`` connects
them (NCCL between NVIDIA GPUs, gloo between CPU processes), and
``DistributedDataParallel`` averages the gradients while the backward pass still runs.
This module only reads the environment, wraps the few collective calls the loop needs,
and starts torchrun itself when ``train.nproc`` asks for several processes, so that
``dvc repro`` and ``dvc exp run`` can train on several GPUs too.

Left out on purpose: several machines (torchrun's --nnodes), and sharding the weights or
optimizer state (FSDP, ZeRO): at this model size every GPU holds a full copy with ease.
"""

import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from sml.run.errors import SMLError


@dataclass(frozen=True)
class Dist:
    """Which process this is among how many. One process: rank 0 of 1, and every call is a no-op."""

    rank: int = 0
    local_rank: int = 0  # which GPU of this machine
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone prints and writes files (log, checkpoints, model)."""
        return self.rank == 0

    def mean(self, value: float) -> float:
        """The mean of ``value`` over all ranks."""
        return self.sum(value) / self.world_size

    def sum(self, value: float) -> float:
        """The sum of ``value`` over all ranks."""
        if self.world_size == 1:
            return value
        t = torch.tensor(float(value), dtype=torch.float64, device=self._device())
        dist.all_reduce(t)
        return t.item()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any: how the ranks agree to stop."""
        return self.sum(1.0 if flag else 0.0) > 0

    def gather(self, obj: Any) -> list:
        """``obj`` of every rank, in rank order (on every rank): e.g. their sampler states."""
        if self.world_size == 1:
            return [obj]
        objects = [None] * self.world_size
        dist.all_gather_object(objects, obj)
        return objects

    def barrier(self) -> None:
        """Wait until every rank gets here (e.g. until rank 0 has written a file)."""
        if self.world_size > 1:
            dist.barrier()

    def _device(self) -> torch.device:
        # NCCL reduces tensors on the GPU; gloo on the CPU.
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")


def local_rank() -> int:
    """Which GPU of this machine this process trains on (0 unless torchrun says otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def launched_by_torchrun() -> bool:
    """Is this process one of several that torchrun started?"""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device_type: str) -> Dist:
    """Join the process group torchrun set up (NCCL between GPUs, gloo between CPU processes), or stay alone."""
    if not launched_by_torchrun():
        return Dist()
    env = Dist(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))
    if device_type == "mps":  # neither NCCL nor gloo reduces tensors on an Apple GPU
        raise SMLError(f"{env.world_size} processes on MPS: an Apple GPU trains in one process; set"
                       " train.nproc: 1 (or train.device: cpu to try several CPU processes)")
    # Each process has already taken its GPU, cuda:<local_rank> (sml.run.device.pick_runtime).
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return env


def stop(env: Dist) -> None:
    """Leave the process group (so the processes exit cleanly)."""
    if env.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def oversubscribed(nproc: int, cores: int) -> str:
    """A warning when ``nproc`` CPU processes are more than the ``cores`` (else "").

    >>> oversubscribed(8, 2)[:60]
    'warning: train.nproc = 8 CPU processes on 2 cores: they take'
    >>> oversubscribed(2, 2)
    ''
    """
    if nproc <= cores:
        return ""
    return (f"warning: train.nproc = {nproc} CPU processes on {cores} cores: they take turns, and each step waits"
            " for the slowest; train.nproc: 1 trains faster here")


def launch(nproc: int, module: str, args: list[str]) -> int:
    """Run ``python -m module args`` as ``nproc`` processes under torchrun, here; returns the exit code.

    The same as typing ``torchrun --standalone --nproc_per_node=N -m module args``: a
    stage honours ``train.nproc`` this way, so DVC's one command trains on several GPUs.
    Each worker sees WORLD_SIZE and does not launch again.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise SMLError(f"train.nproc = {nproc}, but this machine has {torch.cuda.device_count()} CUDA GPU(s):"
                       f" set train.nproc to at most {torch.cuda.device_count()}")
    if not torch.cuda.is_available() and (warning := oversubscribed(nproc, os.cpu_count() or 1)):
        print(warning, file=sys.stderr)
    if not torch.cuda.is_available() and not os.environ.get("OMP_NUM_THREADS"):
        # CPU processes share the cores: split them (torchrun would set 1 thread each).
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    try:
        # "--": the stage's own options (--log ...) must not be read as torchrun's (--log-dir).
        torchrun(["--standalone", f"--nproc_per_node={nproc}", "-m", module, "--", *args])
    except SignalException as e:  # Ctrl-C: the workers stopped at a step and saved; they said so
        return 130 if e.sigval == 2 else 128 + int(e.sigval)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        code = failure.exitcode
        if code < 0:  # killed by a signal
            print(f"error: training process {rank} was killed by signal {-code}", file=sys.stderr)
            return 1
        return 130 if code == 130 else 1  # the worker printed its own one-line error
    return 0
