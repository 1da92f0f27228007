"""``python -m hotline.cli`` runs the ``hotline`` command."""

from hotline.cli import main

main()
