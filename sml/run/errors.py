"""The one exception family SML raises for problems a user can fix, and whose they are (``blame``).

Stage commands catch ``SMLError`` and print its message as a single line (no traceback), so
every message must say what was wrong, where (file, key), and what was expected.
"""

import traceback
from pathlib import Path


class SMLError(Exception):
    """A problem with input, params or files that the user can act on."""

    exit_code = 1  # what a stage command exits with


LEARNER_FILES: set[str] = set()  # the learner's files loaded in this process (resolved paths)


def blame(error: BaseException) -> str | None:
    """One line for an error raised inside a learner's file, naming their file, line and function,
    or None when no frame of one is in its traceback (then it is not theirs).

    ``stages/common.stage`` asks first: a learner's mistake is reported as theirs (exit 1), never
    as a bug in SML. ``sml.learn.core.load`` adds each file it loads to ``LEARNER_FILES``.
    """
    if not LEARNER_FILES:
        return None
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = Path(frame.filename)
        if str(path.resolve()) in LEARNER_FILES:
            what = f"calls sys.exit({error.code!r})" if isinstance(error, SystemExit) else \
                f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
            return (f"mine/{path.name}, line {frame.lineno}, in {frame.name}: {what} (your part, impl.{path.stem}:"
                    f" mine; make grade PART={path.stem}, or set impl.{path.stem} to reference)")
    return None
