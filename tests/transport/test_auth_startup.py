"""A key file [auth] names that cannot be used stops ``flashsale serve`` at once, with the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashsale.transport import main


def _config(tmp_path: Path, auth: str) -> str:
    path = tmp_path / "sale.toml"
    path.write_text(f'[[sku]]\nid = "a"\nstock = 1\n\n[store]\npath = "{tmp_path / "x.db"}"\n\n[auth]\n{auth}\n')
    return str(path)


@pytest.mark.parametrize(
    ("auth", "files", "says"),
    [
        (
            'mode = "jwt"\njwt_algorithms = ["RS256"]\njwt_public_key_file = "{tmp}/missing.pem"',
            {},
            "auth.jwt_public_key_file: cannot read {tmp}/missing.pem: No such file or directory",
        ),
        (
            'mode = "jwt"\njwt_algorithms = ["RS256"]\njwt_public_key_file = "{tmp}/pub.pem"',
            {"pub.pem": "not a key"},
            "auth.jwt_public_key_file: {tmp}/pub.pem is not a PEM public key",
        ),
        (
            'mode = "jwt"\njwt_secret_file = "{tmp}/secret"',
            {"secret": "short\n"},
            "auth.jwt_secret_file: {tmp}/secret holds fewer than 32 bytes",
        ),
        (
            'mode = "jwt"\njwt_algorithms = ["ES256"]\njwks_file = "{tmp}/jwks.json"',
            {"jwks.json": "{"},
            "auth.jwks_file: {tmp}/jwks.json is not a usable JWK set",
        ),
    ],
)
def test_an_unusable_key_file_stops_the_server_before_it_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], auth: str, files: dict[str, str], says: str
) -> None:
    """Exit 2 and one line naming the key and what is wrong with its file; no traceback, no secret."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    config = _config(tmp_path, auth.replace("{tmp}", str(tmp_path)))
    assert main(["serve", "--config", config, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flashsale: " + says.replace("{tmp}", str(tmp_path)))
    assert "Traceback" not in err
    assert err.count("\n") == 1
