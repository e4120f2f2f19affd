"""Training: a tiny run learns; interrupted runs resume exactly; failures keep what was good."""

import dataclasses
import io
import json
import math
import os
import pickle
import signal

import pytest
import torch

import sml.run.trainer
import sml.train as train_module
from sml.config import load_params
from sml.optim import lr_at
from sml.run.checkpoint import load_checkpoint, load_model
from sml.run.errors import SMLError
from sml.run.progress import LOG_COLUMNS
from sml.run.trainer import TrainFiles, train
from sml.tokenizer import Tokenizer
from sml.train import Interrupted
from tests.conftest import TEST_PARAMS

SHIPPED = load_params(TEST_PARAMS)  # for its keys: every value the tests rely on is set below
MODEL = dataclasses.replace(SHIPPED.model, n_layer=2, n_head=2, n_embd=32, block_size=32, dropout=0.1)
TRAIN = dataclasses.replace(
    SHIPPED.train, device="cpu", dtype="float32", compile=False, deterministic=False, nproc=1, batch_size=8,
    max_iters=30, warmup_iters=5, lr=3e-3, min_lr=3e-4, eval_interval=10, eval_iters=4, log_interval=5,
    checkpoint_interval=10, patience=0, time_budget_s=0.0,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory, ):
    """A tokenizer and token files made from the tiny test corpus."""
    from tests.conftest import MIXED, SONNET, encode_text_file

    root = tmp_path_factory.mktemp("data")
    corpus = root / "corpus.txt"
    corpus.write_text(SONNET * 6 + MIXED, encoding="utf-8")
    tok = Tokenizer.train(corpus.read_text(encoding="utf-8"), 300, "gpt4")
    tok.save(root / "tokenizer")
    encode_text_file(corpus, tok, root / "tokens")
    return root


def files(data, out) -> TrainFiles:
    return TrainFiles(data / "tokens", data / "tokenizer" / "tokenizer.json", out / "ckpt" / "checkpoint.pt",
                      out / "model", out / "log.tsv", out / "metrics.json")


def run(data, out, cfg=TRAIN, model=MODEL, **kwargs) -> tuple[dict, str]:
    import io

    text = io.StringIO()
    metrics = train(model, cfg, files(data, out), out=text, **kwargs)
    return metrics, text.getvalue()


def test_a_tiny_run_learns_and_writes_everything(data, tmp_path):
    metrics, text = run(data, tmp_path)
    assert "parameters (token embedding" in text and "MFLOP/token" in text
    assert "device cpu, autocast float32, compile off" in text
    log = (tmp_path / "log.tsv").read_text().splitlines()
    assert log[0].split("\t") == list(LOG_COLUMNS)
    rows = [dict(zip(LOG_COLUMNS, line.split("\t"), strict=True)) for line in log[1:]]
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20, 25, 30]
    vals = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    assert len(vals) == 3 and vals[-1] < vals[0] < math.log(300) + 0.5
    assert metrics["val_loss"] == pytest.approx(min(vals)) and metrics["last_val_loss"] == pytest.approx(vals[-1])
    meta = json.loads((data / "tokens" / "meta.json").read_text())
    chars_per_token = meta["val"]["chars"] / meta["val"]["tokens"]
    assert metrics["val_nats_per_char"] == pytest.approx(metrics["val_loss"] / chars_per_token)
    assert metrics["val_bits_per_char"] == pytest.approx(metrics["val_nats_per_char"] / math.log(2))
    assert metrics["tokens_per_s"] > 0 and metrics["train_seconds"] > 0
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    model = load_model(tmp_path / "model", data / "tokenizer" / "tokenizer.json")
    assert model.cfg == MODEL


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_an_interrupted_run_resumes_to_exactly_the_same_weights(data, tmp_path, optimizer):
    cfg = dataclasses.replace(TRAIN, optimizer=optimizer, muon_lr=6e-3)
    run(data, tmp_path / "straight", cfg)

    def interrupt(step):  # a real Ctrl-C, in the middle of the run
        if step == 17:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="interrupted at step 17: checkpoint saved"):
        run(data, tmp_path / "resumed", cfg, on_step=interrupt)
    assert json.loads((tmp_path / "resumed/ckpt/checkpoint.json").read_text())["step"] == 17
    _, text = run(data, tmp_path / "resumed", cfg)
    assert "resuming" in text
    straight = load_checkpoint(tmp_path / "straight/model/model.pt")
    resumed = load_checkpoint(tmp_path / "resumed/model/model.pt")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    logs = [(tmp_path / d / "log.tsv").read_text().splitlines() for d in ("straight", "resumed")]
    assert [r.split("\t")[:4] for r in logs[0]] == [r.split("\t")[:4] for r in logs[1]]


