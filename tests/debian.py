"""Installing Debian packages the tests need (PostgreSQL, Chromium) when a machine lacks them: apt-get, as root."""

from __future__ import annotations

import os
import shutil
import subprocess


def apt_install(packages: list[str], error: type[Exception], missing: str) -> None:
    """``apt-get install`` ``packages``; raise ``error`` saying what is ``missing`` when that is not possible."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise error(
            f"{missing} missing and cannot be installed here: install Debian's {', '.join(packages)} "
            "package(s), or run as root with apt-get."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise error(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
