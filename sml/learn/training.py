"""Grading part 9: training: batches, cross-entropy, clipping, the AdamW step, the lr schedule.

Each check runs one function of mine/training.py on small seeded inputs against SML's own
(``sml/parts.py``'s defaults; ``cross_entropy`` against sml/loss.py). Classic mistakes are
looked for first, so that the message names the mistake rather than only a number.
"""

import math

import torch

from sml.batches import RandomWindows
from sml.learn.core import Mismatch, Part, check, close, same_shape
from sml.loss import cross_entropy as reference_loss
from sml.optim import adamw_step as reference_adamw_step
from sml.optim import warmup_cosine

N_TOKENS, B, BLOCK = 40, 4, 6  # stream length, windows per batch, positions per window
STARTS = torch.tensor([0, 11, 5, 20])  # (B,) where get_batch's windows begin
N, V = 5, 7  # positions and vocabulary entries for the loss


# ---- get_batch --------------------------------------------------------------------------------

def stream() -> torch.Tensor:
    """(N_TOKENS,) int64, every id once: a window's first id says where in the stream it began."""
    return torch.randperm(N_TOKENS, generator=torch.Generator().manual_seed(3))


@check("a batch's shape", "get_batch")
def batch_shape(mine):
    tokens, starts = stream(), STARTS
    x, y = mine.get_batch(tokens, starts, BLOCK)
    for name, t in (("x", x), ("y", y)):
        same_shape(t, (B, BLOCK), f"get_batch's {name}", "one row per start, block_size positions each")
        if t.dtype != torch.int64:
            raise Mismatch(f"get_batch's {name} has dtype {t.dtype}, expected torch.int64: token ids index the"
                           " embedding table")


@check("the inputs are the windows at the starts", "get_batch")
def batch_inputs(mine):
    tokens, starts = stream(), STARTS
    where = torch.argsort(tokens)  # where[id]: the id's position in the stream
    x, _ = mine.get_batch(tokens, starts, BLOCK)
    for b, start in enumerate(starts.tolist()):
        if not torch.equal(x[b], tokens[start : start + BLOCK]):
            began = int(where[x[b, 0]])
            raise Mismatch(f"row {b} of x begins at stream position {began}, not at its start {start}: x[b] is"
                           f" tokens[starts[b] : starts[b] + block_size]")


@check("the targets are the inputs shifted by one", "get_batch")
def batch_targets(mine):
    tokens, starts = stream(), STARTS
    x, y = mine.get_batch(tokens, starts, BLOCK)
    rule = ("y[b] is the same window shifted by one, tokens[starts[b] + 1 : starts[b] + block_size + 1], so that"
            " the target at each position is the token that follows the input there")
    if torch.equal(y, x):
        raise Mismatch(f"the targets are the inputs themselves: {rule}")
    if all(torch.equal(y[b], tokens[s - 1 : s - 1 + BLOCK]) for b, s in enumerate(starts.tolist()) if s > 0):
        raise Mismatch(f"the targets are shifted the wrong way (the token before each input): {rule}")
    for b, start in enumerate(starts.tolist()):
        if not torch.equal(y[b], tokens[start + 1 : start + 1 + BLOCK]):
            began = int(torch.argsort(tokens)[y[b, 0]])
            raise Mismatch(f"row {b} of y begins at stream position {began}, not at {start + 1} (its start + 1):"
                           f" {rule}")


@check("the last window that fits", "get_batch")
def batch_last(mine):
    tokens, last = stream(), N_TOKENS - BLOCK - 1  # its next token is the stream's last
    x, y = mine.get_batch(tokens, torch.tensor([last, 0]), BLOCK)
    close(x[0], tokens[last:-1], f"x at start {last}, the last window that fits", ("position",), atol=0, rtol=0)
    close(y[0], tokens[last + 1 :], f"y at start {last}, the last window that fits", ("position",), atol=0, rtol=0,
          hint="it ends with the stream's last token")