def test_every_new_dial_at_once_trains_resumes_exactly_evaluates_and_samples(data, tmp_path):
    """Issue 27's dials together (grouped-query attention, qk_norm, squared ReLU at its own width,
    RoPE's base, the norms' eps, the WSD schedule): the whole path a model takes."""
    from sml.config import EvaluateConfig
    from sml.generate import complete
    from sml.run.evaluation import evaluate

    model = dataclasses.replace(MODEL, n_kv_head=1, qk_norm=True, mlp="relu2", mlp_hidden=48, rope_theta=1000.0,
                                norm="rmsnorm", norm_eps=1e-5)
    cfg = dataclasses.replace(TRAIN, schedule="wsd", decay_fraction=0.3)
    run(data, tmp_path / "straight", cfg, model)

    def interrupt(step):
        if step == 13:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        run(data, tmp_path / "resumed", cfg, model, on_step=interrupt)
    metrics, _ = run(data, tmp_path / "resumed", cfg, model)
    straight, resumed = (load_checkpoint(tmp_path / d / "model/model.pt") for d in ("straight", "resumed"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    losses = [float(row.split("\t")[LOG_COLUMNS.index("train_loss")]) for row in log_rows(tmp_path / "resumed")]
    assert losses[-1] < losses[0] - 0.3, losses  # it learns
    tokenizer = data / "tokenizer" / "tokenizer.json"
    trained = load_model(tmp_path / "resumed/model", tokenizer)
    assert trained.cfg == model
    scored = evaluate(tmp_path / "resumed/model", tokenizer, data / "tokens", data / "tokens_text" / "train.txt",
                      EvaluateConfig(**{**dataclasses.asdict(SHIPPED.evaluate), "device": "cpu", "max_new_tokens": 8,
                                        "prompts": ("ROMEO:",)}), out=io.StringIO())
    assert scored["val"]["nats_per_token"] == pytest.approx(metrics["val_loss"], rel=0.05)
    pieces, _ = complete(trained, Tokenizer.load(tokenizer), "ROMEO:", 8)
    assert "".join(pieces)


def test_a_finished_run_reruns_as_a_no_op(data, tmp_path):
    first, _ = run(data, tmp_path)
    second, text = run(data, tmp_path)
    assert "resuming" in text and second["val_loss"] == first["val_loss"]


def test_a_finished_checkpoint_still_writes_every_output(data, tmp_path):
    run(data, tmp_path)
    outputs = [tmp_path / "log.tsv", tmp_path / "metrics.json", tmp_path / "model" / "model.pt",
               tmp_path / "model" / "model.json"]
    for path in outputs:  # what DVC does before it reruns the stage
        path.unlink()
    run(data, tmp_path, dataclasses.replace(TRAIN, log_interval=10))  # not in the fingerprint
    assert all(path.exists() for path in outputs)


def test_raising_max_iters_trains_longer_from_the_checkpoint(data, tmp_path):
    run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=20))
    first_log = (tmp_path / "log.tsv").read_text().splitlines()
    longer = dataclasses.replace(TRAIN, max_iters=30)
    metrics, text = run(data, tmp_path, longer)
    assert "train longer: train.max_iters 20 -> 30, resuming at step 20" in text
    assert f"from {lr_at(19, dataclasses.replace(TRAIN, max_iters=20)):.2e} to {lr_at(20, longer):.2e}" in text
    log = (tmp_path / "log.tsv").read_text().splitlines()
    assert log[: len(first_log)] == first_log  # the first 20 steps stay as they were
    assert [int(line.split("\t")[0]) for line in log[1:]] == [5, 10, 15, 20, 25, 30]
    assert metrics["steps"] == 30
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert info["schedule"] == [{"from_step": 0, "max_iters": 20}, {"from_step": 20, "max_iters": 30}]


