"""``python -m wideep`` runs the CLI."""

from wideep.cli import main

main()
