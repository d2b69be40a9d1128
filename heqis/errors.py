"""The exception types for mistakes a user can fix.

Everything else that escapes a command is a bug. The CLI prints a ``HeqisError`` as one red line
(plus its hint) on stderr and exits 1; an ``InvalidValue`` — an option given a value it cannot
take, found by the core rather than by the option parser — exits 2 like every usage error. Neither
ever shows a traceback.
"""

from __future__ import annotations


class HeqisError(Exception):
    """A failure the user can act on: bad input, a missing file, a refused token."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __reduce__(self) -> tuple:
        # raised in a worker process (heqis.parallel) and re-raised here: keep the hint
        return (HeqisError, (self.message, self.hint))


class InvalidValue(HeqisError):
    """A usage error: ``option`` was given a value it cannot take (exit code 2)."""

    exit_code = 2

    def __init__(self, option: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{option}: {message}", hint)
        self.option = option
        self.detail = message

    def __reduce__(self) -> tuple:
        return (InvalidValue, (self.option, self.detail, self.hint))
