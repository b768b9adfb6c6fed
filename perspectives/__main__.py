"""``python -m perspectives``: the command line."""

from .cli import main

main()