def test_a_wsd_run_holds_its_lr_then_decays_and_trains_longer_from_the_stable_phase(data, tmp_path):
    wsd = dataclasses.replace(TRAIN, schedule="wsd", decay_fraction=0.2, max_iters=20, log_interval=1)
    run(data, tmp_path, wsd)
    lrs = [float(row.split("\t")[LOG_COLUMNS.index("lr")]) for row in log_rows(tmp_path)]
    lr, floor = TRAIN.lr, TRAIN.min_lr
    assert lrs[4:17] == [lr] * 13  # after 5 warmup steps, held until the last 20% (from step 16)
    assert lrs[16] > lrs[17] > lrs[18] > lrs[19] == pytest.approx(lr + 3 / 4 * (floor - lr))  # a straight line
    _, text = run(data, tmp_path, dataclasses.replace(wsd, max_iters=30))
    assert f"follows the wsd schedule to {TRAIN.min_lr:.2e} at step 30" in text
    lrs = [float(row.split("\t")[LOG_COLUMNS.index("lr")]) for row in log_rows(tmp_path)]
    assert lrs[20:25] == [lr] * 5 and lrs[-1] == pytest.approx(lr + 5 / 6 * (floor - lr))  # stable again, then down


def log_rows(out) -> list[str]:
    return (out / "log.tsv").read_text().splitlines()[1:]


def test_a_longer_run_interrupted_resumes_exactly(data, tmp_path):
    short, longer = dataclasses.replace(TRAIN, max_iters=20), dataclasses.replace(TRAIN, max_iters=30)
    for out in ("straight", "resumed"):
        run(data, tmp_path / out, short)

    def interrupt(step):
        if step == 25:
            os.kill(os.getpid(), signal.SIGINT)

    run(data, tmp_path / "straight", longer)
    with pytest.raises(Interrupted):
        run(data, tmp_path / "resumed", longer, on_step=interrupt)
    _, text = run(data, tmp_path / "resumed", longer)
    assert "resuming at step 25" in text and "train longer" not in text
    straight = load_checkpoint(tmp_path / "straight/model/model.pt")
    resumed = load_checkpoint(tmp_path / "resumed/model/model.pt")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_max_iters_below_the_checkpoint_starts_over(data, tmp_path):
    run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=20))
    metrics, text = run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=10))
    assert "it is at step 20, past train.max_iters 10; starting at step 0" in text
    assert metrics["steps"] == 10


