"""Imports every module that defines a ``CutterError`` outside ``cutter.core.errors``, so
that every ``ErrorCode`` has its class registered: the client imports it before it
rebuilds an ``error`` frame (``cutter.daemon.client.raised``). tests/test_error_codes.py
checks that this import alone registers a class for every member."""

from __future__ import annotations

# Imported for the classes they define (registration happens at definition).
import cutter.core.outbox
import cutter.core.run_pages
import cutter.core.secrets
import cutter.core.wire_errors
import cutter.daemon.client
import cutter.runtime.secret_files
import cutter.runtime.sshsig
import cutter.stores.pg.connect
import cutter.stores.pg.logins
import cutter.stores.pg.migrate
import cutter.web.errors  # noqa: F401
