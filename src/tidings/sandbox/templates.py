"""Stored templates and their versions, and rendering them with Handlebars, bounded.

Mailgun keeps templates per domain; each has versions (a tag, the Handlebars source, an
optional comment and headers), one of which is active. A send naming ``template`` renders
the active version (or ``t:version``) with the send's variables.

Templates are user content, so both steps are bounded. Compiling (pybars3's grammar is
slow: about 0.4 s per kB) happens once, when a version is stored, in a worker thread, one
at a time, for at most :data:`COMPILE_SECONDS`, on a source of at most
:data:`MAX_SOURCE_BYTES`; sends only run the compiled function. Rendering has the standard
helpers only (``log`` does nothing, partials do not exist); every block a helper runs
counts against :data:`MAX_BLOCK_CALLS` and a time budget of :data:`RENDER_SECONDS`, and
the output is at most :data:`MAX_OUTPUT_CHARS`. Going over any bound is a
:class:`RenderError`, never a hang.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import pybars

JSON = dict[str, Any]

ENGINE = "handlebars"
MAX_SOURCE_BYTES = 100 * 1024  # Mailgun's documented size limit of a template version
MAX_OUTPUT_CHARS = 2 * 1024 * 1024
MAX_BLOCK_CALLS = 20_000
RENDER_SECONDS = 1.0
COMPILE_SECONDS = 60.0
TEMPLATE_HEADERS = ("From", "Subject", "Reply-To")  # the only ones Mailgun supports

Compiled = Callable[..., Any]


class RenderError(Exception):
    """A template that cannot be compiled or rendered within the bounds."""


def rfc822(epoch: float) -> str:
    """Mailgun's template dates: ``Wed, 29 Aug 2018 23:31:11 UTC``."""
    return formatdate(epoch, usegmt=True).replace("GMT", "UTC")


@dataclass
class Version:
    tag: str
    template: str
    comment: str
    headers: dict[str, str]
    created_at: float
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    active: bool = False
    # The compiled template and header sources, by source (see compile_all).
    compiled: dict[str, Compiled] = field(default_factory=dict, repr=False, compare=False)

    def describe(self, *, content: bool = True) -> JSON:
        shown: JSON = {
            "tag": self.tag,
            "engine": ENGINE,
            "mjml": "",
            "createdAt": rfc822(self.created_at),
            "comment": self.comment,
            "active": self.active,
            "id": self.id,
        }
        if self.headers:
            shown["headers"] = dict(self.headers)
        if content:
            shown["template"] = self.template
        return shown


@dataclass
class Template:
    name: str
    description: str
    created_by: str
    created_at: float
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    versions: dict[str, Version] = field(default_factory=dict)  # in creation order

    def active(self) -> Version | None:
        for version in self.versions.values():
            if version.active:
                return version
        return None

    def activate(self, tag: str) -> None:
        for version in self.versions.values():
            version.active = version.tag == tag

    def describe(self) -> JSON:
        return {
            "name": self.name,
            "description": self.description,
            "createdAt": rfc822(self.created_at),
            "createdBy": self.created_by,
            "id": self.id,
        }


class TemplateStore:
    """Every domain's templates by (lower-cased) name."""

    def __init__(self, domains: list[str]) -> None:
        self.by_domain: dict[str, dict[str, Template]] = {domain: {} for domain in domains}

    def of(self, domain: str) -> dict[str, Template]:
        return self.by_domain.setdefault(domain, {})

    def sorted(self, domain: str) -> list[Template]:
        return sorted(self.of(domain).values(), key=lambda t: t.name)

    def resolve(self, domain: str, name: str, tag: str | None) -> Version | None:
        """The version a send renders: ``tag`` if given, else the active one."""
        template = self.of(domain).get(name.lower())
        if template is None:
            return None
        if tag is not None:
            return template.versions.get(tag)
        return template.active()

    @staticmethod
    def new_version(
        template: Template,
        tag: str,
        source: str,
        comment: str,
        headers: dict[str, str],
        compiled: dict[str, Compiled],
    ) -> Version:
        version = Version(tag, source, comment, headers, time.time(), compiled=compiled)
        template.versions[tag] = version
        return version


