"""Imports every module that defines a ``CutterError`` outside ``cutter.errors``, so
that every ``ErrorCode`` has its class registered: the client imports it before it
rebuilds an ``error`` frame (``cutter.client.raised``). tests/test_error_codes.py
checks that this import alone registers a class for every member."""

from __future__ import annotations

import cutter.client
import cutter.pg.connect
import cutter.pg.logins
import cutter.pg.migrate
import cutter.run_pages
import cutter.secrets
import cutter.sshsig
import cutter.web.errors
import cutter.wire_errors  # noqa: F401
