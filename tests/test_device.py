"""Device and precision choices: auto picks the best available, explicit choices are checked.

The GPU, MPS and Windows cases run here on any CPU, by pretending (monkeypatch): each one is
a bug that a CUDA, Mac or Windows user met, and that no CPU-only test saw before.
"""

import dataclasses

import pytest
import torch
import yaml

import sml.run.device as device_module
from sml.config import EvaluateConfig
from sml.run.device import Runtime, pick_device, pick_dtype, pick_runtime
from sml.run.errors import SMLError
from sml.run.evaluation import evaluate
from tests.conftest import params_template


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "nvidia_gpu_present", lambda: False)


@pytest.fixture
def fake_gpus(monkeypatch):
    """Pretend torch sees two CUDA GPUs with native bfloat16; returns the devices set_device got."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    return chosen


@pytest.fixture
def restore_global_torch_state():
    """pick_runtime sets process-wide switches; put them back for the tests that follow."""
    precision, deterministic = torch.get_float32_matmul_precision(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_float32_matmul_precision(precision)
    torch.use_deterministic_algorithms(deterministic)


def test_auto_on_a_cpu_only_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "nvidia_gpu_present", lambda: False)
    runtime = pick_runtime("auto", "auto", "auto")
    assert runtime.device.type == "cpu" and runtime.compile is False
    expected = torch.bfloat16 if device_module.cpu_has_fast_bf16() else torch.float32
    assert runtime.dtype == expected and not runtime.use_scaler
    assert "device cpu" in runtime.describe()


def test_auto_prefers_mps_to_the_cpu_and_keeps_it_float32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto").type == "mps"
    assert pick_dtype("auto", torch.device("mps")) == torch.float32


def test_auto_warns_when_an_nvidia_gpu_is_unusable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "nvidia_gpu_present", lambda: True)
    with pytest.warns(UserWarning, match="NVIDIA GPU is present but this torch has no CUDA"):
        assert pick_device("auto").type == "cpu"


@pytest.mark.parametrize("choice", ["cuda", "mps"])
def test_an_unavailable_device_fails_with_the_key(monkeypatch, choice):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(SMLError, match=f"train.device = '{choice}', but this torch cannot use {choice}"):
        pick_device(choice)


def test_dtypes_on_cuda_and_cpu(monkeypatch):
    # An older GPU (T4, RTX 20xx): bfloat16 only emulated, which is slower than float16 + scaler.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert pick_dtype("auto", torch.device("cuda")) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert pick_dtype("float32", torch.device("cuda")) == torch.float32
    with pytest.raises(SMLError, match="float16' is not supported on the CPU"):
        pick_dtype("float16", torch.device("cpu"))
    assert pick_runtime("cpu", "bfloat16", True).compile is True


def test_explicit_bfloat16_on_a_gpu_that_only_emulates_it_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    with pytest.raises(SMLError, match=r"^train.dtype = 'bfloat16', but this GPU only emulates .*use float16 or auto$"):
        pick_dtype("bfloat16", torch.device("cuda"))
    assert pick_dtype("float16", torch.device("cuda")) == torch.float16


@pytest.mark.parametrize("release, refused", [("13.6.1", True), ("14.0", False), ("15.2", False)])
def test_bfloat16_on_mps_needs_macos_14(monkeypatch, release, refused):
    monkeypatch.setattr(device_module.platform, "mac_ver", lambda: (release, ("", "", ""), "arm64"))
    mps = torch.device("mps")
    assert pick_dtype("auto", mps) == torch.float32  # auto stays float32 on any macOS
    if refused:
        with pytest.raises(SMLError, match=r"needs macOS 14 .* \(this is macOS 13.6.1\): set train.dtype: float32"):
            pick_dtype("bfloat16", mps)
    else:
        assert pick_dtype("bfloat16", mps) == torch.bfloat16


def test_compile_on_windows_without_triton_is_refused(monkeypatch, fake_gpus, restore_global_torch_state):
    monkeypatch.setattr(device_module, "os_platform", lambda: "win32")
    monkeypatch.setattr(device_module, "triton_installed", lambda: False)
    with pytest.raises(SMLError, match=r"train.compile = true, .* set train.compile: false \(or auto\)$"):
        pick_runtime("cuda", "auto", True)
    assert pick_runtime("cuda", "auto", "auto").compile is False  # auto: Linux only
    monkeypatch.setattr(device_module, "triton_installed", lambda: True)  # e.g. the triton-windows package
    assert pick_runtime("cuda", "auto", True).compile is True
    monkeypatch.setattr(device_module, "os_platform", lambda: "linux")
    assert pick_runtime("cuda", "auto", "auto").compile is True


def test_a_cuda_runtime_uses_tf32_for_float32_matmuls(fake_gpus, restore_global_torch_state):
    torch.set_float32_matmul_precision("highest")
    runtime = pick_runtime("cuda", "float32", False)
    assert torch.get_float32_matmul_precision() == "high"
    assert "autocast float32 (TF32 matmuls)" in runtime.describe()
    assert "TF32" not in pick_runtime("cuda", "bfloat16", False).describe()  # autocast: not about fp32 matmuls


def test_a_cpu_runtime_leaves_matmul_precision_alone(no_gpu, restore_global_torch_state):
    torch.set_float32_matmul_precision("highest")
    runtime = pick_runtime("cpu", "float32", False)
    assert torch.get_float32_matmul_precision() == "highest"
    assert runtime.describe() == "device cpu, autocast float32, compile off"


def test_each_process_takes_the_gpu_of_its_local_rank(fake_gpus, restore_global_torch_state):
    assert pick_runtime("cuda", local_rank=1).device == torch.device("cuda", 1)
    assert pick_runtime("auto", local_rank=0).device == torch.device("cuda", 0)
    assert fake_gpus == [torch.device("cuda", 1), torch.device("cuda", 0)]
    with pytest.raises(SMLError, match="local rank 2 needs cuda:2, but this torch sees 2 GPU"):
        pick_runtime("cuda", local_rank=2)
    assert pick_runtime("cpu", local_rank=1).device == torch.device("cpu")  # no GPU, nothing to index


def test_deterministic_mode_is_switched_on_and_shown(no_gpu, monkeypatch, restore_global_torch_state):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(False)
    runtime = pick_runtime("cpu", "float32", False, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled() and runtime.deterministic
    assert runtime.describe().endswith(", compile off, deterministic")
    assert "CUBLAS_WORKSPACE_CONFIG" not in device_module.os.environ  # a CUDA setting only
    assert not pick_runtime("cpu", "float32", False).deterministic


def test_deterministic_on_cuda_configures_cublas(fake_gpus, monkeypatch, restore_global_torch_state):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    pick_runtime("cuda", "float32", False, deterministic=True)
    assert device_module.os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_a_runtime_built_by_hand_keeps_working():
    runtime = Runtime(torch.device("cpu"), torch.float32, compile=False)  # as bench/train.py does
    assert not runtime.deterministic and not runtime.use_scaler


def test_evaluate_names_its_own_device_key(no_gpu, tmp_path):
    cfg = EvaluateConfig(device="cuda", batch_size=1, max_tokens=100, prompts=("a",), max_new_tokens=1,
                         temperature=1.0, seed=0)
    with pytest.raises(SMLError, match="^evaluate.device = 'cuda', but this torch cannot use cuda: use auto or cpu$"):
        evaluate(tmp_path, tmp_path, tmp_path, tmp_path, cfg)
    with pytest.raises(SMLError, match="^evaluate.device = 'mps'"):
        evaluate(tmp_path, tmp_path, tmp_path, tmp_path, dataclasses.replace(cfg, device="mps"))


def test_the_sample_stage_names_its_own_device_key(no_gpu, tmp_path, capsys):
    from stages.sample import main

    params = params_template()
    params["sample"]["device"] = "cuda"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(params=path, model=tmp_path / "model", tokenizer=tmp_path / "tokenizer.json", out=tmp_path / "s.md")
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: sample.device = 'cuda', but this torch cannot use cuda: use auto or cpu\n"


@pytest.fixture
def threads_kept():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_are_the_faster_of_all_cores_and_one_unless_set(monkeypatch, threads_kept):
    from sml.run.device import pick_threads

    cpu = torch.device("cpu")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    chosen = []
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    busy = {4: 1_000.0, 1: 3_000.0}  # another program on a core: the team of 4 waits for it at every op
    monkeypatch.setattr(device_module, "_threads_rate", lambda n, width, rows: busy[n])
    count, why = pick_threads(0, cpu, 128, 2048)
    assert (count, chosen[-1]) == (1, 1) and "4 threads ran this model's kind of work at 0.33x" in why
    assert "another program busy" in why
    idle = {4: 2_500.0, 1: 1_000.0}
    monkeypatch.setattr(device_module, "_threads_rate", lambda n, width, rows: idle[n])
    assert pick_threads(0, cpu, 128, 2048)[0] == 4 and chosen[-1] == 4
    even = {4: 1_000.0, 1: 1_050.0}  # a tie, within noise: every core is kept
    monkeypatch.setattr(device_module, "_threads_rate", lambda n, width, rows: even[n])
    assert pick_threads(0, cpu, 128, 2048)[0] == 4
    assert pick_threads(0, cpu, 128, 2048, picked=1) == (1, "picked when the run started")  # a resumed run
    assert pick_threads(3, cpu, 128, 2048, picked=1) == (3, "train.threads") and chosen[-1] == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's, or set for several processes: kept
    assert pick_threads(0, cpu, 128, 2048)[1] == "OMP_NUM_THREADS" and chosen[-1] == 3


def test_the_threads_measurement_leaves_the_threads_and_the_random_numbers_alone(threads_kept):
    from sml.run.device import _threads_rate

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    before = torch.get_num_threads()
    assert _threads_rate(1, 64, 256, budget_s=0.01) > 0
    assert torch.get_num_threads() == before and torch.equal(torch.rand(3), expected)


def test_sampling_times_its_decode_step_on_every_core_and_on_one_and_keeps_the_faster(monkeypatch, threads_kept):
    from sml.model import GPT
    from sml.run.device import pick_decode_threads
    from tests.test_model import TINY

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    model = GPT(TINY, 50).train()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    count, why, steps_per_s = pick_decode_threads(model, torch.device("cpu"))
    assert count in (1, 2) and torch.get_num_threads() == count and why.startswith("timed: one thread ran")
    assert steps_per_s > 0
    assert model.training and torch.equal(torch.rand(3), expected)  # the model's mode and the RNG left alone
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's choice (or several processes'): kept
    torch.set_num_threads(2)
    assert pick_decode_threads(model, torch.device("cpu")) == (2, "OMP_NUM_THREADS", None)


def test_the_decode_step_is_compiled_only_past_its_measured_break_even(monkeypatch):
    from sml.run.device import compile_pays

    cpu = torch.device("cpu")
    assert compile_pays(cpu, 1_500, 1_000.0)[0] is False  # 16 s to save 1/3 ms a token: 48,000 tokens
    pays, line = compile_pays(cpu, 60_000, 1_000.0)
    assert pays and line == "compiled decode step: 60,000 tokens to write; compiling pays from ~48,000 here"
    assert compile_pays(cpu, 60_000, None)[1] == "eager decode step (not timed here, so no break-even for compiling it)"
    assert compile_pays(torch.device("cuda"), 10**9, 100.0)[0] is False  # not measured on a GPU yet


def test_a_decode_step_that_does_not_compile_samples_eagerly_and_says_so(monkeypatch, capsys):
    from sml.model import GPT
    from sml.run.device import compiled_or_eager
    from tests.test_model import TINY

    def broken(model):
        def run(*args, **kwargs):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = GPT(TINY, 50)
    assert compiled_or_eager(model) is model
    assert "compiling the decode step failed (RuntimeError): sampling eagerly" in capsys.readouterr().err
