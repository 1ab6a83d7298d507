"""What a Bot Connector failure means for delivery: a pure decision from the
HTTP status and headers to a `DeliveryError` (retry, wait, or give up)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from adapters.chat import DeliveryError

RETRYABLE = frozenset({408, 412, 429, 500, 502, 503, 504})
_PERMANENT_REASONS = {
    400: "Teams rejected the message as malformed (400)",
    403: "the bot is no longer in this conversation or may not post there (403)",
    404: "the conversation or message no longer exists (404)",
    413: "the message is too large for Teams (413)",
}


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


def delivery_error(status: int, headers: Mapping[str, str], detail: str, now: datetime) -> DeliveryError:
    if status in _PERMANENT_REASONS:
        return DeliveryError(f"{_PERMANENT_REASONS[status]}: {detail}", permanent=True)
    wait = retry_after(headers.get("Retry-After") or headers.get("retry-after"), now)
    if status in RETRYABLE:
        return DeliveryError(f"Teams answered {status}, try again: {detail}", retry_after=wait)
    return DeliveryError(f"Teams answered {status}: {detail}", retry_after=wait)
