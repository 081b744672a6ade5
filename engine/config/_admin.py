"""The ``[admin]`` section and the validation of live limit changes.

The admin API (``/v1/admin/...``) exists only when a token is configured:
``token_file`` (a file holding the token; whitespace around it is ignored)
or ``token`` (the token itself, for tests and throwaway sales). The token is
at least 16 characters, is never logged, and never written back by
:meth:`Config.to_mapping` (so a recorded scenario does not carry it).

:func:`limit_changes` checks a ``PUT /v1/admin/limits`` body with the very
checks the ``[limits]`` section gets at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, get_args

from flashsale._errors import ConfigError
from flashsale.actors import BucketSpec, Scope

if TYPE_CHECKING:
    from ._reader import _Reader

MIN_TOKEN = 16
SCOPES: tuple[Scope, ...] = get_args(Scope)


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """Who may steer the sale: the bearer token of the admin API (``None``: no admin API)."""

    token: str | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return self.token is not None


def read_admin(reader: _Reader, data: Any) -> AdminConfig:
    """The ``[admin]`` table; reads ``token_file`` now, so a missing file fails the load, not a request."""
    t: Mapping[str, Any] = reader.table(data, "admin", {"token", "token_file"})
    if "token" in t and "token_file" in t:
        raise reader.fail("admin", "give 'token' or 'token_file', not both")
    token = reader.value(t, "token", str, "admin", "") or None
    path = reader.value(t, "token_file", str, "admin", "")
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise reader.fail("admin.token_file", f"cannot read {path!r}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise reader.fail("admin.token_file", f"{path!r} is not UTF-8 text") from None
    if token is not None and (len(token) < MIN_TOKEN or not token.isprintable() or not token.isascii()):
        # Said without the token itself: it must never reach a log.
        where = "admin.token_file" if path else "admin.token"
        raise reader.fail(where, f"the token must be at least {MIN_TOKEN} printable ASCII characters")
    return AdminConfig(token=token)


def limit_changes(body: Any, current: Mapping[Scope, BucketSpec]) -> dict[Scope, BucketSpec]:
    """The scopes a ``PUT /v1/admin/limits`` body changes, checked as ``[limits]`` is at load.

    ``body`` is ``{"<scope>": {"rate": r, "burst": b}, ...}`` with at least one
    of ``rate`` and ``burst`` per scope; what is left out keeps its value.
    Raises :class:`ConfigError` naming the key.
    """
    from ._reader import _Reader  # noqa: PLC0415 - _reader imports this module

    reader = _Reader("PUT /v1/admin/limits")
    top = reader.table(body, "body", set(SCOPES))
    if not top:
        raise reader.fail("body", f"name at least one scope ({', '.join(SCOPES)})")
    changes: dict[Scope, BucketSpec] = {}
    for name, raw in top.items():
        scope = cast("Scope", name)
        t = reader.table(raw, f"limits.{name}", {"rate", "burst"})
        if not t:
            raise reader.fail(f"limits.{name}", "give 'rate', 'burst' or both")
        old = current.get(scope)
        if old is None:
            raise ConfigError(
                f"PUT /v1/admin/limits: limits.{name}: is not configured; only a configured scope changes live"
            )
        merged = {"rate": t.get("rate", old.rate), "burst": t.get("burst", old.burst), "algorithm": old.algorithm}
        if old.queue:
            merged["queue"] = old.queue
        spec = reader.bucket({name: merged}, name)
        assert spec is not None
        changes[scope] = spec
    reader.raise_errors()  # the reader notes unknown keys and wrong types, and says them all at once
    return changes