def test_a_checkpoint_of_another_run_is_not_resumed(data, tmp_path):
    run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=10))
    _, text = run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=10, lr=1e-3))
    assert "not resuming" in text and "train.lr: 0.003 -> 0.001" in text


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    real_lr_at = train_module.lr_at
    monkeypatch.setattr(train_module, "lr_at",
                        lambda step, cfg, schedule=None: 1e30 if step >= 10 else real_lr_at(step, cfg))
    with pytest.raises(SMLError, match=r"loss is nan at step 15 .* last good checkpoint .* is kept"):
        run(data, tmp_path, dataclasses.replace(TRAIN, grad_clip=0.0))
    saved = json.loads((tmp_path / "ckpt/checkpoint.json").read_text())
    assert saved["step"] == 10
    weights = load_checkpoint(tmp_path / "ckpt/checkpoint.pt")["model"]
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_a_model_with_another_tokenizer_fails_clearly(data, tmp_path):
    run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=5))
    other = Tokenizer.train("something else entirely " * 50, 270, "gpt4")
    path = other.save(tmp_path / "other")
    with pytest.raises(SMLError, match="was trained with tokenizer sha256 .* but .* has sha256"):
        load_model(tmp_path / "model", path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": Exploit()}, f)
    with pytest.raises(SMLError, match="not a readable checkpoint"):
        load_checkpoint(path)
    assert not Exploit.ran


class Exploit:
    ran = False

    def __reduce__(self):
        return (setattr, (Exploit, "ran", True))


def test_weight_decay_applies_to_matrices_only():
    from sml.model import GPT
    from sml.optim import make_optimizer

    model = GPT(dataclasses.replace(MODEL, bias=True), 300)
    decayed, plain = make_optimizer(model, TRAIN, torch.device("cpu")).param_groups
    assert decayed["weight_decay"] == TRAIN.weight_decay and plain["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    from sml.model import GPT
    from sml.optim import make_optimizer

    model = GPT(dataclasses.replace(MODEL, bias=True, positions="learned", tie_weights=False), 300)
    cfg = dataclasses.replace(TRAIN, optimizer="muon", muon_lr=6e-3)
    adamw, muon = make_optimizer(model, cfg, torch.device("cpu")).parts
    names = {p: n for n, p in model.named_parameters()}
    in_muon = [names[p] for g in muon.param_groups for p in g["params"]]
    in_adamw = [names[p] for g in adamw.param_groups for p in g["params"]]
    assert type(muon).__name__ == "Muon" and sorted(in_muon + in_adamw) == sorted(names.values())
    assert in_muon and all(n.startswith("blocks.") and n.endswith(".weight") and "norm" not in n for n in in_muon)
    assert {"wte.weight", "wpe.weight", "lm_head.weight"} <= set(in_adamw)  # embeddings and head stay AdamW
    assert [g["lr_scale"] for g in muon.param_groups] == [2.0]  # muon_lr / lr: the schedule's shape, its own peak


def test_muon_trains(data, tmp_path):
    metrics, _ = run(data, tmp_path, dataclasses.replace(TRAIN, optimizer="muon", muon_lr=6e-3))
    losses = [float(line.split("\t")[2]) for line in (tmp_path / "log.tsv").read_text().splitlines()[1:]]
    assert losses[-1] < losses[0] - 1.0  # nats/token: it learns, as AdamW does on the same steps


def test_gradient_accumulation_and_bf16_autocast_train_too(data, tmp_path):
    cfg = dataclasses.replace(TRAIN, grad_accum=2, batch_size=4, dtype="bfloat16")
    metrics, text = run(data, tmp_path, cfg)
    assert "autocast bfloat16" in text and "256 tokens/step" in text
    losses = [float(line.split("\t")[2]) for line in (tmp_path / "log.tsv").read_text().splitlines()[1:]]
    assert math.isfinite(metrics["val_loss"]) and losses[-1] < losses[0] - 0.5


def scripted_val(monkeypatch, losses: list[float]) -> None:
    """Make the val loss at the k-th evaluation ``losses[k]`` (the train-split estimate stays real)."""
    real = train_module.estimate_loss
    evaluations = iter(losses)
    monkeypatch.setattr(train_module, "estimate_loss",
                        lambda run, split: next(evaluations) if split == "val" else real(run, split))


def test_the_best_weights_are_exported_not_the_last(data, tmp_path, monkeypatch):
    scripted_val(monkeypatch, [3.0, 2.5, 2.7])  # evaluations at steps 10, 20, 30
    metrics, text = run(data, tmp_path)
    assert metrics["best_step"] == 20 and metrics["val_loss"] == 2.5 and metrics["last_val_loss"] == 2.7
    assert metrics["steps"] == 30 and not metrics["stopped_early"]
    assert "best val 2.5000 nats/token" in text and "at step 20 of 30 (exported)" in text
    best = load_checkpoint(tmp_path / "ckpt" / "best.pt")
    exported = load_checkpoint(tmp_path / "model" / "model.pt")
    last = load_checkpoint(tmp_path / "ckpt" / "checkpoint.pt")["model"]
    assert best["step"] == 20 and best["val_loss"] == 2.5
    assert all(torch.equal(exported[k], best["model"][k]) for k in exported)
    assert not all(torch.equal(exported[k], last[k]) for k in exported)


def test_patience_stops_early_and_a_rerun_stays_stopped(data, tmp_path, monkeypatch):
    scripted_val(monkeypatch, [3.0, 2.5, 2.6, 2.55, 2.7])  # every 5 steps: best at 10, then 2 worse
    cfg = dataclasses.replace(TRAIN, eval_interval=5, patience=2)
    metrics, text = run(data, tmp_path, cfg)
    assert "early stop at step 20: val loss has not improved for 2 evaluations" in text
    assert metrics["steps"] == 20 and metrics["stopped_early"] and metrics["best_step"] == 10
    assert json.loads((tmp_path / "ckpt/checkpoint.json").read_text())["step"] == 20
    again, text = run(data, tmp_path, cfg)  # nothing left to do: same figures, nothing evaluated
    assert again["steps"] == 20 and again["best_step"] == 10 and again["val_loss"] == 2.5
    assert "stopped early at step 20 (no better val loss for 2 evaluations): nothing to train" in text


def test_more_patience_resumes_a_run_that_stopped_early_and_keeps_its_best(data, tmp_path, monkeypatch):
    scripted_val(monkeypatch, [3.0, 2.5, 2.6, 2.55, 2.7, 2.4])
    run(data, tmp_path, dataclasses.replace(TRAIN, eval_interval=5, patience=2))
    metrics, text = run(data, tmp_path, dataclasses.replace(TRAIN, eval_interval=5, patience=0))
    assert "resuming at step 20" in text
    assert metrics["steps"] == 30 and metrics["best_step"] == 30 and metrics["val_loss"] == 2.4


def test_an_interrupted_run_keeps_its_best_so_far(data, tmp_path, monkeypatch):
    scripted_val(monkeypatch, [2.0, 2.5, 2.6])

    def interrupt(step):
        if step == 17:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        run(data, tmp_path, on_step=interrupt)
    metrics, _ = run(data, tmp_path)
    assert metrics["best_step"] == 10 and metrics["val_loss"] == 2.0


def test_a_small_val_split_is_scored_whole(data, tmp_path):
    from sml.data.tokens import load_tokens
    from sml.evaluate import split_loss
    from sml.run.device import pick_runtime

    metrics, _ = run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=5))
    val = load_tokens(data / "tokens", "val")
    assert len(val) < TRAIN.eval_iters * TRAIN.batch_size * MODEL.block_size  # fewer than 4 batches draw
    model = load_model(tmp_path / "model", data / "tokenizer" / "tokenizer.json")
    whole = split_loss(model, val, pick_runtime("cpu", "float32", False), batch_size=3)
    assert metrics["val_loss"] == pytest.approx(whole, rel=1e-5)  # the evaluate stage's figure


