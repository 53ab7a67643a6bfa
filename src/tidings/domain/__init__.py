"""Pure core: messages, statuses and their merge, recipients, content. No I/O, no framework."""
