"""``python -m aioq``: the command line."""

from aioq.cli import main

main()
