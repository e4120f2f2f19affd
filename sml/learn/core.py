"""The grader's machinery: load a learner's file, run a part's checks, say what broke in words.

A part (``Part``) names the file the learner writes in ``mine/``, the functions in it, the
LEARN.md chapter, and its checks. A check is a plain function that takes the learner's
module, calls their code on small seeded inputs, computes the same thing with the
reference (``sml/``), and raises ``Mismatch`` with a sentence a learner understands when
they differ: which property broke ("position 1 sees position 3: the causal mask is
missing"), then the largest difference and where it is.

A function that still raises ``NotImplementedError`` (the stub as shipped) makes its checks
"to do", not failures: a learner's progress is a checklist, not a wall of red.
"""

import _thread
import contextlib
import importlib.util
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

from sml.run.errors import LEARNER_FILES


class Mismatch(AssertionError):
    """The learner's result broke a property of the part; the message says which, in words."""


class ToDo(Exception):
    """The learner's function is not written yet (it raised NotImplementedError)."""


@dataclass(frozen=True)
class Check:
    """One property of a part: ``run(module)`` raises Mismatch if the learner's code breaks it."""

    name: str  # what it checks, in a few words ("the causal mask")
    functions: tuple[str, ...]  # the learner's functions it calls
    run: Callable[[ModuleType], None]


@dataclass(frozen=True)
class Part:
    """One thing the learner writes: a file in ``mine/``, its functions, its chapter, its checks."""

    name: str  # "attention": the file is mine/attention.py, the switch impl.attention
    title: str  # "scaled dot-product attention with the causal mask"
    functions: tuple[str, ...]
    chapter: str  # where LEARN.md explains it
    checks: Sequence[Check] = field(default_factory=tuple)

    @property
    def file(self) -> str:
        return f"{self.name}.py"


def check(name: str, *functions: str):
    """Decorator: turn ``def f(mine): ...`` into a Check of ``functions``."""
    def wrap(fn: Callable[[ModuleType], None]) -> Check:
        return Check(name, functions, fn)
    return wrap


@dataclass(frozen=True)
class Result:
    """How one part fared: "pass", "todo" or "fail", with a sentence for anything not passing."""

    part: Part
    status: str
    message: str = ""
    passed: int = 0  # checks that passed
    todo: tuple[str, ...] = ()  # functions not written yet
    runs: bool = True  # False: the file cannot run at all (does not load, never returns, exits)


CHECK_LIMIT_S = 10.0  # a check takes well under a second: one still running after this never returns


class TooLong(Exception):
    """A check ran past its time limit (``time_limit``)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise ``TooLong`` in this thread if the block runs longer than ``seconds`` (an endless loop).

    A timer interrupts the main thread as Ctrl-C would (``_thread.interrupt_main``, on every
    platform); the interrupt is told apart from a real Ctrl-C by the timer's own flag. Off the
    main thread there is nothing to interrupt: the block runs unlimited.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = threading.Event()

    def interrupt():
        fired.set()
        _thread.interrupt_main()

    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # an interrupt raises, here
    timer = threading.Timer(seconds, interrupt)
    timer.start()
    try:
        yield
    except KeyboardInterrupt as e:
        if fired.is_set():  # the learner's frames stay in the traceback: the message names their line
            raise TooLong(f"did not finish within {seconds:g} s").with_traceback(e.__traceback__) from None
        raise
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, handler)


def load(path: Path) -> ModuleType:
    """Import the learner's file afresh (a new module object each time: edits show at once).

    Its path goes into ``sml.run.errors.LEARNER_FILES``, so that an error raised in it later, in
    the middle of a run, is reported as the learner's (``sml.run.errors.blame``)."""
    LEARNER_FILES.add(str(path.resolve()))
    name = f"_graded_{path.stem}_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def grade(part: Part, path: Path, limit_s: float | None = None) -> Result:
    """Run every check of ``part`` against the learner's file at ``path``, each within ``limit_s``
    seconds (default ``CHECK_LIMIT_S``)."""
    limit_s = CHECK_LIMIT_S if limit_s is None else limit_s
    if not path.exists():
        return Result(part, "todo", f"{path} is missing: copy it back from git (git checkout {path.name})",
                      todo=part.functions)
    try:
        with time_limit(limit_s):
            module = load(path)
    except (Exception, SystemExit) as e:  # a syntax error, a bad import, sys.exit: the file does not load
        return Result(part, "fail", f"{path} does not load: {_short_error(e, path)}", runs=False)
    missing = [f for f in part.functions if not hasattr(module, f)]
    if missing:
        return Result(part, "fail", f"{path} has no {', '.join(missing)}: keep the stub's names and signatures")
    passed, todo = 0, []
    for c in part.checks:
        if any(f in todo for f in c.functions):
            continue  # it calls a function known to be unwritten
        try:
            with torch.random.fork_rng(), time_limit(limit_s):
                torch.manual_seed(0)
                c.run(module)
        except NotImplementedError as e:  # the stub, or a stub's part the learner has not reached
            name = _raised_in(e, path) or c.functions[0]
            if name not in todo:
                todo.append(name)
        except Mismatch as e:
            return Result(part, "fail", f"{c.name}: {e}", passed, tuple(todo))
        except (TooLong, SystemExit) as e:  # an endless loop, or sys.exit(): nothing could train with it
            return Result(part, "fail", f"{c.name}: {_short_error(e, path)}", passed, tuple(todo), runs=False)
        except Exception as e:
            return Result(part, "fail", f"{c.name}: {_dtype_mix(e) or _short_error(e, path)}", passed, tuple(todo))
        else:
            passed += 1
    if todo:
        return Result(part, "todo", f"write {', '.join(f + '()' for f in todo)} in mine/{part.file}",
                      passed, tuple(todo))
    return Result(part, "pass", "", passed)


