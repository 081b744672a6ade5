"""The small vocabulary the OpenAPI entries are written in, and the document builder.

An :class:`Op` is one route: its method, its path as the router spells it,
its parameters, its body and its answers. :func:`build_document` turns the
list of entries in :mod:`._openapi_routes` into an OpenAPI 3.1 document.
Every answer carries ``X-Request-Id``; every error answer is the one error
shape, with its ``error`` field narrowed to the codes that status can carry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flashsale import Config
from flashsale.config import AuthConfig

Schema = dict[str, Any]
"""A JSON Schema (2020-12, which OpenAPI 3.1 uses)."""

Security = Literal["admin", "dashboard", "buyer"]
"""Who an operation asks a credential of: the admin, the dashboard's session, or the buyer (per ``[auth]``)."""

JSON = "application/json"


def ref(name: str) -> Schema:
    """A reference to ``components/schemas/<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null``."""
    return {"anyOf": [schema, {"type": "null"}]}


@dataclass(frozen=True, slots=True)
class Answer:
    """One documented answer: a description, a body (JSON unless ``media`` says otherwise), headers."""

    description: str
    schema: Schema | None = None
    media: str = JSON
    headers: Mapping[str, Schema] = field(default_factory=dict)
    set_cookie: bool = False


def ok(description: str, schema: Schema | None = None, *, media: str = JSON, set_cookie: bool = False) -> Answer:
    """A success answer."""
    return Answer(description, schema, media, set_cookie=set_cookie)


def fails(
    description: str, *codes: str, extra: Schema | None = None, headers: Mapping[str, Schema] | None = None
) -> Answer:
    """An error answer whose ``error`` is one of ``codes``; ``extra`` documents more fields."""
    properties: Schema = {"error": {"type": "string", "enum": list(codes)}, "detail": {"type": "string"}}
    properties.update(extra or {})
    schema: Schema = {"type": "object", "required": ["error", "detail"], "properties": properties}
    return Answer(description, schema, headers=headers or {})


@dataclass(frozen=True, slots=True)
class Param:
    """A query or header parameter."""

    name: str
    where: Literal["query", "header", "cookie"]
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Op:
    """One route of the app, documented.

    ``path`` is the router's spelling without regexes (``/v1/orders/{order_id}/pay``);
    path parameters are strings unless ``path_schemas`` narrows them.
    """

    method: str
    path: str
    summary: str
    answers: Mapping[int, Answer]
    tag: str
    body: Schema | None = None
    body_media: str = JSON
    params: Sequence[Param] = ()
    path_schemas: Mapping[str, Schema] = field(default_factory=dict)
    security: Security | None = None
    description: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.method.upper(), self.path


BUYER: Schema = {"type": "string", "minLength": 1, "maxLength": 128}
MOMENT: Schema = {"type": "string", "format": "date-time"}
COUNT: Schema = {"type": "integer", "minimum": 0}
"""A buyer's name, as the request gives it (``user``)."""


def buyer_param(config: Config, description: str, schema: Schema = BUYER) -> Param:
    """``?user=``: the buyer, required where the gateway names it (``[auth] mode = "trusted"``)."""
    return Param("user", "query", schema, description, required=config.auth.mode == "trusted")


def combined(*groups: Mapping[int, Answer]) -> dict[int, Answer]:
    """The answers of several sources for one route; two error answers with one status become one, with both's codes.

    (A route that acts for a buyer gets :func:`buyer_answers`' 403, and may
    have a 403 of its own: a dict literal would keep only the last.)
    """
    out: dict[int, Answer] = {}
    for group in groups:
        for status, answer in group.items():
            known = out.get(status)
            out[status] = answer if known is None else _either(known, answer)
    return out


def _either(a: Answer, b: Answer) -> Answer:
    if a.schema is None or b.schema is None:
        raise ValueError(f"only error answers combine: {a.description!r} and {b.description!r}")
    codes = [*a.schema["properties"]["error"]["enum"]]
    codes += [code for code in b.schema["properties"]["error"]["enum"] if code not in codes]
    properties = {**a.schema["properties"], **b.schema["properties"], "error": {"type": "string", "enum": codes}}
    schema = {**a.schema, "properties": properties}
    return Answer(f"{a.description} Or: {b.description}", schema, a.media, {**a.headers, **b.headers})


def buyer_answers(config: Config) -> dict[int, Answer]:
    """The answers of a route that acts for a buyer when ``[auth]`` takes it from a header or a token."""
    if config.auth.mode == "trusted":
        return {}
    return {
        401: fails(
            "No buyer could be established: the credential is missing or failed the check the detail names.",
            "unauthenticated",
            headers={"WWW-Authenticate": {"type": "string", "pattern": "^Bearer "}},
        ),
        403: fails("The request names another buyer than the authenticated one.", "forbidden"),
    }


