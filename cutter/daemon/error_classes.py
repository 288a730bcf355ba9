"""Imports every module that defines a ``CutterError`` outside ``cutter.core.errors``, so
that every ``ErrorCode`` has its class registered: the client imports it before it
rebuilds an ``error`` frame (``cutter.daemon.client.raised``). tests/test_error_codes.py
checks that this import alone registers a class for every member."""

from __future__ import annotations
