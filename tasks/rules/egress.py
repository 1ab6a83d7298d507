"""Data leaving through read steps. Pure.

A read that reaches a host of its arguments' choosing (`http.fetch`'s URL)
sends those arguments to that host: a URL written by the model, or filled in
from what an earlier step read, can carry data out (`…/steal?data=…`). Such a
read needs a person's approval unless the policy's `fetch_allowlist` names its
host. Arguments a person typed (a playbook's parameters, the task's text) are
trusted; the model's plan and earlier steps' output are not.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

_STEP_REF = re.compile(r"\{\{\s*steps\.([A-Za-z0-9_\-]+)")


def url_host(value: Any) -> str | None:
    """The host of an http(s) URL, lower case; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    return parts.hostname or None


def _strings(args: Any) -> Iterator[str]:
    if isinstance(args, str):
        yield args
    elif isinstance(args, Mapping):
        for v in args.values():
            yield from _strings(v)
    elif isinstance(args, list | tuple):
        for v in args:
            yield from _strings(v)


def step_refs(args: Any) -> list[str]:
    """The earlier steps whose output the (unfilled) arguments use."""
    return sorted({m.group(1) for s in _strings(args) for m in _STEP_REF.finditer(s)})


def untrusted_origin(template_args: Any, *, planned_by_model: bool) -> str | None:
    """Why these arguments may carry data out, or None when a person typed them."""
    refs = step_refs(template_args)
    if refs:
        return "its arguments come from the output of step " + ", ".join(refs)
    return "the model wrote this step" if planned_by_model else None


def allowed(host: str, allowlist: Iterable[str]) -> bool:
    """Is the host on the allowlist (exact names or glob patterns, any case)?"""
    host = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(host, p.lower().rstrip(".")) for p in allowlist)


def leaving(host: str | None, origin: str | None, allowlist: Iterable[str]) -> str | None:
    """What a person approving the read should be told, or None when no one need be asked."""
    if host is None or origin is None or allowed(host, allowlist):
        return None
    return f"this read sends its arguments to {host}, which the policy's fetch_allowlist does not name, and {origin}"
