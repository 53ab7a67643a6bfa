"""SMTP: MIME building, sending through any SMTP relay (aiosmtplib), and reading its replies."""
