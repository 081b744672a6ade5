"""README.md runs as written: every fenced block is executed, in order, the way a new reader would.

The convention, for everyone who adds to the README
----------------------------------------------------

Every fenced block runs, by its language (the first word after the fence):

- ``sh`` / ``bash`` / ``console``: shell commands, run with bash one at a
  time in one reader's session, in README order, from a directory that
  looks like a fresh checkout (the repo's files linked in; the venv is the
  repo's). Variables, ``cd`` and ``. .venv/bin/activate`` carry from one
  command to the next, as in one terminal. Every command must exit 0.

  * With ``$ `` prompts the block is a transcript: the lines after a command,
    up to the next prompt, are its output and are compared (blank lines
    are left out on both sides).
    ``...`` alone on a line matches any number of lines; ``...`` inside a
    line matches anything; a line that is JSON is compared as JSON (same
    keys and values; an ISO 8601 time matches any time; ``"..."`` any
    value). Lines starting with ``# `` are comments. Without prompts, every
    line is a command and output is not compared.
  * A server command (``make serve``, ``flashsale serve``, ``python -m
    flashsale.transport serve``) runs in the background; the session waits
    until ``/readyz`` answers 200, and later commands talk to it. It runs
    until the next server command or the end of the README, then gets
    SIGTERM and must log a clean ``stopped``, with no warning anywhere in
    its output. Write it alone on its line, without ``&`` (a reader runs it
    in another terminal): background jobs do not outlive their command.
  * Ports: ``8080`` to ``8099`` are moved to free ports, each its own
    (``--port`` and the moved 8080 are added to a server command that names
    no port), ``6379`` and ``5432`` to a throwaway
    Redis and PostgreSQL that the session starts the first time a block
    names them (PostgreSQL's superuser is ``postgres``, trust
    authentication; ``PGHOST`` and ``PGPORT`` point ``psql`` at it).
- ``python``: saved to a file in the session directory and run with
  ``python`` there (the venv's, once activated); it must exit 0.
- ``toml``: parsed at once, and loaded as a :class:`flashsale.Config` once
  every command has run, in the session's directory, so a file it names
  (a token file) may come from a later command (a fragment without
  ``[[sku]]`` is loaded next to one SKU). With ``title="NAME"`` on
  the fence line (```` ```toml title="cluster.toml" ````) it is also saved
  as NAME in the session's current directory, for the commands after it.
- ``sql``: run with ``psql`` on the session's PostgreSQL, database
  ``flashsale``, as ``postgres``.
- ``text``: an output sample; not run.

Any other language fails the test: give it a rule here or mark the block.

A block that must not run here says why, in an HTML comment on the line just
above its fence, naming the test that covers it instead (which must exist)::

    <!-- readme-test: skip: WHY; covered by tests/PATH.py::test_name -->

The comment does not render, so the README stays readable.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from flashsale import Config
from tests.readme_harness import (
    NOT_RUN,
    REPO,
    SHELLS,
    SKIP,
    Block,
    Session,
    fenced_blocks,
    output_matches,
    shell_steps,
)

README = REPO / "README.md"
RUNS = {*SHELLS, *NOT_RUN, "python", "toml", "sql"}


def _blocks() -> list[Block]:
    return fenced_blocks(README.read_text(encoding="utf-8"))


@pytest.mark.timeout(600)
def test_every_block_runs_as_written(tmp_path: Path) -> None:
    """Each README block, in order, in one reader's session: commands exit 0, transcripts print what they show."""
    session = Session(tmp_path)
    try:
        for block in _blocks():
            if block.marker is None:
                session.block(block)
        session.validate_configs()
    finally:
        session.close()


