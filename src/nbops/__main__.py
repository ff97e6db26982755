"""`python -m nbops` is the `nbops` command."""

from nbops.cli import main

main()