def test_the_fingerprint_and_model_json_record_what_auto_resolved_to(data, tmp_path):
    from sml.run.device import cpu_has_fast_bf16

    _, text = run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=5, device="auto", dtype="auto"))
    dtype = "bfloat16" if cpu_has_fast_bf16() else "float32"
    saved = json.loads((tmp_path / "ckpt/checkpoint.json").read_text())["fingerprint"]["train"]
    assert (saved["device"], saved["dtype"], saved["nproc"]) == ("cpu", dtype, 1)
    info = json.loads((tmp_path / "model" / "model.json").read_text())["train"]
    assert (info["device"], info["dtype"]) == ("cpu", dtype)


def test_the_first_step_is_left_out_of_tokens_per_s(data, tmp_path, monkeypatch):
    import time

    real = train_module.train_step
    calls = []

    def slow_first(run):  # as compiling would make it
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.3)
        return real(run)

    monkeypatch.setattr(train_module, "train_step", slow_first)
    metrics, _ = run(data, tmp_path)
    assert metrics["warmup_seconds"] >= 0.3 and metrics["train_seconds"] > metrics["warmup_seconds"]
    tokens_per_step = TRAIN.batch_size * MODEL.block_size
    timed_seconds = metrics["train_seconds"] - metrics["warmup_seconds"]
    assert metrics["tokens_per_s"] == pytest.approx(29 * tokens_per_step / timed_seconds, rel=1e-6)
    rows = [dict(zip(LOG_COLUMNS, line.split("\t"), strict=True))
            for line in (tmp_path / "log.tsv").read_text().splitlines()[1:]]
    assert all(float(r["mfu"]) > 0 and float(r["model_flops_per_s"]) > 0 for r in rows)
    assert metrics["mfu"] > 0 and metrics["estimated_memory_gb"] > 0


def test_a_log_file_that_cannot_be_replaced_is_a_warning_not_a_lost_run(data, tmp_path, monkeypatch, capsys):
    import sml.run.atomic

    real = sml.run.atomic.os.replace

    def locked(src, dst):  # the log open in a program that locks it (Windows)
        if str(dst).endswith("log.tsv"):
            raise PermissionError(13, "Permission denied")
        return real(src, dst)

    monkeypatch.setattr(sml.run.atomic, "RETRY_WAITS_S", (0.0,))
    monkeypatch.setattr(sml.run.atomic.os, "replace", locked)
    metrics, _ = run(data, tmp_path)
    assert metrics["steps"] == 30 and (tmp_path / "model" / "model.pt").exists()
    err = capsys.readouterr().err
    assert "warning: could not replace" in err and "log.tsv" in err
    assert not list((tmp_path).glob(".log.tsv.*.tmp"))


