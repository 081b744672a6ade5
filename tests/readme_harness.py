"""The machinery that runs README.md's fenced blocks; the convention is in tests/test_readme.py.

:func:`fenced_blocks` splits a Markdown text into :class:`Block` values
(language, info string, body, line, the ``readme-test`` comment above it).
:class:`Session` runs them in order in a directory that looks like a fresh
checkout, the way a reader would type them into one shell: variables, the
activated venv and the working directory carry from one command to the
next; a server command runs in the background until the next one replaces
it; the ports 8080, 6379 and 5432 are moved to a free port, a throwaway
Redis and a throwaway PostgreSQL. :func:`output_matches` compares a
command's output with the transcript's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flashsale import Config
from flashsale.testing import PostgresServer, RedisServer, free_port, wait_until
from flashsale.testing._postgres import postgres_binary

REPO = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT = 120.0
SERVER_TIMEOUT = 60.0
SHELLS = {"sh", "bash", "shell", "console"}
NOT_RUN = {"text"}  # output samples, not code
COMMENT = re.compile(r"^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$")
SKIP = re.compile(r"^skip:\s*(?P<why>.+?);\s*covered by (?P<file>tests/[\w/.-]+\.py)::(?P<test>\w+)$")
SERVER = re.compile(r"^(make serve\b|flashsale serve\b|python -m flashsale\.transport serve\b)")
HTTP_PORTS = re.compile(r"80[89]\d")  # the README's servers listen on these; each is moved to a free port
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
# What a checkout holds that the README's commands use; the session links them (the venv is shared).
CHECKOUT = ("Makefile", "pyproject.toml", "requirements.lock", ".venv", "scenarios", "docs", "README.md",
            "engine", "actors", "transport", "tests", "bench")  # fmt: skip


@dataclass(frozen=True)
class Block:
    """One fenced block: ``lang`` and the rest of the fence line (``info``), its body, where it starts."""

    lang: str
    info: str
    body: str
    line: int
    marker: str | None  # the text of a ``<!-- readme-test: ... -->`` comment on the line just above

    @property
    def title(self) -> str | None:
        """The ``title="NAME"`` of the fence line: the file the block is saved as."""
        found = re.search(r'title="([^"]+)"', self.info)
        return found.group(1) if found else None

    def where(self) -> str:
        return f"README.md:{self.line} ({self.lang} block)"


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, indented ones (inside list items) included."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        opening = re.match(r"^(\s*)```(\w*)(.*)$", lines[i])
        if not opening:
            i += 1
            continue
        indent, lang, info = opening.groups()
        above = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = COMMENT.match(above)
        body = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        blocks.append(Block(lang, info.strip(), "\n".join(body) + "\n", i + 1, marker.group(1) if marker else None))
        i = j + 1
    return blocks


def shell_steps(body: str) -> list[tuple[str, list[str] | None]]:
    """A shell block as ``(command, expected output lines or None)``.

    With ``$ `` prompts, the lines after a command up to the next prompt are
    its output, but blank lines and lines starting with ``# `` (comments).
    Without prompts every line is a command. Backslash continuations join.
    """
    lines = body.splitlines()
    prompted = any(line.startswith("$ ") for line in lines)
    steps: list[tuple[str, list[str] | None]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if prompted and not line.startswith("$ "):
            assert steps, f"output before any command: {line!r}"
            expected = steps[-1][1]
            assert expected is not None
            expected.append(line)
            continue
        command = line[2:] if prompted else line
        while command.endswith("\\") and i < len(lines):
            command = command[:-1].rstrip() + " " + lines[i].strip()
            i += 1
        steps.append((command, [] if prompted else None))
        if prompted:  # its output runs until the next prompt; blank lines and comments are not part of it
            while i < len(lines) and not lines[i].startswith("$ "):
                if lines[i].strip() and not lines[i].startswith("# "):
                    steps[-1][1].append(lines[i])  # type: ignore[union-attr]
                i += 1
    return steps


def _json_matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(_json_matches(v, actual[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_json_matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if expected == "...":
        return True
    if isinstance(expected, str) and ISO_TIME.match(expected):
        return isinstance(actual, str) and bool(ISO_TIME.match(actual))
    return bool(expected == actual) and type(expected) is type(actual)


def _line_matches(expected: str, actual: str) -> bool:
    try:
        want, got = json.loads(expected), json.loads(actual)
    except ValueError:
        pass
    else:
        return _json_matches(want, got)
    pattern = ".*?".join(re.escape(" ".join(part.split())) for part in expected.split("..."))
    return re.fullmatch(pattern, " ".join(actual.split())) is not None


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line: ``...`` alone matches any lines, ``...`` in a line anything, JSON as JSON, times as times."""
    if not expected:
        return not actual
    if expected[0].strip() == "...":
        return any(output_matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and _line_matches(expected[0], actual[0]) and output_matches(expected[1:], actual[1:])


class Session:
    """One reader's shell, in a directory that looks like a fresh checkout."""

    def __init__(self, root: Path) -> None:
        stale = subprocess.run(["make", "-q", ".venv/.installed"], cwd=REPO, check=False, capture_output=True)
        if stale.returncode != 0:  # make would reinstall the shared venv from the session's directory
            raise AssertionError("the venv is older than pyproject.toml or requirements.lock: run `make test`")
        self.dir = root / "checkout"
        self.dir.mkdir()
        for name in CHECKOUT:
            if (REPO / name).exists():
                (self.dir / name).symlink_to(REPO / name)
        self.state = root / "shell-state"
        self.cwd = root / "shell-cwd"
        self.cwd.write_text(str(self.dir))
        venv = str(REPO / ".venv")
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if not p.startswith(venv)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS", "VIRTUAL_ENV", "PG"))}
        env["PATH"] = os.pathsep.join([*path, str(Path(postgres_binary("psql")).parent)])
        env.pop("PYTHONPATH", None)
        self.env = env
        self.ports = {"8080": str(free_port())}
        self.redis: RedisServer | None = None
        self.postgres: PostgresServer | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.server_log: Path | None = None
        self.servers = 0
        self.configs: list[tuple[Block, dict[str, Any]]] = []

    # -- the world the README assumes ------------------------------------------------

    def needs_backends(self, text: str) -> None:
        """Start the throwaway Redis and PostgreSQL the first time a block names them."""
        if self.postgres is not None or not re.search(r"\b(6379|5432|psql)\b", text):
            return
        self.redis = RedisServer()
        self.redis.start()
        self.postgres = PostgresServer()
        self.postgres.start()
        self.ports["6379"] = str(self.redis.port)
        self.ports["5432"] = str(self.postgres.port)
        self.env.update(PGHOST="127.0.0.1", PGPORT=str(self.postgres.port))

    def localize(self, text: str) -> str:
        """The README's ports moved: 8080-8099 to free ports (one each), 6379 and 5432 to this session's servers."""

        def moved(m: re.Match[str]) -> str:
            port = m.group(0)
            if port not in self.ports:
                if not HTTP_PORTS.fullmatch(port):
                    return port
                self.ports[port] = str(free_port())
            return self.ports[port]

        return re.sub(r"(?<![\d.])\d{4}\b", moved, text)

    # -- running ----------------------------------------------------------------------

    def _script(self, command: str) -> str:
        keep = f"declare -p 2>/dev/null | grep -Ev '^declare -[a-zA-Z]*r|^declare -[-a-zA-Z]* (BASH|FUNCNAME|PIPESTATUS|GROUPS|DIRSTACK|SHELLOPTS|_=)' > {shlex.quote(str(self.state))}"  # noqa: E501
        return (
            f"[ -f {shlex.quote(str(self.state))} ] && source {shlex.quote(str(self.state))} >/dev/null 2>&1\n"
            f'cd "$(cat {shlex.quote(str(self.cwd))})"\n'
            f"{command}\n"
            f"__readme_rc=$?\n{keep}\npwd > {shlex.quote(str(self.cwd))}\nexit $__readme_rc\n"
        )

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run one command as the reader's shell would, carrying variables and directory to the next."""
        return subprocess.run(
            ["bash", "-c", self._script(command)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def serve(self, command: str) -> None:
        """Start a server command in the background; return once it answers ``/readyz``."""
        self.stop_server()
        named = re.search(r"--port[ =](\d+)", command)
        port = named.group(1) if named else self.ports["8080"]
        if "--port" not in command:
            if command.startswith("make serve"):
                command = (
                    f'make serve ARGS="--port {port}"'
                    if "ARGS=" not in command
                    else command.replace('ARGS="', f'ARGS="--port {port} ')
                )
            else:
                command += f" --port {port}"
        self.servers += 1
        self.server_log = self.state.parent / f"server-{self.servers}.log"
        with self.server_log.open("wb") as log:
            self.server = subprocess.Popen(
                ["bash", "-c", self._script(f"exec {command}")],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = self.server

        def ready() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"`{command}` exited {server.returncode}: {self.server_log_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    return bool(resp.status == 200)
            except (OSError, urllib.error.URLError):
                return False

        wait_until(ready, SERVER_TIMEOUT, f"`{command}` ready on port {port}")

    def server_log_text(self) -> str:
        return self.server_log.read_text(errors="replace") if self.server_log else ""

    def stop_server(self) -> None:
        """SIGTERM the running server (its whole process group); it must stop cleanly."""
        server, self.server = self.server, None
        if server is None:
            return
        if server.poll() is not None:
            raise AssertionError(f"the server exited {server.returncode} before the end: {self.server_log_text()}")
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(SERVER_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            raise AssertionError(f"the server did not stop on SIGTERM: {self.server_log_text()}") from None
        said = self.server_log_text()
        assert '"event":"stopped"' in said, f"no clean stop: {said}"
        assert "Warning" not in said, f"the server warned: {said}"  # a clean start says nothing it need not

    def close(self) -> None:
        try:
            self.stop_server()
        finally:
            for backend in (self.redis, self.postgres):
                if backend is not None:
                    backend.close()

    # -- one block --------------------------------------------------------------------

    def shell(self, block: Block) -> None:
        for command, expected in shell_steps(self.localize(block.body)):
            if SERVER.match(command):
                self.serve(command)
                continue
            assert not command.rstrip().endswith("&"), (
                f"{block.where()}: `{command}`: a background job does not outlive its command here;"
                " start a server with its own server command (see tests/test_readme.py)"
            )
            done = self.run(command)
            said = f"{block.where()}: `{command}` exited {done.returncode}\n{done.stdout}{done.stderr}"
            assert done.returncode == 0, said
            if expected:
                got = [line for line in done.stdout.splitlines() if line.strip()]
                assert output_matches(expected, got), (
                    f"{block.where()}: `{command}` printed\n"
                    + "\n".join(got)
                    + "\nwhere the README shows\n"
                    + "\n".join(expected)
                )

    def python(self, block: Block) -> None:
        script = self.dir / f"readme_{block.line}.py"
        script.write_text(self.localize(block.body), encoding="utf-8")
        done = self.run(f"python {shlex.quote(str(script))}")
        assert done.returncode == 0, f"{block.where()} exited {done.returncode}:\n{done.stdout}{done.stderr}"

    def toml(self, block: Block) -> None:
        text = self.localize(block.body)
        data = tomllib.loads(text)
        self.configs.append((block, data))
        if block.title:
            Path(self.run("pwd").stdout.strip(), block.title).write_text(text, encoding="utf-8")

    def validate_configs(self) -> None:
        """Load every TOML block as a Config, in the session's directory once every command has run.

        At the end, because a config may name a file a later command makes
        (an admin token), as a reader's server loads it after that command.
        """
        here = os.getcwd()
        os.chdir(self.run("pwd").stdout.strip())
        try:
            for block, data in self.configs:
                validate_toml(data, block)
        finally:
            os.chdir(here)

    def sql(self, block: Block) -> None:
        script = self.dir / f"readme_{block.line}.sql"
        script.write_text(block.body, encoding="utf-8")
        done = self.run(f"PGUSER=postgres PGDATABASE=flashsale psql -X -q -v ON_ERROR_STOP=1 -f {script}")
        assert done.returncode == 0, f"{block.where()}: psql exited {done.returncode}:\n{done.stdout}{done.stderr}"

    def block(self, block: Block) -> None:
        self.needs_backends(block.body + (" psql" if block.lang == "sql" else ""))
        if block.lang in SHELLS:
            self.shell(block)
        elif block.lang == "python":
            self.python(block)
        elif block.lang == "toml":
            self.toml(block)
        elif block.lang == "sql":
            self.sql(block)
        else:
            assert block.lang in NOT_RUN, f"{block.where()}: no rule runs {block.lang!r} (see tests/test_readme.py)"


def validate_toml(data: dict[str, Any], block: Block) -> Config:
    """A whole config (with ``[[sku]]``) loads; a fragment loads next to one SKU."""
    if "sku" not in data:
        data = {**data, "sku": [{"id": "readme", "stock": 1}]}
    return Config.from_mapping(data, block.where())
