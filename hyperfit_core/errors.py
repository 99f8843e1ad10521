class HyperfitError(Exception):
    """A problem with the user's input or environment.

    The CLI prints its message as one line and exits with status 2; anything else is a bug and keeps
    its traceback.
    """
