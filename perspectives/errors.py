"""The errors this package raises on purpose, by kind: each one line naming source, field, value.

- ``InputError``: bad data (a file, column or value that cannot be used);
- ``ConfigError``: a config that cannot be used (an unknown key, a wrong type, a reference to
  a model or policy that does not exist);
- ``RunFolderBusy``: another process is running the same run folder;
- ``CorruptStateError``: a run folder or saved agent whose state cannot be trusted;
- ``BackendUnavailable``: a model backend that cannot be reached or loaded.
"""

from __future__ import annotations


class PerspectivesError(Exception):
    """Base class of every error this package raises on purpose.

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


class InputError(PerspectivesError, ValueError):
    """Bad user input: a file, column/field or value that cannot be used."""


class ConfigError(InputError):
    """A config (YAML or Python) that cannot be used: unknown key, wrong type, bad reference."""


class RunFolderBusy(PerspectivesError):
    """Another process holds the run folder (it is running, or copying it)."""


class CorruptStateError(PerspectivesError):
    """A run folder or saved agent whose state is damaged or inconsistent."""


class BackendUnavailable(PerspectivesError):
    """A model backend that cannot be loaded or reached."""
