"""The one exception family SML raises for problems a user can fix, and whose they are (``blame``,
``refused_by_system``).

Stage commands catch ``SMLError`` and print its message as a single line (no traceback), so
every message must say what was wrong, where (file, key), and what was expected.
"""

import errno
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


# What the file system says when the place is wrong, not the program: no permission, a file
# where a directory should be, a full disk or quota, a read-only disk, a name too long.
_SYSTEM_SAYS_NO = {errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENOSPC, errno.EROFS,
                   errno.ENAMETOOLONG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def refused_by_system(error: BaseException) -> str | None:
    """One line for an ``OSError`` that the file system raised about a place (``--out`` in a
    file, a read-only or full disk), or None for any other error.

    ``stages/common.stage`` asks after ``blame``: such an error is the machine's, exit 1, and
    since every write goes to a temporary file first (``sml.run.atomic``), no file is half written.

    >>> refused_by_system(OSError(errno.ENOSPC, "No space left on device"))
    'No space left on device: free some space, and rerun (a file is replaced only once written whole)'
    >>> refused_by_system(ValueError("a bug")) is None
    True
    """
    if not isinstance(error, OSError) or error.errno not in _SYSTEM_SAYS_NO:
        return None
    where = f"{error.filename}: " if error.filename else ""
    fix = ("free some space, and rerun" if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
           else "choose a place you can write to, and rerun")
    return f"{where}{error.strerror}: {fix} (a file is replaced only once written whole)"
