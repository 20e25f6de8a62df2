"""Credentials out of every line the project prints, logs or records: the one redaction.

A URL may carry a secret in three places, and `redact` hides each wherever a URL appears in a
text (a source, a command line, a tool's error message):
- a password: `https://user:password@host/` -> `https://user:***@host/`;
- an HTTP(S) user name alone, which is how tokens travel (`https://TOKEN@host/`) -> `***@`;
  other schemes keep theirs (`ssh://git@host/` names an account, not a secret);
- a query parameter named like a secret (`?token=`, `X-Amz-Signature=`, `api_key=`) -> `=***`.
Applying it twice changes nothing, so a message may pass through it on every layer it crosses.
"""

from __future__ import annotations

import re

MASK = "***"

# The authority of a URL up to the last "@" before its path: a password holding a raw "@" is
# hidden whole, as a URL parser reads the host after the last one.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@")
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&][^=&#\s]*(?:token|sig|secret|passw|pwd|key|credential|auth)[^=&#\s]*=)"
    r"(?P<value>[^&#\s'\"]*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by ***."""
    return _SECRET_PARAM.sub(_masked_param, _USERINFO.sub(_masked_userinfo, text))


def _masked_userinfo(found: re.Match[str]) -> str:
    scheme, userinfo = found["scheme"], found["userinfo"]
    user, colon, _password = userinfo.partition(":")
    if colon:
        return f"{scheme}{user}:{MASK}@"
    if scheme.lower() in ("http://", "https://"):
        return f"{scheme}{MASK}@"
    return found[0]


def _masked_param(found: re.Match[str]) -> str:
    return f"{found['name']}{MASK}" if found["value"] else found[0]
