"""``python -m cnnlab`` runs the command line."""

from cnnlab.cli import main

main()
