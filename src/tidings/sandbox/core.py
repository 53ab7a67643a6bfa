"""The sandbox itself: accepts messages, plays out their lives, records and posts events.

:class:`Sandbox` owns all state and background work; the HTTP modules only translate
requests into calls on it. Background work needs ``start()``/``stop()`` (the standalone app's
lifespan calls them; a host that mounts the app calls them itself), and starts lazily on the
first accepted message if nobody did.
"""

from __future__ import annotations

import random
import re
import time
from email.utils import parsedate_to_datetime
from html import unescape
from typing import TYPE_CHECKING, Any

from tidings.sandbox import domains, outcomes
from tidings.sandbox.errors import MailgunError, domain_not_found
from tidings.sandbox.eventshape import EventFactory, shared_parts
from tidings.sandbox.faults import FaultInjector
from tidings.sandbox.forms import Address, SendRequest
from tidings.sandbox.poster import WebhookPoster
from tidings.sandbox.scheduler import Scheduler
from tidings.sandbox.settings import SandboxSettings
from tidings.sandbox.state import JSON, WEBHOOK_KINDS, MessageCopy, Store
from tidings.sandbox.templates import RenderError, TemplateStore, Version, render

if TYPE_CHECKING:
    from starlette.applications import Starlette

_TAGS = re.compile(r"<[^>]*>")
_RECIPIENT_VAR = re.compile(r"%recipient\.([^%\s]+)%")
_OFF = ("no", "false", "0")
# How long a stored message answers at its storage URL: Mailgun's default retention.
RETENTION_SECONDS = 3 * 24 * 3600


