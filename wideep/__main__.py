"""``python -m wideep`` runs the CLI."""

from .cli import main

main()
