"""``python -m radpacs`` runs the command line."""

from radpacs.cli import main

main()
