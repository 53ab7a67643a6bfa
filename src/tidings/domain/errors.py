"""The one error the pure core raises: something in a request is wrong, and where.

Routes turn it into Courier's 400 body; the path is Courier-style
(``message.to[1].email``) so the sender can find the field without guessing.
"""

from __future__ import annotations


class ValidationError(ValueError):
    """A field of a request is missing or wrong.

    ``path`` names the field (``message.content.elements[2].href``); ``message`` is the
    sentence after it (``is required``). ``str(error)`` joins the two.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path} {message}")
        self.path = path
        self.message = message

    def __reduce__(self) -> tuple[type[ValidationError], tuple[str, str]]:
        # Pickled as its two parts (the default would pass the joined sentence to
        # ``__init__``), so that a render worker process can hand it back intact.
        return (type(self), (self.path, self.message))


def key_path(parent: str, key: str) -> str:
    """The path of ``key`` inside the object at ``parent``."""
    return f"{parent}.{key}"


def index_path(parent: str, index: int) -> str:
    """The path of item ``index`` inside the list at ``parent``."""
    return f"{parent}[{index}]"
