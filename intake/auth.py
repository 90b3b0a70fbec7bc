"""Did the receiving server vouch for the sender? `Authentication-Results` (RFC 8601), read safely.

Pure: decoded headers in, a verdict out. Only the TOPMOST `Authentication-Results` header whose
authserv-id is ours (Gmail's `mx.google.com` by default, setting `replies.authserv_id`) is read:
the receiving server prepends its own header above everything the message carried in, so any
header below it, or with another authserv-id, may have been written by the sender and is ignored.

The rule (`dmarc_verdict`), for a message claiming a roster address:
- `dmarc=pass` -> pass; `dmarc=fail` -> fail.
- no dmarc result, or `none`, `neutral`, `temperror`, `permerror`, `bestguesspass` (the domain
  publishes no usable DMARC policy): pass only when an aligned mechanism passed, i.e. `dkim=pass`
  with `header.d` (or `header.i`) in the From domain, or `spf=pass` with `smtp.mailfrom` in the
  From domain ("in" = equal, or one a subdomain of the other: relaxed alignment without a public
  suffix list); otherwise fail.
- no `Authentication-Results` by our authserv-id at all -> unknown. The pipeline does not hold on
  unknown: on Gmail the header is always present, and a local test server (Dovecot) adds none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["pass", "fail", "unknown"]
_SOFT_DMARC = {"none", "neutral", "temperror", "permerror", "bestguesspass", "policy"}


@dataclass(frozen=True)
class MethodResult:
    """One `method=result` entry with its properties (`header.d`, `smtp.mailfrom`, ...)."""

    method: str  # lowercased: dmarc, spf, dkim, arc, ...
    result: str  # lowercased: pass, fail, none, ...
    properties: dict[str, str] = field(default_factory=dict)  # "header.d" -> "example.go.th"


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    results: tuple[MethodResult, ...]

    def of(self, method: str) -> list[MethodResult]:
        return [r for r in self.results if r.method == method]


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str  # short, for the coordinator and the log: "dmarc=fail", "no aligned pass", ...
    # True when the receiving server itself said `dmarc=fail` (or another hard result), rather
    # than this rule failing a domain without a usable DMARC policy
    explicit: bool = False


def _strip_comments(text: str) -> str:
    """Remove (nested) RFC 5322 comments outside quoted strings; keep quoted text, unquoted.

    Gmail's comments hold ";" and "=" (`spf=pass (google.com: domain of ... designates ...)`).
    """
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in text:
        if escaped:
            if depth == 0:
                out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif quoted:
            if char == '"':
                quoted = False
            else:
                out.append(" " if char == ";" else char)  # a quoted ";" must not split results
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            if char == '"':
                quoted = True
            else:
                out.append(char)
    return "".join(out)


def parse_authentication_results(value: str) -> AuthResults | None:
    """One header value -> its authserv-id and results; None when it is not parsable at all."""
    parts = [p.strip() for p in _strip_comments(" ".join(value.split())).split(";")]
    head = parts[0].split() if parts and parts[0] else []
    if not head:
        return None
    results: list[MethodResult] = []
    for part in parts[1:]:
        tokens = part.split()
        if not tokens or "=" not in tokens[0]:
            continue  # "none" (no results) or junk
        method, _, result = tokens[0].partition("=")
        props: dict[str, str] = {}
        for token in tokens[1:]:
            key, sep, val = token.partition("=")
            if sep and "." in key:
                props.setdefault(key.lower(), val)
        results.append(MethodResult(method.split("/")[0].lower(), result.lower(), props))
    return AuthResults(head[0].lower(), tuple(results))


def trusted_results(headers: dict[str, list[str]], authserv_id: str) -> AuthResults | None:
    """The topmost `Authentication-Results` by our own receiving server, or None."""
    wanted = authserv_id.strip().lower()
    for value in headers.get("authentication-results", []):  # topmost first
        parsed = parse_authentication_results(value)
        if parsed is not None and parsed.authserv_id == wanted:
            return parsed
    return None


def _domain(value: str) -> str:
    return value.rsplit("@", 1)[-1].strip().strip("<>.").lower()


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: the same domain, or one a subdomain of the other."""
    a, b = _domain(domain), _domain(from_domain)
    if not a or not b:
        return False
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _aligned_pass(results: AuthResults, from_domain: str) -> str | None:
    for r in results.of("dkim"):
        signer = r.properties.get("header.d") or r.properties.get("header.i", "")
        if r.result == "pass" and aligned(signer, from_domain):
            return "dkim"
    for r in results.of("spf"):
        mailfrom = r.properties.get("smtp.mailfrom") or r.properties.get("smtp.helo", "")
        if r.result == "pass" and aligned(mailfrom, from_domain):
            return "spf"
    return None


def dmarc_verdict(headers: dict[str, list[str]], authserv_id: str, from_address: str) -> Verdict:
    """Pass, fail or unknown for the message's From address (the rule is in the module doc)."""
    results = trusted_results(headers, authserv_id)
    if results is None:
        return Verdict("unknown", f"no Authentication-Results from {authserv_id}")
    dmarc = results.of("dmarc")
    verdict = dmarc[0].result if dmarc else ""
    if verdict == "pass":
        return Verdict("pass", "dmarc=pass")
    if verdict == "fail":
        return Verdict("fail", "dmarc=fail", explicit=True)
    if verdict and verdict not in _SOFT_DMARC:
        return Verdict("fail", f"dmarc={verdict}", explicit=True)
    mechanism = _aligned_pass(results, _domain(from_address))
    shown = f"dmarc={verdict}" if verdict else "no dmarc result"
    if mechanism:
        return Verdict("pass", f"{shown}, aligned {mechanism}=pass")
    return Verdict("fail", f"{shown} and no aligned dkim/spf pass")