@check("the same batch as the trainer's RandomWindows", "get_batch")
def batch_as_trainer(mine):
    tokens = stream()
    windows = RandomWindows(tokens.numpy(), BLOCK, B, seed=4, device=torch.device("cpu"))
    state = windows.generator.get_state()
    starts = torch.randint(N_TOKENS - BLOCK, (B,), generator=windows.generator)  # the starts it is about to draw
    windows.generator.set_state(state)
    want_x, want_y = windows.next()
    x, y = mine.get_batch(tokens, starts, BLOCK)
    close(x, want_x, "get_batch's x", ("row", "position"), atol=0, rtol=0)
    close(y, want_y, "get_batch's y", ("row", "position"), atol=0, rtol=0)


# ---- cross_entropy ----------------------------------------------------------------------------

def loss_inputs(offset: float = 0.0, requires_grad: bool = False):
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(N, V, generator=g) * 2 + offset
    return logits.requires_grad_(requires_grad), torch.randint(0, V, (N,), generator=g)


@check("the loss's value", "cross_entropy")
def loss_value(mine):
    logits, targets = loss_inputs()
    got, want = mine.cross_entropy(logits, targets), reference_loss(logits, targets)
    same_shape(got, (), "cross_entropy(logits, targets)", "one number: the mean over positions (.mean())")
    if torch.allclose(got.double(), want.double(), atol=1e-5, rtol=1e-4):
        return

    def picked(log_probs):  # (N, V) -> (N,): minus the right token's entry at each position
        return -log_probs[torch.arange(N), targets]

    for mistake, alike in [
        ("it sums over positions instead of averaging: take the mean, so that the loss does not grow with the"
         " batch", want * N),
        ("it is in bits (log base 2): use the natural log, the loss is in nats", want / math.log(2)),
        ("its sign is flipped: the loss is minus the log probability of the right token (>= 0)", -want),
        ("the softmax runs over the positions (dim 0): run it over the vocabulary (dim -1), one distribution"
         " per position", picked(torch.log_softmax(logits, dim=0)).mean()),
        ("it is minus the softmax probability, without the log: take -log of the right token's probability",
         picked(torch.softmax(logits, dim=-1)).mean()),
    ]:
        if torch.allclose(got.double(), alike.double(), atol=1e-5, rtol=1e-4):
            raise Mismatch(mistake)
    close(got, want, "cross_entropy(logits, targets)")


@check("stable with logits near +-1000", "cross_entropy")
def loss_stable(mine):
    logits, targets = loss_inputs(offset=1000.0)
    logits[1] = torch.linspace(-1000, 1000, V)  # one row spread from -1000 to 1000
    logits[2] -= 2000.0  # one row near -1000: exp underflows to 0 there
    got = mine.cross_entropy(logits, targets)
    if isinstance(got, torch.Tensor) and not torch.isfinite(got).all():
        raise Mismatch(f"the loss is {got.flatten()[0].item()} with logits near 1000 (or -1000): exp overflows to"
                       " inf (or underflows to 0); subtract each row's largest logit before exp (log-sum-exp),"
                       " which changes nothing mathematically")
    close(got, reference_loss(logits, targets), "cross_entropy with logits near 1000")


@check("gradients flow back to the logits", "cross_entropy")
def loss_gradient(mine):
    (logits, targets), (ref_logits, _) = loss_inputs(requires_grad=True), loss_inputs(requires_grad=True)
    got = mine.cross_entropy(logits, targets)
    if not got.requires_grad:
        raise Mismatch("the loss carries no gradient: build it from the logits with torch operations (no .item(),"
                       " .numpy(), .detach() or torch.no_grad() inside)")
    got.backward()
    reference_loss(ref_logits, targets).backward()
    close(logits.grad, ref_logits.grad, "the gradient of the logits", ("position", "vocabulary entry"),
          hint="it is (softmax - one-hot of the target) / N")


# ---- clip_grad_norm ---------------------------------------------------------------------------

def some_grads(scale: float) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(6)
    return [torch.randn(shape, generator=g) * scale for shape in ((3, 4), (4,), (2, 3))]


def torch_clip(scale: float, max_norm: float) -> tuple[float, list[torch.Tensor]]:
    """What train_step does: torch.nn.utils.clip_grad_norm_ over parameters holding these grads."""
    params = [torch.zeros_like(g, requires_grad=True) for g in some_grads(scale)]
    for p, g in zip(params, some_grads(scale), strict=True):
        p.grad = g
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return total.item(), [p.grad for p in params]


