"""Mailgun: request building, sending, webhook verification and parsing, Events API reading."""
