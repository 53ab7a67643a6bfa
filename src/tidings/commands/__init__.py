"""Command-line commands that talk to a running Tidings server over its HTTP API."""
