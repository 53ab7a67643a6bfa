"""The HTTP API: Courier-compatible routes, schemas and auth."""
