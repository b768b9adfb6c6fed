"""Errors raised for bad input: one clear message naming the source, field and value."""

from __future__ import annotations


class PerspectivesError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(PerspectivesError, ValueError):
    """Bad user input: a file, column/field or value that cannot be used.

    The message names where the problem is (``source``), which field (``field``) and the
    offending ``value`` when they are known, so the user can fix it without a stack trace.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        field: str | None = None,
        value: object = None,
    ) -> None:
        self.message = message
        self.source, self.field, self.value = source, field, value
        where = []
        if source is not None:
            where.append(str(source))
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        text = f"{prefix}: {message}" if prefix else message
        if value is not None:
            shown = repr(value)
            if len(shown) > 120:
                shown = shown[:117] + "..."
            text += f" (value: {shown})"
        super().__init__(text)
