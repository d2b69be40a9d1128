"""The one exception type for mistakes a user can fix.

Everything else that escapes a command is a bug. The CLI prints a ``HeqisError`` as one red line
(plus its hint) on stderr and exits 1; it never shows a traceback for it.
"""

from __future__ import annotations


class HeqisError(Exception):
    """A failure the user can act on: bad input, a missing file, a refused token."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
