"""python -m cutter: the same as the cutter command."""

from cutter.cli import main

main()
