"""A training-time budget (``train.time_budget_s``): train for so many seconds, on any machine.

A fixed number of steps is a different amount of time on every machine: the same steps
take 2 minutes on one laptop and 4 on another. A fixed budget of seconds
asks a better question, "what is the best model this machine trains in 100 s?", and it is
how ideas are compared fairly at equal cost (Karpathy's autoresearch compares every change
at a five-minute budget).

The schedule follows progress = max(step / max_iters, seconds / budget): whichever of the
two limits is nearer drives warmup and decay, and the run stops when either is reached.
``schedule_step`` turns that progress back into a step, so ``optim.lr_at`` stays a function
of one number. Without a budget it is the step itself: nothing changes.

Seconds are training seconds: the steps, not evaluations, checkpoints or a session's
first step (compilation). The clock is read at the log steps, and before the first one at
steps 1, 2, 4, 8, ... (``early_read``), so that the schedule follows it from the start. A
read is a moment where a GPU is synchronized and all ranks agree on one figure; between
two reads the seconds are extrapolated from the seconds per step since the read before. So
every rank sets the same learning rate and stops at the same step, and the stop falls on
the step where the budget runs out, not at the next read. The clock is part of the
checkpoint: an interrupted run resumes with the time it had left.

A budgeted run is not bit-reproducible: how many steps fit in the budget depends on the
machine, and on what else it was doing.
"""


import dataclasses


@dataclasses.dataclass
class Clock:
    """The training seconds the budget counts: ``seconds`` at ``step`` (its last read) over
    ``timed_steps`` (steps minus each session's first), the seconds per step between its last
    two reads (0.0 until measured), and ``spent``: the budget ran out."""

    step: int = 0
    seconds: float = 0.0
    timed_steps: int = 0
    per_step: float = 0.0
    spent: bool = False


def early_read(step: int, log_interval: int, budget_s: float) -> bool:
    """Whether to read the clock after ``step`` before the first log step (at 1, 2, 4, ...);
    from the first log step on, every log step reads it.

    >>> [s for s in range(1, 41) if early_read(s, 20, 100.0)]
    [1, 2, 4, 8, 16]
    """
    return bool(budget_s) and step < log_interval and step & (step - 1) == 0


def seconds_at(clock: Clock, step: int) -> float:
    """Training seconds at ``step``: measured at the clock's last read, extrapolated since.

    >>> seconds_at(Clock(step=20, seconds=4.0, per_step=0.2), 25)
    5.0
    """
    return clock.seconds + (step - clock.step) * clock.per_step


def schedule_step(step: int, clock: Clock, max_iters: int, budget_s: float) -> float:
    """The step the learning-rate schedule is at: ``step``, or further when time is nearer its end.

    >>> clock = Clock(step=10, seconds=50.0, per_step=5.0)
    >>> schedule_step(10, clock, max_iters=1000, budget_s=100.0)  # half the time: half the schedule
    500.0
    >>> schedule_step(10, clock, max_iters=1000, budget_s=0)  # no budget: the step itself
    10
    """
    if not budget_s:
        return step
    return max(step, min(1.0, seconds_at(clock, step) / budget_s) * max_iters)


def read_clock(clock: Clock, step: int, seconds: float, timed_steps: int) -> None:
    """A read at ``step``: ``seconds`` of training over ``timed_steps`` so far (all ranks' figure).

    >>> clock = Clock()
    >>> read_clock(clock, 2, 0.5, 1); read_clock(clock, 4, 1.5, 3); clock.per_step
    0.5
    """
    if timed_steps > clock.timed_steps:
        clock.per_step = (seconds - clock.seconds) / (timed_steps - clock.timed_steps)
    clock.step, clock.seconds, clock.timed_steps = step, seconds, timed_steps


def out_of_time(clock: Clock, step: int, budget_s: float) -> bool:
    """True once the budget is spent (and from then on: a run that stopped stays stopped)."""
    if budget_s and seconds_at(clock, step) >= budget_s:
        clock.spent = True
    return clock.spent
