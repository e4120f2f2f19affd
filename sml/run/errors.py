"""The one exception family SML raises for problems a user can fix.

Stage commands catch ``SMLError`` and print its message as a single line (no traceback), so
every message must say what was wrong, where (file, key), and what was expected.
"""


class SMLError(Exception):
    """A problem with input, params or files that the user can act on."""

    exit_code = 1  # what a stage command exits with
