"""What every stage command shares: one-line errors instead of tracebacks."""

import functools
import sys

from sml.errors import SMLError


def stage(fn):
    """Wrap a stage's main function: a user-fixable error prints as one line and exits 1.

    Interrupting with Ctrl-C exits 130 without a traceback. Anything else is a bug in SML
    and keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SMLError as e:
            print(f"error: {e}" if e.exit_code == 1 else str(e), file=sys.stderr)
            raise SystemExit(e.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
