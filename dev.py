#!/usr/bin/env python3
"""Set up and run Entitle with nothing but Python 3.11+.

    python3 dev.py serve   # virtualenv, install, migrate, demo data, serve on http://127.0.0.1:8000
    python3 dev.py test    # virtualenv, install, the whole test suite (extra arguments go to pytest)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _ensure_environment() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Entitle needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = BIN / ("python.exe" if os.name == "nt" else "python")
    if not python.exists():
        print(f"creating virtualenv in {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".entitle-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print("installing Entitle and its dependencies (first run only)", flush=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", ".[test]"],
            cwd=ROOT,
            check=True,
        )
        stamp.write_text(digest)


def _run(*command: str) -> None:
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode:
        sys.exit(result.returncode)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in {"serve", "test"}:
        sys.exit(__doc__)
    _ensure_environment()
    entitle = str(BIN / "entitle")
    if argv[0] == "serve":
        _run(entitle, "migrate")
        _run(entitle, "demo")
        os.execv(entitle, [entitle, "serve", *argv[1:]])
    os.execv(str(BIN / "python"), [str(BIN / "python"), "-m", "pytest", *argv[1:]])


if __name__ == "__main__":
    main(sys.argv[1:])
