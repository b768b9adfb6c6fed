"""The command line: ``perspectives run | analyze | report | results | presets | compare |
figure2 | init | instruct-tune`` (``perspectives --help``)."""

from .app import app, main

__all__ = ["app", "main"]
