"""The figures of ``scripts/bench.py``: one module per figure, each with
``run(repetitions) -> Figure``. ``common`` holds what they share."""