def test_every_block_is_run_or_names_its_test() -> None:
    """Each block has a language the harness runs, or a skip comment naming a test that exists."""
    blocks = _blocks()
    assert len(blocks) >= 10
    for block in blocks:
        if block.marker is None:
            assert block.lang in RUNS, f"{block.where()}: no rule runs {block.lang!r}; see tests/test_readme.py"
            continue
        skip = SKIP.match(block.marker)
        assert skip, f"{block.where()}: write <!-- readme-test: skip: WHY; covered by tests/FILE.py::test_name -->"
        covering = REPO / skip["file"]
        assert covering.is_file(), f"{block.where()}: {skip['file']} does not exist"
        assert re.search(rf"^(async )?def {skip['test']}\(", covering.read_text(encoding="utf-8"), re.M), (
            f"{block.where()}: {skip['file']} has no test {skip['test']}"
        )


def test_the_test_command_is_the_one_ci_runs() -> None:
    """``make test``, which the README shows and cannot run from inside itself, is exactly what CI runs."""
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.rstrip().splitlines()[-1] == "make test"
    assert any(b.body.split("#")[0].strip() == "make test" for b in _blocks() if b.lang == "sh")


def test_readme_config_is_a_valid_config() -> None:
    """The Configuration reference loads, and its values are the ones it shows."""
    block = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None
    config = Config.from_mapping(tomllib.loads(block.group(1)), "README.md")
    sku = config.sku("moutai-53")
    assert (sku.stock, sku.per_user_limit, sku.payment_timeout) == (100, 2, 900)
    assert sku.starts_at is not None
    assert sku.ends_at is not None
    assert sku.ends_at - sku.starts_at == 600_000_000
    assert config.limits.per_user is not None
    assert (config.limits.per_user.rate, config.limits.per_user.burst) == (5, 10)
    assert config.limits.per_sku is not None
    assert (config.limits.per_sku.algorithm, config.limits.per_sku.queue) == ("leaky", 5000)
    assert config.limits.per_ip is not None
    assert config.server.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert config.server.access_log is False
    assert config.store.durability == "commit"
    assert config.inventory_actors == 4


# -- the harness's own rules --------------------------------------------------------------


def test_blocks_are_found_with_their_markers() -> None:
    """Fences (indented ones too) give language, title, body and the comment just above."""
    text = (
        "intro\n\n<!-- readme-test: skip: slow; covered by tests/x.py::test_y -->\n```sh\nmake test\n```\n\n"
        '1. step\n\n   ```toml title="a.toml"\n   [[sku]]\n   id = "a"\n   ```\n'
    )
    first, second = fenced_blocks(text)
    assert (first.lang, first.body, first.marker) == ("sh", "make test\n", "skip: slow; covered by tests/x.py::test_y")
    assert (second.lang, second.title, second.body, second.marker) == ("toml", "a.toml", '[[sku]]\nid = "a"\n', None)


def test_transcripts_split_into_commands_and_outputs() -> None:
    """``$ `` starts a command (continuations joined), output runs to the next one, ``# `` lines are comments."""
    body = '$ curl a \\\n   -d b\n{"x": 1}\n\n# a comment\n$ echo hi\nhi\nthere\n$ true\n'
    assert shell_steps(body) == [("curl a -d b", ['{"x": 1}']), ("echo hi", ["hi", "there"]), ("true", [])]
    assert shell_steps("make serve   # the demo\n. .venv/bin/activate\n") == [
        ("make serve   # the demo", None),
        (". .venv/bin/activate", None),
    ]


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        (['{"a":1,"t":"2026-11-24T22:07:54.146038Z"}'], ['{"a": 1, "t": "2030-01-01T00:00:00.000001Z"}'], True),
        (['{"a":1}'], ['{"a":2}'], False),
        (['{"a":1}'], ['{"a":1,"b":2}'], False),
        (['{"a":"..."}'], ['{"a":[1,2]}'], True),
        (["timing  in ... s (... decisions/s)"], ["timing in 0.3 s (1,000 decisions/s)"], True),
        (["a", "...", "z"], ["a", "b", "c", "z"], True),
        (["a", "...", "z"], ["a", "b"], False),
        (["ok"], ["ok", "more"], False),
    ],
)
def test_output_comparison(expected: list[str], actual: list[str], matches: bool) -> None:
    """JSON compares as JSON with times matching times; ``...`` matches within a line or across lines."""
    assert output_matches(expected, actual) is matches
