"""The figures of ``scripts/bench.py``: one module per figure, each with
``run(repetitions, quick) -> Figure`` (or a list). ``common`` holds what they share."""
