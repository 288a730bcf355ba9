"""The review page: an inbox of waiting gates and a page per run, served by the
daemon on a loopback port (``cutter daemon --http``); see docs/gates.md."""