@check("the total norm it returns", "clip_grad_norm")
def clip_total(mine):
    grads = some_grads(1.0)
    own = [g.norm().item() for g in grads]
    got = mine.clip_grad_norm(grads, 1.0)
    want, _ = torch_clip(1.0, 1.0)
    if got is None:
        raise Mismatch("clip_grad_norm returns None: return the total norm before clipping (a float)")
    got = float(got)
    if math.isclose(got, want, rel_tol=1e-4):
        return
    for mistake, alike in [
        ("it returns the norm after clipping (max_norm): return the total before, the trainer logs it", 1.0),
        ("it adds up each tensor's own norm: the total is sqrt(sum of every squared entry of every tensor)",
         sum(own)),
        ("it returns the sum of squares, without the square root", want ** 2),
        ("it returns the largest tensor's norm: the total is over all tensors together", max(own)),
    ]:
        if math.isclose(got, alike, rel_tol=1e-4):
            raise Mismatch(mistake)
    raise Mismatch(f"the total norm differs from the reference: yours {got:.4g}, reference {want:.4g}")


@check("all gradients scaled together, in place", "clip_grad_norm")
def clip_scales(mine):
    grads, before = some_grads(1.0), some_grads(1.0)
    mine.clip_grad_norm(grads, 1.0)
    _, want = torch_clip(1.0, 1.0)
    if all(torch.equal(g, b) for g, b in zip(grads, before, strict=True)):
        raise Mismatch("the gradients are unchanged though their total norm is above max_norm: scale them in"
                       " place (g.mul_(scale)); g = g * scale makes a new tensor the optimizer never sees")
    each_own = [b * min(1.0, 1.0 / b.norm().item()) for b in before]
    if all(torch.allclose(g, e, atol=1e-6, rtol=1e-4) for g, e in zip(grads, each_own, strict=True)):
        raise Mismatch("it clips each tensor on its own: scale every tensor by the same factor, max_norm / the"
                       " total norm of all of them together, so that the update keeps its direction")
    for i, (g, w) in enumerate(zip(grads, want, strict=True)):
        close(g, w, f"gradient {i} after clipping", hint="every tensor times max_norm / total norm")


@check("gradients below max_norm are left alone", "clip_grad_norm")
def clip_small(mine):
    grads, before = some_grads(0.01), some_grads(0.01)
    got = mine.clip_grad_norm(grads, 1.0)
    want, _ = torch_clip(0.01, 1.0)
    for g, b in zip(grads, before, strict=True):
        if not torch.equal(g, b):
            raise Mismatch(f"it changed gradients whose total norm ({want:.3g}) is below max_norm (1.0): scale only"
                           " when the total is larger")
    if got is None or not math.isclose(float(got), want, rel_tol=1e-4):
        raise Mismatch(f"with a total norm below max_norm it returns {got}, not the total norm {want:.4g}")


# ---- adamw_step -------------------------------------------------------------------------------

SHAPE = (3, 4)