TORCH_DTYPES = {"Double": "float64", "Float": "float32", "Half": "float16", "BFloat16": "bfloat16", "Long": "int64"}


def _dtype_mix(e: Exception) -> str | None:
    """PyTorch's "Double did not match Float" in words: the learner's result changed the dtype."""
    found = re.search(r"(\w+) did not match (\w+)|expected scalar type (\w+) but found (\w+)", str(e))
    if not isinstance(e, RuntimeError) or found is None:
        return None
    theirs, expected = (found.group(1), found.group(2)) if found.group(1) else (found.group(4), found.group(3))
    theirs, expected = TORCH_DTYPES.get(theirs, theirs), TORCH_DTYPES.get(expected, expected)
    return (f"a result in {theirs} met the reference's {expected}: return the input's dtype ({expected} here;"
            " no .double(), no float64 tensors made inside)")


def _raised_in(e: BaseException, path: Path) -> str | None:
    """The name of the learner's function (in ``path``) that raised ``e``, innermost first."""
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            return frame.name
    return None


def _short_error(e: BaseException, path: Path) -> str:
    """'ValueError: ... (attention.py, line 12, in attention)': the error and the learner's line."""
    where = ""
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            where = f" ({path.name}, line {frame.lineno}, in {frame.name})"
            break
    if isinstance(e, SyntaxError):  # its str() repeats the file and line: the message alone
        return f"{type(e).__name__}: {e.msg} ({path.name}, line {e.lineno})"
    if isinstance(e, SystemExit):
        return f"it calls sys.exit({e.code!r}){where}: a part returns its result, it does not end the program"
    if isinstance(e, TooLong):
        return f"{e}{where}: an endless loop?"
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}{where}"


# ---- comparing tensors, in words ------------------------------------------------------------

def same_shape(got, want_shape: tuple[int, ...], what: str, hint: str = "") -> None:
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"{what} should be a tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(want_shape):
        raise Mismatch(f"{what} has shape {tuple(got.shape)}, expected {tuple(want_shape)}"
                       + (f": {hint}" if hint else ""))


def close(got, want: torch.Tensor, what: str, dims: Sequence[str] = (), atol: float = 1e-5,
          rtol: float = 1e-4, hint: str = "") -> None:
    """Raise Mismatch unless ``got`` equals ``want`` within tolerance, naming where they differ most.

    ``dims`` names the axes ("batch", "head", "position", "channel") for the message.
    """
    same_shape(got, tuple(want.shape), what)
    got, want = got.detach().double(), want.detach().double()
    if not torch.isfinite(got).all() and torch.isfinite(want).all():
        at = _where(torch.nonzero(~torch.isfinite(got))[0], dims)
        raise Mismatch(f"{what} has inf or nan at {at}, where the reference is finite" + (f": {hint}" if hint else ""))
    diff = (got - want).abs().nan_to_num(0.0)
    bad = diff > atol + rtol * want.abs()
    if bad.any():
        flat = int(torch.argmax(diff))
        index = torch.tensor(torch.unravel_index(torch.tensor(flat), diff.shape))
        raise Mismatch(f"{what} differs from the reference" + (f" ({hint})" if hint else "")
                       + f": max difference {diff.max().item():.3g} at {_where(index, dims)}"
                       f" (yours {got.flatten()[flat].item():.4g}, reference {want.flatten()[flat].item():.4g})")


def backward_both(got: torch.Tensor, want: torch.Tensor, what: str, hint: str = "", seed: int = 2) -> None:
    """Backpropagate one random weighting of both outputs, so that their inputs' gradients compare.

    Raises Mismatch if the learner's output ``got`` carries no gradient at all.
    """
    if not got.requires_grad:
        raise Mismatch(f"{what} carries no gradient: build it from {hint or 'its inputs'} with torch operations"
                       " (no .detach(), .item(), .tolist() or torch.no_grad() inside)")
    weights = torch.randn(got.shape, generator=torch.Generator().manual_seed(seed))
    (got * weights).sum().backward()
    (want * weights).sum().backward()


def _where(index: torch.Tensor, dims: Sequence[str]) -> str:
    names = list(dims) + [f"axis {i}" for i in range(len(dims), len(index))]
    return ", ".join(f"{name} {int(i)}" for name, i in zip(names, index, strict=False)) or "the value"


def parts() -> list[Part]:
    """Every part, in LEARN.md's order (``sml.learn.mine.PARTS``)."""
    from importlib import import_module

    from sml.learn.mine import PARTS

    return [import_module(f"sml.learn.{name}").PART for name in PARTS]
