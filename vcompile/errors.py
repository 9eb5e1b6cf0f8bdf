"""The error every user-facing failure derives from.

The CLI prints a `VcompileError` as one line (`vcompile: error: ...`) and exits
nonzero; anything else is a bug and keeps its traceback.
"""


class VcompileError(Exception):
    """A failure caused by the user's input or environment, with a message that says
    what is wrong and what to do."""
