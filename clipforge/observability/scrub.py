"""Secrets out of error reports: by key name (Sentry's `EventScrubber`) and by shape (regexes).

Key names catch `{"authorization": ...}` style fields; shapes catch the same secrets wherever
they end up as text: a request scope's header list in a frame's locals, a presigned URL in an
exception message, a DSN in `sys.argv`, a log breadcrumb. The regex pass runs over every string
of the event after Sentry serialised it (`before_send`), so nothing escapes it by nesting.
"""

from __future__ import annotations

import re
from typing import Any

FILTERED = "[Filtered]"

# Key names whose values never leave the process (compared lower-case, exact), on top of
# Sentry's defaults (password, secret, token, authorization, api_key, cookie, ...).
EXTRA_DENYLIST = (
    "x-api-key",
    "api-key",
    "raw_key",
    "raw",
    "key_hash",
    "webhook_secret",
    "signing_secret",
    "secret_access_key",
    "s3_secret_access_key",
    "aws_secret_access_key",
    "metrics_token",
    "database_url",
    "dsn",
    "sentry_dsn",
    "conninfo",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "clipforge-signature",
    "signature",
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values, whatever the scheme (Bearer, Basic, AWS4-HMAC-SHA256 ...).
    (
        re.compile(r"(?i)\b(authorization['\"]?\s*[:=,]\s*b?['\"]?)[^'\"\r\n]+"),
        rf"\1{FILTERED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {FILTERED}"),
    # Our API keys (`cf_` + 43 characters of token_urlsafe) and webhook signing secrets
    # (`whsec_` + ...), also when Sentry's value truncation cut them short; shorter `cf_` words
    # (a database named cf_test_...) are left alone.
    (re.compile(r"\bcf_[A-Za-z0-9_-]{20,}"), f"cf_{FILTERED}"),
    (re.compile(r"\bwhsec_[A-Za-z0-9_-]{4,}"), f"whsec_{FILTERED}"),
    # Presigned URL query parameters (SigV4 and SigV2) and the webhook signature header value.
    (
        re.compile(
            r"(?i)((?:X-Amz-(?:Signature|Credential|Security-Token)|Signature|AWSAccessKeyId)"
            r"(?:=|%3D))[^&\s'\"<>]*"
        ),
        rf"\1{FILTERED}",
    ),
    (re.compile(r"(?i)\b(v1=)[0-9a-f]{16,}"), rf"\1{FILTERED}"),
    # Credentials in URLs (postgresql://user:pw@host, redis://:pw@host, https://u:p@...).
    (re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@'\"]*:)[^\s@/'\"]+@"), rf"\1{FILTERED}@"),
    # key=value conninfo passwords and secret-looking assignments in free text.
    (
        re.compile(
            r"(?i)\b((?:password|passwd|secret|secret_access_key|token)\s*[=:]\s*)[^\s,;'\"&]+"
        ),
        rf"\1{FILTERED}",
    ),
)


def scrub_text(text: str) -> str:
    """`text` with every secret-shaped substring replaced by ``[Filtered]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub_value(value: Any) -> Any:
    """Scrub every string inside a JSON-like value (dicts, lists, tuples), keys included."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            (scrub_text(k) if isinstance(k, str) else k): scrub_value(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value
