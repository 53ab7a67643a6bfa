"""Tidings: a self-hosted, Courier-compatible notification service that delivers through Mailgun.

The public surface is small: the app factory, the settings, and the Mailgun sandbox app.
Everything else is internal.
"""

__version__ = "0.1.0"
