"""The embedded default: every store in one SQLite database under the state directory.

``database`` opens it (WAL, checked with ``quick_check``, migrated) and runs its
writes through one writer with group commit; ``target`` and ``records`` are the
ports over it; ``config.embedded_config`` assembles a ``RunnerConfig``. Decisions:
docs/storage.md.
"""
