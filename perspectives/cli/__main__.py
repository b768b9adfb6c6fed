"""``python -m perspectives.cli``: the command line (a sweep's systems run this way)."""

from .app import main

main()