def test_a_checkpoint_loads_onto_the_cpu_whatever_device_the_run_uses(data, tmp_path, monkeypatch):
    """On CUDA the old code loaded the checkpoint onto the GPU and then handed the sampler's
    CPU generator a CUDA tensor (TypeError). Resuming must ask for CPU tensors."""
    import sml.run.checkpoint

    run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=10))
    asked = []
    real = sml.run.checkpoint.torch.load
    monkeypatch.setattr(sml.run.checkpoint.torch, "load",
                        lambda *a, **k: asked.append(k.get("map_location")) or real(*a, **k))
    run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=20))
    assert asked and all(str(where) == "cpu" for where in asked)


def test_a_run_that_cannot_fit_stops_before_any_step(data, tmp_path, monkeypatch):
    monkeypatch.setattr(sml.run.trainer, "device_memory", lambda device: 1_000_000)  # a 1 MB device
    steps = []
    with pytest.raises(SMLError, match=r"training needs about .* set train\.batch_size to at most|model\.block_size"):
        run(data, tmp_path, on_step=steps.append)
    assert steps == [] and not (tmp_path / "ckpt" / "checkpoint.pt").exists()


def test_a_second_ctrl_c_stops_at_once_without_saving(data, tmp_path):
    def twice(step):
        if step == 13:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run(data, tmp_path, on_step=twice)
    assert json.loads((tmp_path / "ckpt/checkpoint.json").read_text())["step"] == 10  # the last one, kept


def test_under_torchrun_one_ctrl_c_delivered_twice_counts_once():
    from sml.run.progress import StopOnCtrlC

    with StopOnCtrlC(merge_s=1.0) as ctrl_c:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # torchrun passing the terminal's Ctrl-C on
        assert ctrl_c.requested


def test_a_damaged_model_and_model_json_are_one_line(data, tmp_path):
    run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=5))
    tokenizer = data / "tokenizer" / "tokenizer.json"
    weights = tmp_path / "model" / "model.pt"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 8] = bytes(8)  # inside a tensor's bytes
    weights.write_bytes(bytes(raw))
    with pytest.raises(SMLError, match=r"model\.pt: (damaged|not a readable checkpoint).*rerun the train stage"):
        load_model(tmp_path / "model", tokenizer)
    info = tmp_path / "model" / "model.json"
    info.write_text(info.read_text()[:40])
    with pytest.raises(SMLError, match=r"model\.json: not a readable model description .* rerun the train stage"):
        load_model(tmp_path / "model", tokenizer)


def test_splits_too_small_to_train_on_stop_before_any_step(data, tmp_path):
    from sml.run.trainer import check_splits

    with pytest.raises(SMLError, match=r"train\.bin: 20 tokens cannot fill one window of model\.block_size 32"):
        check_splits({"train": [0] * 20, "val": [0] * 5}, 32, data / "tokens")
    with pytest.raises(SMLError, match=r"val\.bin: 1 token\(s\), and scoring needs at least 2: raise data\.val_fr"):
        check_splits({"train": [0] * 50, "val": [0]}, 32, data / "tokens")


def test_a_run_that_starts_over_keeps_the_previous_best_until_it_has_its_own(data, tmp_path):
    """Not resuming (another lr) deletes nothing: a run that then fails leaves the last run's best.pt."""
    run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=10))
    best = (tmp_path / "ckpt" / "best.pt").read_bytes()

    def fail(step):
        if step == 3:
            raise RuntimeError("a part that breaks mid-run")

    with pytest.raises(RuntimeError, match="mid-run"):
        run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=10, lr=1e-3), on_step=fail)
    assert (tmp_path / "ckpt" / "best.pt").read_bytes() == best
    metrics, text = run(data, tmp_path, dataclasses.replace(TRAIN, max_iters=10, lr=1e-3))
    assert "not resuming" in text and "warning" not in text  # its own best, not the other run's
    assert load_checkpoint(tmp_path / "ckpt" / "best.pt")["step"] == metrics["best_step"]


def test_a_val_split_shorter_than_one_window_trains_with_a_warning_naming_the_numbers(data, capsys):
    from sml.run.trainer import check_splits

    check_splits({"train": [0] * 100, "val": [0] * 11}, 64, data / "tokens")
    line = capsys.readouterr().err.strip()
    assert line.startswith("warning: ") and "val.bin holds 11 tokens, less than one window of model.block_size 64" \
        in line
    check_splits({"train": [0] * 100, "val": [0] * 65}, 64, data / "tokens")
    assert capsys.readouterr().err == ""
