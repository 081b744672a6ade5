"""The [auth] section: its keys, defaults and every refusal, named by key."""

from __future__ import annotations

from typing import Any

import pytest

from flashsale import AuthConfig, Config, ConfigError

SECRET = "s" * 32


def _load(auth: dict[str, Any], **server: Any) -> Config:
    data: dict[str, Any] = {"sku": [{"id": "a", "stock": 1}], "auth": auth}
    if server:
        data["server"] = server
    return Config.from_mapping(data, "t.toml")


def test_trusted_is_the_default() -> None:
    """Without [auth] the body's user is believed: mode trusted, header X-User-Id, HS256, leeway 5 s."""
    config = Config.from_mapping({"sku": [{"id": "a", "stock": 1}]})
    assert config.auth == AuthConfig()
    assert (config.auth.mode, config.auth.header, config.auth.jwt_algorithms, config.auth.jwt_leeway) == (
        "trusted",
        "X-User-Id",
        ("HS256",),
        5.0,
    )


def test_every_key_of_the_contract_is_read() -> None:
    """All ten keys of [auth] load into AuthConfig."""
    auth = _load(
        {
            "mode": "jwt",
            "header": "X-Buyer",
            "jwt_algorithms": ["HS256", "RS256"],
            "jwt_secret": SECRET,
            "jwks_file": "jwks.json",
            "jwt_issuer": "https://id.example",
            "jwt_audience": "flashsale",
            "jwt_leeway": 2,
        }
    ).auth
    assert auth == AuthConfig(
        "jwt", "X-Buyer", ("HS256", "RS256"), SECRET, None, None, "jwks.json", "https://id.example", "flashsale", 2.0
    )
    assert _load({"mode": "jwt", "jwt_secret_file": "secret"}).auth.jwt_secret_file == "secret"
    assert _load({"mode": "jwt", "jwt_algorithms": ["EdDSA"], "jwt_public_key_file": "k.pem"}).auth.mode == "jwt"
    assert _load({"mode": "header"}, trusted_proxies=["10.0.0.0/8"]).auth.mode == "header"


def test_the_secret_never_shows_in_a_repr() -> None:
    """repr(AuthConfig) leaves the shared secret out: a logged config leaks nothing."""
    assert SECRET not in repr(_load({"mode": "jwt", "jwt_secret": SECRET}))


def test_to_mapping_leaves_auth_out() -> None:
    """A recorded scenario's config never carries [auth] (nor its secret)."""
    assert "auth" not in _load({"mode": "jwt", "jwt_secret": SECRET}).to_mapping()


@pytest.mark.parametrize(
    ("auth", "server", "message"),
    [
        ({"mode": "oauth"}, {}, "auth.mode: must be 'trusted', 'header' or 'jwt', got 'oauth'"),
        ({"mode": "header"}, {}, "auth.mode: 'header' believes the header only from server.trusted_proxies"),
        ({"header": "X User"}, {}, "auth.header: must be an HTTP header name other than Authorization"),
        ({"header": "authorization"}, {}, "auth.header: must be an HTTP header name other than Authorization"),
        ({"jwt_algorithms": ["none"]}, {}, "auth.jwt_algorithms: 'none' is not one of"),
        ({"jwt_algorithms": []}, {}, "auth.jwt_algorithms: must be a non-empty list"),
        ({"jwt_algorithms": "HS256"}, {}, "auth.jwt_algorithms: must be a non-empty list"),
        ({"mode": "jwt"}, {}, "auth.jwt_secret: HS256 needs exactly one of jwt_secret, jwt_secret_file"),
        (
            {"mode": "jwt", "jwt_secret": SECRET, "jwt_secret_file": "f"},
            {},
            "auth.jwt_secret: HS256 needs exactly one",
        ),
        ({"mode": "jwt", "jwt_secret": "short"}, {}, "auth.jwt_secret: must be at least 32 bytes for HS256"),
        (
            {"mode": "jwt", "jwt_algorithms": ["HS512"], "jwt_secret": SECRET},
            {},
            "auth.jwt_secret: must be at least 64 bytes for HS512",
        ),
        (
            {"mode": "jwt", "jwt_algorithms": ["RS256"]},
            {},
            "auth.jwt_public_key_file: RS256 needs exactly one of jwt_public_key_file, jwks_file",
        ),
        (
            {"mode": "jwt", "jwt_algorithms": ["RS256"], "jwt_public_key_file": "a", "jwks_file": "b"},
            {},
            "auth.jwt_public_key_file: RS256 needs exactly one",
        ),
        (
            {"mode": "jwt", "jwt_algorithms": ["RS256"], "jwt_public_key_file": "a", "jwt_secret": SECRET},
            {},
            "auth.jwt_secret: is only for HS256, HS384 or HS512",
        ),
        (
            {"mode": "jwt", "jwt_secret": SECRET, "jwks_file": "b"},
            {},
            "auth.jwt_public_key_file: is only for RS256, ES256 or EdDSA",
        ),
        ({"jwt_leeway": -1}, {}, "auth.jwt_leeway: must be 0 to 300 seconds, got -1.0"),
        ({"jwt_leeway": "5"}, {}, "auth.jwt_leeway: must be int or float, got '5'"),
        ({"jwt_issuer": 5}, {}, "auth.jwt_issuer: must be str, got 5"),
        ({"mode": "jwt", "secret": SECRET}, {}, "auth: unknown key 'secret'"),
    ],
)
def test_a_wrong_auth_key_is_named(auth: dict[str, Any], server: dict[str, Any], message: str) -> None:
    """Each mistake in [auth] is a ConfigError naming the file and the key; no secret is echoed."""
    with pytest.raises(ConfigError) as info:
        _load(auth, **server)
    assert str(info.value).startswith("t.toml: ")
    assert message in str(info.value)
    assert SECRET not in str(info.value)
