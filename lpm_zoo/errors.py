"""The one exception type that means "the user's input was wrong": the CLI prints it in one line, exit 2."""


class LpmError(Exception):
    """A user-facing error; its message says what was wrong and what to do."""
