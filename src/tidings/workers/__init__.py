"""Background loops: dispatcher, poller, notifier."""
