"""python -m cutter: the same as the cutter command.

Guarded: a worker process (``cutter.runtime.offloop``) loads the parent's main module as
``__mp_main__``, and must not run the command line again."""

from cutter.cli.main import main

if __name__ == "__main__":
    main()
