import sys


class HyperfitError(Exception):
    """A problem with the user's input or environment.

    The CLI prints its message as one line and exits with status 2; anything else is a bug and keeps
    its traceback.
    """


def warn(message: str) -> None:
    """One warning line on stderr: something the user asked for is done, with a caveat they should see."""
    sys.stderr.write(f"warning: {message}\n")
