"""The error every user-facing failure derives from.

The CLI prints a `VcompileError` as one line (`vcompile: error: ...`) and exits
nonzero; anything else is a bug and keeps its traceback.
"""


class VcompileError(Exception):
    """A failure caused by the user's input or environment, with a message that says
    what is wrong and what to do."""


class VcompileWarning(UserWarning):
    """Something the user should know that does not stop the work (synthetic calibration
    data, a torn tuning-database line dropped); the CLI prints it as one line."""