def adam_inputs(steps: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    return torch.randn(SHAPE, generator=g), [torch.randn(SHAPE, generator=g) for _ in range(steps)]


def reference_adamw(steps: int, **h) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sml.optim.adamw_step run ``steps`` times: (param, exp_avg, exp_avg_sq).

    It equals torch.optim.AdamW, what the trainer uses (tests/test_optim_written_out.py), and
    needs no torch._dynamo, whose import on the first AdamW.step() alone takes over a second.
    """
    start, grads = adam_inputs(steps)
    param, exp_avg, exp_avg_sq = start.clone(), torch.zeros(SHAPE), torch.zeros(SHAPE)
    for step, grad in enumerate(grads, start=1):
        reference_adamw_step(param, grad, exp_avg, exp_avg_sq, step, **h)
    return param, exp_avg, exp_avg_sq


def mine_adamw(mine, steps: int, **h) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    start, grads = adam_inputs(steps)
    param, exp_avg, exp_avg_sq = start.clone(), torch.zeros(SHAPE), torch.zeros(SHAPE)
    for step, grad in enumerate(grads, start=1):
        mine.adamw_step(param, grad.clone(), exp_avg, exp_avg_sq, step, h["lr"], h["beta1"], h["beta2"], h["eps"],
                        h["weight_decay"])
    for name, t in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        if not t.any():
            raise Mismatch(f"{name} is still all zeros after step {steps}: update it in place"
                           f" ({name}.mul_(...).add_(...)); {name} = ... makes a new tensor that the next step never"
                           " sees")
    return param, exp_avg, exp_avg_sq


def mistaken_adam(steps: int, bias_correction=True, decay="decoupled", **h) -> torch.Tensor:
    """The param after ``steps`` of Adam with one classic mistake (to name it when it shows)."""
    start, grads = adam_inputs(steps)
    lr, b1, b2, eps, wd = h["lr"], h["beta1"], h["beta2"], h["eps"], h["weight_decay"]
    p, m, v = start.clone(), torch.zeros(SHAPE), torch.zeros(SHAPE)
    for t, grad in enumerate(grads, start=1):
        if decay == "in the gradient":
            grad = grad + wd * p
        elif decay == "decoupled":
            p = p * (1 - lr * wd)
        elif decay == "not times lr":
            p = p * (1 - wd)
        m, v = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad ** 2
        m_hat, v_hat = (m / (1 - b1 ** t), v / (1 - b2 ** t)) if bias_correction else (m, v)
        p = p - lr * m_hat / (v_hat.sqrt() + eps)
        if decay == "after the move":
            p = p * (1 - lr * wd)
    return p


def _named(got: torch.Tensor, steps: int, h: dict, mistakes: list[tuple[str, dict]]) -> None:
    for mistake, how in mistakes:
        if torch.allclose(got, mistaken_adam(steps, **how, **h), atol=1e-6, rtol=1e-4):
            raise Mismatch(mistake)


NO_BIAS = "no bias correction: divide exp_avg by 1 - beta1 ** step and exp_avg_sq by 1 - beta2 ** step before the" \
          " update (both start at zero, so in the first steps they are too small)"


@check("the first step (step 1, no weight decay)", "adamw_step")
def adam_first(mine):
    h = {"lr": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.0}
    got, _, _ = mine_adamw(mine, 1, **h)
    if not torch.isfinite(got).all():
        raise Mismatch("param holds inf or nan after step 1: the bias correction divides by 1 - beta ** step, which"
                       " is 0 if step counts from 0; the first update has step = 1")
    want, _, _ = reference_adamw(1, **h)
    if torch.allclose(got, want, atol=1e-6, rtol=1e-4):
        return
    start = adam_inputs(1)[0]
    if torch.allclose(got - start, -(want - start), atol=1e-6, rtol=1e-4):
        raise Mismatch("param moved up the gradient: subtract lr * mean / (sqrt(mean square) + eps), do not add it")
    _named(got, 1, h, [(NO_BIAS, {"bias_correction": False})])
    close(got, want, "param after step 1", ("row", "column"))


@check("decoupled weight decay (3 steps)", "adamw_step")
def adam_decay(mine):
    h = {"lr": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.5}
    got, _, _ = mine_adamw(mine, 3, **h)
    want, _, _ = reference_adamw(3, **h)
    if torch.allclose(got, want, atol=1e-6, rtol=1e-4):
        return
    _named(got, 3, h, [
        ("Adam with L2 in the gradient, not AdamW's decoupled decay: do not add weight_decay * param to the"
         " gradient; shrink param itself by the factor (1 - lr * weight_decay)", {"decay": "in the gradient"}),
        ("weight_decay is ignored: shrink param by the factor (1 - lr * weight_decay) at every step", {"decay": None}),
        ("the weight decay is not multiplied by lr: param shrinks by the factor (1 - lr * weight_decay)",
         {"decay": "not times lr"}),
        ("the decay comes after the Adam move: as torch.optim.AdamW, shrink param first, then move it",
         {"decay": "after the move"}),
        (NO_BIAS, {"bias_correction": False}),
    ])
    close(got, want, "param after 3 steps with weight decay", ("row", "column"))


@check("five steps: the moment estimates carry over", "adamw_step")
def adam_steps(mine):
    h = {"lr": 0.01, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}
    got, exp_avg, exp_avg_sq = mine_adamw(mine, 5, **h)
    want, want_avg, want_avg_sq = reference_adamw(5, **h)
    close(exp_avg, want_avg, "exp_avg after 5 steps", ("row", "column"),
          hint="exp_avg = beta1 * exp_avg + (1 - beta1) * grad, in place")
    close(exp_avg_sq, want_avg_sq, "exp_avg_sq after 5 steps", ("row", "column"),
          hint="exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad ** 2, in place")
    close(got, want, "param after 5 steps", ("row", "column"))


# ---- lr_at ------------------------------------------------------------------------------------

SCHEDULE = {"lr": 1.0, "min_lr": 0.1, "warmup_iters": 10, "max_iters": 110}


def rates(fn, steps, s=SCHEDULE) -> torch.Tensor:
    return torch.tensor([float(fn(step, s["lr"], s["min_lr"], s["warmup_iters"], s["max_iters"])) for step in steps],
                        dtype=torch.float64)


@check("the warmup", "lr_at")
def lr_warmup(mine):
    steps = range(SCHEDULE["warmup_iters"])
    got, want = rates(mine.lr_at, steps), rates(warmup_cosine, steps)
    if torch.allclose(got, want, atol=1e-9, rtol=1e-6):
        return
    lr, warmup = SCHEDULE["lr"], SCHEDULE["warmup_iters"]
    if got[0] == 0 or torch.allclose(got, torch.tensor([lr * s / warmup for s in steps], dtype=torch.float64)):
        raise Mismatch(f"step 0 has learning rate {got[0].item():.3g}: the warmup is off by one; step s gets"
                       " lr * (s + 1) / warmup_iters, so step 0 already moves the weights and step warmup_iters - 1"
                       " reaches lr")
    if not math.isclose(got[-1].item(), lr, rel_tol=1e-6):
        raise Mismatch(f"step warmup_iters - 1 = {warmup - 1} has learning rate {got[-1].item():.4g}, not lr ="
                       f" {lr}: the warmup is off by one (step s gets lr * (s + 1) / warmup_iters)")
    close(got, want, "lr_at during the warmup", ("step",))


@check("the cosine down to min_lr, and min_lr after", "lr_at")
def lr_cosine(mine):
    s = SCHEDULE
    steps = range(s["warmup_iters"], s["max_iters"] + 20)
    got, want = rates(mine.lr_at, steps), rates(warmup_cosine, steps)
    if torch.allclose(got, want, atol=1e-9, rtol=1e-6):
        return
    after = s["max_iters"] - s["warmup_iters"]  # index of step max_iters in `steps`
    if math.isclose(got[after].item(), 0.0, abs_tol=1e-9):
        raise Mismatch(f"the cosine ends at 0 at step max_iters, not at min_lr = {s['min_lr']}: lr_at is"
                       " min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2")
    if (got[after + 1:] > got[after] + 1e-9).any():
        raise Mismatch("after max_iters the learning rate rises again: hold it at min_lr (clamp the progress at 1)")
    if not math.isclose(got[0].item(), s["lr"], rel_tol=1e-6):
        raise Mismatch(f"at step warmup_iters = {s['warmup_iters']} the cosine starts at {got[0].item():.4g}, not"
                       f" at lr = {s['lr']}: it starts where the warmup ends, progress = (step - warmup_iters) /"
                       " (max_iters - warmup_iters)")
    close(got, want, f"lr_at after the warmup (from step {s['warmup_iters']})", ("step",), atol=1e-9, rtol=1e-6)


@check("no warmup (warmup_iters 0)", "lr_at")
def lr_no_warmup(mine):
    s = {"lr": 3e-3, "min_lr": 3e-4, "warmup_iters": 0, "max_iters": 20}
    try:
        got = rates(mine.lr_at, range(25), s)
    except ZeroDivisionError:
        raise Mismatch("with warmup_iters 0 it divides by zero: there is no warmup then, the cosine starts at"
                       " step 0") from None
    close(got, rates(warmup_cosine, range(25), s), "lr_at with warmup_iters 0", ("step",), atol=1e-12, rtol=1e-6)


PART = Part("training", "batches, cross-entropy, clipping, the AdamW step, the lr schedule",
            ("get_batch", "cross_entropy", "clip_grad_norm", "adamw_step", "lr_at"), "LEARN.md, 9. Training",
            (batch_shape, batch_inputs, batch_targets, batch_last, batch_as_trainer,
             loss_value, loss_stable, loss_gradient,
             clip_total, clip_scales, clip_small,
             adam_first, adam_decay, adam_steps,
             lr_warmup, lr_cosine, lr_no_warmup))
