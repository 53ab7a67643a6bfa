"""Content to email: sandboxed Jinja2, Courier Elemental, CSS inlining, the text part."""
