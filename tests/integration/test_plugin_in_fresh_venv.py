"""The README's test, verbatim, in a fresh virtualenv where this project was just installed:
the pytest11 entry point must make ``mail_capture`` available with nothing else to do."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow
#: No cache files; no hypothesis plugin (it comes from the system's packages, not from a
#: user's fresh venv, and its set-up is most of a run's time).
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def readme_test() -> str:
    """The first Python block under the README's "Testing your app's mail" heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Testing your app's mail", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README.md: no python block under 'Testing your app's mail'"
    return match[1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv (seeing the system's packages for the dependencies) with this project
    installed from a copy of its sources."""
    base = tmp_path_factory.mktemp("venv")
    source = base / "source"
    shutil.copytree(ROOT / "relay", source / "relay", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "venv",
            "--system-site-packages",
            "--without-pip",
            str(base / "env"),
        ],
        check=True,
    )
    python = base / "env" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", str(source)]
    subprocess.run(install, check=True, cwd=base)  # its build backend from the package index
    return python


def run_pytest(python: Path, directory: Path, code: str) -> subprocess.CompletedProcess[str]:
    (directory / "test_mail.py").write_text(code, encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST")}
    env.pop("PYTHONPATH", None)  # the installed package, not this checkout
    return subprocess.run(
        [str(python), "-m", "pytest", "-q", *QUIET, "test_mail.py"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readme_test_passes_after_pip_install(venv: Path, tmp_path: Path) -> None:
    done = run_pytest(venv, tmp_path, readme_test())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    where = subprocess.run(
        [str(venv), "-c", "import relay.testing.plugin as p; print(p.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        check=True,
    )
    assert str(venv.parents[2]) in where.stdout  # the copy installed in the venv


def test_waiting_for_mail_that_never_comes_lists_what_arrived(venv: Path, tmp_path: Path) -> None:
    code = re.sub(r'wait\("([^"]*)"\)', r'wait("\1 subject:never", timeout=0.5)', readme_test())
    done = run_pytest(venv, tmp_path, code)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0 matched. 1 arrived:" in done.stdout
    assert "- subject 'Welcome', from 'app@example.org', to 'ann@example.org'" in done.stdout