# -- rendering ----------------------------------------------------------------------------


class _Budget:
    """Counts the blocks a render runs and the characters they produce, against a clock."""

    def __init__(self) -> None:
        self.calls = 0
        self.chars = 0
        self.deadline = time.monotonic() + RENDER_SECONDS

    def spend(self, produced: Any) -> None:
        self.calls += 1
        if isinstance(produced, list):
            self.chars += sum(len(part) for part in produced if isinstance(part, str))
        if self.calls > MAX_BLOCK_CALLS:
            raise RenderError(f"the template runs more than {MAX_BLOCK_CALLS} blocks")
        if self.chars > 4 * MAX_OUTPUT_CHARS:
            raise RenderError(f"the template produces more than {MAX_OUTPUT_CHARS} characters")
        if time.monotonic() > self.deadline:
            raise RenderError(f"rendering the template took more than {RENDER_SECONDS} s")


def _counted(block: Callable[[Any], Any], budget: _Budget) -> Callable[[Any], Any]:
    def run(this: Any) -> Any:
        produced = block(this)
        budget.spend(produced)
        return produced

    return run


def _bounded_helpers(budget: _Budget) -> dict[str, Callable[..., Any]]:
    """The standard helpers, each block they run counted; ``log`` does nothing."""
    standard: dict[str, Callable[..., Any]] = pybars._compiler._pybars_["helpers"]
    helpers: dict[str, Callable[..., Any]] = {}
    for name, helper in standard.items():
        if name in ("each", "if", "unless", "with", "blockHelperMissing"):

            def wrapped(
                this: Any, options: dict[str, Any], *args: Any, _helper: Any = helper
            ) -> Any:
                for key in ("fn", "inverse"):
                    if callable(options.get(key)):
                        options[key] = _counted(options[key], budget)
                return _helper(this, options, *args)

            helpers[name] = wrapped
        elif name == "log":
            helpers[name] = lambda this, *args: None
        else:
            helpers[name] = helper
    return helpers


_compiling = threading.Lock()  # one compile at a time: a bound on CPU, and pybars' state


def compile_source(source: str) -> Compiled:
    """Compile one source (blocking: run it off the event loop), or a RenderError."""
    if len(source.encode()) > MAX_SOURCE_BYTES:
        raise RenderError(f"the template is larger than {MAX_SOURCE_BYTES // 1024} kB")
    with _compiling:
        try:
            compiled: Compiled = pybars.Compiler().compile(source)
        except Exception as exc:  # pybars' and its grammar's errors, deep nesting
            raise RenderError(f"the template is not valid Handlebars: {exc}") from exc
    return compiled


async def compile_all(sources: Iterable[str]) -> dict[str, Compiled]:
    """Compile every source in a worker thread, within :data:`COMPILE_SECONDS`."""
    unique = list(dict.fromkeys(sources))
    for source in unique:  # refuse an oversized source before spending a thread on it
        if len(source.encode()) > MAX_SOURCE_BYTES:
            raise RenderError(f"the template is larger than {MAX_SOURCE_BYTES // 1024} kB")
    try:
        compiled = await asyncio.wait_for(
            asyncio.to_thread(lambda: [compile_source(source) for source in unique]),
            COMPILE_SECONDS,
        )
    except TimeoutError as exc:
        raise RenderError(
            f"the template takes more than {COMPILE_SECONDS:.0f} s to compile"
        ) from exc
    return dict(zip(unique, compiled, strict=True))


def render(compiled: Compiled, variables: JSON) -> str:
    """Run a compiled template with Handlebars semantics (HTML-escaped ``{{x}}``), bounded."""
    budget = _Budget()
    try:
        output = str(compiled(variables, helpers=_bounded_helpers(budget), partials={}))
    except RenderError:
        raise
    except Exception as exc:  # a missing partial, a helper given bad arguments …
        raise RenderError(f"the template cannot be rendered: {exc}") from exc
    if len(output) > MAX_OUTPUT_CHARS:
        raise RenderError(f"the template produces more than {MAX_OUTPUT_CHARS} characters")
    return output
