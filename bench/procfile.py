"""The production commands, read from the ``Procfile``: benchmarks and the fault tests
start exactly what the Procfile, the systemd units and the README run."""

from __future__ import annotations

import shlex
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def command(kind: str) -> list[str]:
    """The Procfile's command for ``kind`` (``web``, ``worker``, ``release``), split."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, rest = line.partition(":")
        if sep and name.strip() == kind:
            return shlex.split(rest)
    raise LookupError(f"the Procfile has no {kind!r} process")


def web_command(bin_dir: Path | str, host: str, port: int, *extra: str) -> list[str]:
    """The Procfile's gunicorn command bound to ``host:port``, run from ``bin_dir`` (the
    virtual environment's scripts), with ``extra`` options before the app."""
    argv = command("web")
    if argv[0] != "gunicorn" or "-b" not in argv:
        raise LookupError("the Procfile's web process is not 'gunicorn ... -b ADDRESS ...'")
    argv[0] = str(Path(bin_dir) / "gunicorn")
    argv[argv.index("-b") + 1] = f"{host}:{port}"
    return [*argv[:-1], *extra, argv[-1]]


def worker_command(bin_dir: Path | str) -> list[str]:
    """The Procfile's ``flask ... worker`` command, run from ``bin_dir``."""
    argv = command("worker")
    if argv[0] != "flask" or "worker" not in argv:
        raise LookupError("the Procfile's worker process is not 'flask ... worker ...'")
    argv[0] = str(Path(bin_dir) / "flask")
    return argv


def wait_until_up(url: str, processes: list[subprocess.Popen], timeout: float = 60) -> bool:
    """Poll ``url`` until it answers 200; False when one of ``processes`` exits first or
    ``timeout`` seconds pass (the caller stops them and says where their logs are)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in processes):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:  # not listening yet (or an error status): try again
            pass
        time.sleep(0.2)
    return False