SKU_ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}


def sku_id(config: Config) -> Schema:
    """A SKU id in a path, with the sale's own SKUs as examples (so generated requests reach real ones)."""
    return {**SKU_ID, "examples": [sku.id for sku in config.skus[:3]]}


BAD_BODY = fails("The body is not what this route takes; nothing changed.", "invalid_request")
TOO_LARGE = fails("The body is larger than server.max_body_bytes.", "payload_too_large")
UNAVAILABLE = fails("The sale is not taking requests right now; retry shortly.", "unavailable")
SIGN_IN = fails("No valid admin token or dashboard session.", "unauthenticated")
NOT_FOUND = fails("No such route (or the admin token is not configured).", "not_found")


_PATH_PARAM = re.compile(r"{([^}]+)}")

REQUEST_ID: Schema = {
    "description": "Yours if you sent a sane one (1-128 printable characters), otherwise a fresh one.",
    "schema": {"type": "string", "minLength": 1},
}


def _answer(answer: Answer) -> Schema:
    out: Schema = {"description": answer.description}
    headers: Schema = {"X-Request-Id": REQUEST_ID}
    headers.update({name: {"schema": schema, "required": True} for name, schema in answer.headers.items()})
    if answer.set_cookie:
        headers["Set-Cookie"] = {
            "description": "The session cookie (HttpOnly, SameSite=Strict).",
            "schema": {"type": "string"},
        }
    out["headers"] = headers
    if answer.schema is not None:
        out["content"] = {answer.media: {"schema": answer.schema}}
    return out


def buyer_scheme(auth: AuthConfig) -> tuple[str, Schema] | None:
    """The buyer's credential as an OpenAPI security scheme, per ``[auth] mode``; ``None`` in trusted mode.

    In trusted mode the request names its buyer (``user`` in the body or the
    query) and nothing is checked, so a buyer's operation asks no credential.
    """
    if auth.mode == "jwt":
        return "buyerBearer", {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": 'A JWT whose `sub` claim is the buyer ([auth] mode = "jwt"); `exp` is required.',
        }
    if auth.mode == "header":
        return "buyerHeader", {
            "type": "apiKey",
            "in": "header",
            "name": auth.header,
            "description": 'The buyer, named by a gateway among server.trusted_proxies ([auth] mode = "header").',
        }
    return None


def _operation(op: Op, buyer: str | None) -> Schema:
    out: Schema = {
        "operationId": f"{op.method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', op.path).strip('_') or 'root'}",
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {str(status): _answer(answer) for status, answer in sorted(op.answers.items())},
    }
    if op.description:
        out["description"] = op.description
    params: list[Schema] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": op.path_schemas.get(name, {"type": "string", "minLength": 1}),
        }
        for name in _PATH_PARAM.findall(op.path)
    ]
    params += [
        {"name": p.name, "in": p.where, "required": p.required, "description": p.description, "schema": p.schema}
        for p in op.params
    ]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {op.body_media: {"schema": op.body}}}
    if op.security == "admin":
        out["security"] = [{"adminBearer": []}, {"dashboardSession": []}]
    elif op.security == "dashboard":
        out["security"] = [{"dashboardSession": []}]
    elif op.security == "buyer" and buyer is not None:
        out["security"] = [{buyer: []}]
    return out


_STAFF_SCHEMES: Schema = {
    "adminBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token ([admin] token or token_file).",
    },
    "dashboardSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "flashsale_session",
        "description": "Set by POST /dashboard/session from the admin token.",
    },
}


def build_document(
    ops: Sequence[Op], schemas: Mapping[str, Schema], *, title: str, version: str, auth: AuthConfig | None = None
) -> Schema:
    """The OpenAPI 3.1 document for ``ops``, whose buyers prove who they are per ``auth`` (default: trusted).

    Two entries for one method and path is a mistake.
    """
    buyer = buyer_scheme(auth or AuthConfig())
    schemes = _STAFF_SCHEMES if buyer is None else {**_STAFF_SCHEMES, buyer[0]: buyer[1]}
    paths: dict[str, dict[str, Schema]] = {}
    for op in ops:
        methods = paths.setdefault(op.path, {})
        if op.method.lower() in methods:
            raise ValueError(f"{op.method} {op.path} is documented twice")
        methods[op.method.lower()] = _operation(op, None if buyer is None else buyer[0])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": 'Every error body is {"error": "<code>", "detail": "<for a person>"}; '
            "every answer carries X-Request-Id. Bodies are strictly typed: an integer is written as one "
            '(1, not 1.0 or "1").',
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(schemas),
            "securitySchemes": dict(schemes),
        },
    }
