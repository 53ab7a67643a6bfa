"""Server-rendered log viewer pages."""
