"""``python -m heqis`` is the same as the ``heqis`` command."""

from heqis.cli import main

main()
