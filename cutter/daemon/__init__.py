"""The long-running daemon: commands over a stream, many runs at once."""
