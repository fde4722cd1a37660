"""The real `mkdocs build` for the site tests (test_site.py, test_browser.py): run as a user runs it, in a
subprocess, with the network cut off (conftest.py gives the session's measurement cache and the repository's build).

The cut-off is a `sitecustomize` module on PYTHONPATH, so it holds in the build and in every worker
process the engine starts: any connection other than a Unix socket, and any name lookup, is refused and
written to a log, which the tests read (a caught-and-ignored attempt still shows there).
"""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

NETWORK_GUARD = '''\
import hashlib
import os
import socket

_LOG = os.environ["RESFAM_TEST_NETWORK_LOG"]


def _refuse(what):
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {what}\\n")
    raise OSError(f"network access in a test: {what}")


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def connect(self, address):
    if self.family != socket.AF_UNIX:
        _refuse(f"connect {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family != socket.AF_UNIX:
        _refuse(f"connect {address!r}")
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _refuse(f"getaddrinfo {host!r}")


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''


def refuse_network(monkeypatch) -> None:
    """The same cut-off inside the test process itself."""
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@dataclass
class Build:
    returncode: int
    output: str  # stdout and stderr together, as a terminal shows them
    site: Path
    network_attempts: list[str]
    sources_before: dict[str, str] | None = None  # source_snapshot() just before the build


def source_snapshot(root: Path) -> dict[str, str]:
    """Every file under templates/ and docs/ of `root`, with its content hash."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for folder in ("templates", "docs") for path in sorted((root / folder).rglob("*")) if path.is_file()}


def working_tree_files(root: Path = REPO) -> list[str]:
    """The files of the project's working tree as a commit of it would hold them: every file git tracks or
    would add (not the ignored ones), '/'-separated relative to `root`; a tracked file removed from the
    working tree is listed, and missing."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name]


def offline_env(guard_dir: Path, cache_dir: Path) -> dict[str, str]:
    """The environment of an offline build: the guard on PYTHONPATH, the session's cache."""
    guard_dir.mkdir(parents=True, exist_ok=True)
    (guard_dir / "sitecustomize.py").write_text(NETWORK_GUARD, encoding="utf-8")
    path = os.pathsep.join(filter(None, [str(guard_dir), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, RESFAM_CACHE_DIR=str(cache_dir),
                RESFAM_TEST_NETWORK_LOG=str(guard_dir / "network.log"), NO_MKDOCS_2_WARNING="1")


def network_attempts(env: dict[str, str]) -> list[str]:
    log = Path(env["RESFAM_TEST_NETWORK_LOG"])
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def mkdocs_build(config_file: Path, work: Path, cache_dir: Path, *args: str, builder: str = "mkdocs") -> Build:
    """`mkdocs build --strict` of `config_file` into `work/site`, offline (`builder`: another builder
    with MkDocs' command line and plugin API, e.g. properdocs)."""
    before = source_snapshot(config_file.parent)
    env = offline_env(work / "guard", cache_dir)
    site = work / "site"
    done = subprocess.run(
        [sys.executable, "-m", builder, "build", "--strict", "-f", str(config_file), "-d", str(site), *args],
        cwd=config_file.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=1800,
    )
    return Build(done.returncode, done.stdout, site, network_attempts(env), before)
