"""``tidings doctor``: is this Mailgun configuration able to send, and will Tidings hear back?

Each check answers ok, warn or fail with a sentence saying what was found and, when it is not
fine, the fix. See :func:`run_doctor` for the order and
:mod:`tidings.providers.mailgun.doctor.dns_checks` for the DNS part.
"""

from tidings.providers.mailgun.doctor.checks import Check, DoctorReport, Status
from tidings.providers.mailgun.doctor.run import (
    DoctorOptions,
    WebhookActivity,
    describe_route,
    run_doctor,
)

__all__ = [
    "Check",
    "DoctorOptions",
    "DoctorReport",
    "Status",
    "WebhookActivity",
    "describe_route",
    "run_doctor",
]