class Sandbox:
    """A local Mailgun: in-memory state plus the background work of delivering events."""

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings()
        self.started_at = time.time()
        self.store = Store(self.settings.domains)
        self.templates = TemplateStore(self.settings.domains)
        self.retention_seconds: float = RETENTION_SECONDS
        self._rng = random.Random(self.settings.seed)
        self.events = EventFactory(self._rng)
        self.scheduler = Scheduler()
        self.poster = WebhookPoster(
            self.store,
            self.settings.signing_key,
            self.settings.retry_scale,
            self.settings.webhook_timeout,
        )
        faults = self.settings.faults
        if faults.seed is None and self.settings.seed is not None:
            faults.seed = self.settings.seed
        self.faults = FaultInjector(faults)
        for domain in self.settings.domains:
            record = self.store.domain_records[domain]
            record.dkim_selector = self.settings.dkim_selector
            record.dkim_public_key = self.settings.dkim_public_key
            for kind in WEBHOOK_KINDS:
                if self.settings.webhook_urls:
                    self.store.webhooks[domain][kind] = list(self.settings.webhook_urls)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.scheduler.running:
            self.scheduler.start()

    async def stop(self) -> None:
        self.scheduler.stop()
        await self.poster.close()

    def asgi(self, prefix_for_inspection: str = "/sandbox") -> Starlette:
        """The ASGI app: Mailgun's paths at its root, inspection and inbox under the prefix."""
        from tidings.sandbox.app import build_app

        return build_app(self, prefix_for_inspection)

    # -- sending --------------------------------------------------------------------------

    def new_message_id(self, domain: str) -> str:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        return f"{stamp}.{self._rng.getrandbits(64):016x}@{domain}"

    def accept(self, request: SendRequest, domain: str, storage_base: str) -> str:
        """Store one copy per recipient, record its accepted event, schedule the rest.

        Returns the message id without angle brackets.
        """
        record = self.store.domain_records.get(domain)
        if record is None:
            raise domain_not_found(domain)
        if not record.verified:
            raise MailgunError(
                400, f"Domain {domain} is not allowed to send: {domains.UNVERIFIED_REASON}"
            )
        now = time.time()
        message_id = self.new_message_id(domain)
        options = request.options
        tracking = domains.send_tracking(record.tracking, options, request.html is not None)
        track_opens, track_clicks = tracking.opens, tracking.clicks
        self.store.note_tags(domain, request.tags, now)
        delivery_delay = _delivery_delay(options.get("deliverytime"), now)
        first_delay = delivery_delay + self.settings.event_delay
        version = self._template_version(request, domain, message_id, now)
        sender_address = request.sender_address
        storage_url = f"{storage_base}/v3/domains/{domain}/messages/{message_id.partition('@')[0]}"
        base_size = (
            len(request.subject)
            + len(request.text or "")
            + len(request.html or "")
            + len(request.amp_html or "")
            + sum(len(p.data) for p in request.attachments)
            + sum(len(p.data) for p in request.inline)
            + 400  # headers Mailgun adds
        )
        batch = request.recipient_variables
        all_to = [a.display for a in request.to]
        seen: set[str] = set()
        copies: list[MessageCopy] = []
        kinds = (
            [(a, "to") for a in request.to]
            + [(a, "cc") for a in request.cc]
            + [(a, "bcc") for a in request.bcc]
        )
        for address, kind in kinds:
            lowered = address.address.lower()
            if lowered in seen:
                continue  # Mailgun sends one copy per distinct address
            seen.add(lowered)
            copy = self._copy(request, domain, message_id, address, kind, batch, all_to, now)
            if version is not None:
                self._apply_template(copy, request, version, domain, message_id, now)
            if tracking.unsubscribe:
                self._add_unsubscribe(copy, record)
            copies.append(copy)
        # Rendered first, stored after: a template that fails for one copy refuses the send.
        # A batch (recipient-variables) is one message per recipient, as its To shows.
        recipients = [copy.recipient for copy in copies]
        for copy in copies:
            lowered = copy.recipient.lower()
            copy.recipients = [copy.recipient] if batch is not None else recipients
            copy.size = base_size + (len(copy.html or "") if version is not None else 0)
            if delivery_delay > 0:
                copy.scheduled_for = now + delivery_delay
            to_header = ", ".join(copy.to)
            copy.shared = shared_parts(copy, sender_address, to_header, storage_url)
            self.store.add_message(copy)
            self.emit(domain, self.events.accepted(copy), now)
            steps = outcomes.steps_for(
                copy.recipient,
                suppressed=self.store.suppressions.blocking(domain, lowered, request.tags),
                track_opens=track_opens,
                track_clicks=track_clicks,
            )
            if steps:
                self.scheduler.call_later(first_delay, self._advance, copy, steps, 0, 1)
        return message_id

    def _copy(
        self,
        request: SendRequest,
        domain: str,
        message_id: str,
        address: Address,
        kind: str,
        batch: dict[str, dict[str, Any]] | None,
        all_to: list[str],
        now: float,
    ) -> MessageCopy:
        subject, text, html, amp_html = (
            request.subject,
            request.text,
            request.html,
            request.amp_html,
        )
        variables = request.variables
        headers = request.headers
        to = all_to
        if batch is not None:
            values = batch.get(address.address) or batch.get(address.address.lower())
            if kind == "to":
                to = [address.display]  # each batch copy shows only its own recipient
            if values is not None:
                subject = _personalise(subject, values)
                text = _personalise(text, values) if text is not None else None
                html = _personalise(html, values) if html is not None else None
                amp_html = _personalise(amp_html, values) if amp_html is not None else None
                variables = {k: _personalise(v, values) for k, v in variables.items()}
                # Mailgun documents placeholders in the parts and v: variables; that it
                # fills them in h: headers too (one List-Unsubscribe URL per recipient) is
                # assumed here, as Tidings' batch sends assume it.
                headers = {k: _personalise(v, values) for k, v in headers.items()}
        return MessageCopy(
            key=self.store.next_key(),
            message_id=message_id,
            domain=domain,
            recipient=address.address,
            sender=request.sender,
            to=to,
            cc=[a.display for a in request.cc],
            bcc=[a.display for a in request.bcc],
            subject=subject,
            text=text,
            html=html,
            amp_html=amp_html,
            template=request.template,
            tags=request.tags,
            headers=headers,
            variables=variables,
            options=request.options,
            attachments=request.attachments,
            inline=request.inline,
            received_at=now,
            size=0,
            test_mode=request.options.get("testmode", "").lower() in ("yes", "true", "1"),
            mime=request.mime,
        )

    # -- stored templates -----------------------------------------------------------------

    def _template_version(
        self, request: SendRequest, domain: str, message_id: str, now: float
    ) -> Version | None:
        """The stored version a send names, or a 400 (and a rejected event) if none."""
        if request.template is None:
            return None
        version = self.templates.resolve(domain, request.template, request.template_version)
        if version is None:
            what = "template version" if request.template_version else "template"
            self._reject(request, domain, message_id, now, f"{what} not found")
            raise MailgunError(400, f"{what} not found")
        return version

    def _apply_template(
        self,
        copy: MessageCopy,
        request: SendRequest,
        version: Version,
        domain: str,
        message_id: str,
        now: float,
    ) -> None:
        """Render the copy's HTML (and text, with ``t:text``) from the stored version; the
        version's From and Subject fill in what the send left out."""
        variables = {**copy.variables, **request.template_variables}
        try:
            copy.html = render(version.compiled[version.template], variables)
            if request.template_text:
                copy.text = _text_of(copy.html)
            if not request.subject_given and "Subject" in version.headers:
                copy.subject = render(version.compiled[version.headers["Subject"]], variables)
        except RenderError as error:
            self._reject(request, domain, message_id, now, f"template cannot be rendered: {error}")
            raise MailgunError(400, f"template cannot be rendered: {error}") from error
        if not request.sender_given and "From" in version.headers:
            copy.sender = version.headers["From"]
        if "Reply-To" in version.headers and "Reply-To" not in copy.headers:
            copy.headers = {**copy.headers, "Reply-To": version.headers["Reply-To"]}

    def _reject(
        self, request: SendRequest, domain: str, message_id: str, now: float, why: str
    ) -> None:
        """Record Mailgun's ``rejected`` event for a send refused after it was read."""
        self.emit(domain, self.events.rejected(request, domain, message_id, why), now)

    def _add_unsubscribe(self, copy: MessageCopy, record: domains.DomainRecord) -> None:
        """Unsubscribe tracking on: the footers and the recipient's unsubscribe links."""
        token = self._rng.getrandbits(96).to_bytes(12, "big").hex()
        url = f"{record.tracking_host()}/u/{token}"
        copy.text, copy.html = domains.with_unsubscribe(
            copy.text, copy.html, record.tracking, url, f"{url}?tags=1"
        )

    def _advance(self, copy: MessageCopy, steps: tuple[str, ...], index: int, attempt: int) -> None:
        if self.store.messages_by_key.get(copy.key) is not copy:
            return  # the sandbox was reset since this step was scheduled
        kind = steps[index]
        self.emit(copy.domain, self.events.step(kind, copy, attempt), time.time())
        self._listed(kind, copy)
        if index + 1 < len(steps):
            next_attempt = attempt + 1 if kind == outcomes.DEFERRED else attempt
            self.scheduler.call_later(
                self.settings.event_delay, self._advance, copy, steps, index + 1, next_attempt
            )

    def _listed(self, kind: str, copy: MessageCopy) -> None:
        """Put the address on the suppression list this step calls for, as Mailgun does."""
        lists = self.store.suppressions
        if kind in outcomes.HARD_BOUNCES:
            error = "No such mailbox" if kind == outcomes.BOUNCED else "Sender domain has no MX"
            lists.add_bounce(copy.domain, copy.recipient, "550", error)
        elif kind == outcomes.COMPLAINED:
            lists.add_complaint(copy.domain, copy.recipient)
        elif kind == outcomes.UNSUBSCRIBED:
            # Mailgun's %unsubscribe_url% unsubscribes from all of the domain's mail.
            lists.add_unsubscribe(copy.domain, copy.recipient, ["*"])

    def emit(self, domain: str, item: JSON, timestamp: float) -> None:
        """Record an event and post it to the domain's webhooks."""
        self.store.add_event(domain, item, timestamp)
        self.poster.post(domain, item)

    def reset(self) -> int:
        self.scheduler.clear()
        return self.store.reset()


def _text_of(html: str) -> str:
    """A plain text part from rendered HTML: tags dropped, entities decoded."""
    return unescape(_TAGS.sub("", html)).strip()


def _personalise(value: str, values: dict[str, Any]) -> str:
    """Replace ``%recipient.key%`` with the recipient's value; unknown keys are left as is."""
    if "%recipient." not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        return str(values[key]) if key in values else match.group(0)

    return _RECIPIENT_VAR.sub(substitute, value)


def _delivery_delay(raw: str | None, now: float) -> float:
    """Seconds until ``o:deliverytime`` (RFC 2822), or 0."""
    if not raw:
        return 0.0
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return 0.0
