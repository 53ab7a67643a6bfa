"""The renderer's one error: a template could not become an email, and which field it was."""

from __future__ import annotations

from tidings.domain.errors import ValidationError


class RenderError(ValidationError):
    """A template could not be rendered; ``path`` names the field it came from.

    A :class:`~tidings.domain.errors.ValidationError`, so that the API can answer a
    template that does not compile (found by ``check_content``) like any other bad field.
    """
