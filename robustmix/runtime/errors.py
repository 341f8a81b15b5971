"""The one exception type the CLI turns into a one-line message and exit code 2."""


class RobustmixError(ValueError):
    """Bad input from the user: the message names the problem and the fix, on one line."""


class RobustmixWarning(UserWarning):
    """Something that makes robustness numbers doubtful but not necessarily wrong."""
