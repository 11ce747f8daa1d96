"""DKIM in tests: keys written as the relay reads them, their DNS records, and verification
by implementations other than the relay's dkimpy (tests/verifiers/).

``verify(message, dns_port, tool)`` runs Perl's Mail::DKIM (``perl``, Debian's
libmail-dkim-perl: rsa-sha256 only) or Node's mailauth (``node``: rsa-sha256 and
ed25519-sha256) on ``message`` and returns ``{(domain, selector, algorithm): result}``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from relay.deliver.dkim import DkimConfig, generate_key, signing_key

VERIFIERS = Path(__file__).parent / "verifiers"
_COMMANDS = {
    "perl": ["perl", str(VERIFIERS / "dkimverify.pl")],
    "node": ["node", str(VERIFIERS / "dkimverify.js")],
}


def write_key(directory: Path, domain: str, selector: str, algorithm: str) -> tuple[dict, str]:
    """A new key file (mode 0600) under ``directory``: its ``dkim:`` entry and TXT record."""
    path = directory / f"{domain}.{selector}.key"
    pem = generate_key(algorithm)  # type: ignore[arg-type]
    path.write_bytes(pem)
    path.chmod(0o600)
    entry = {
        "domain": domain,
        "selector": selector,
        "private_key_file": str(path),
        "algorithm": algorithm,
    }
    config = DkimConfig(
        domain=domain,
        selector=selector,
        private_key_file=path,
        algorithm=algorithm,  # type: ignore[arg-type]
    )
    return entry, signing_key(config, pem).record


def txt(record: str) -> str:
    """A TXT record's zone-file text: quoted strings of at most 255 characters."""
    return " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))


def verifier_missing(tool: str) -> str | None:
    """Why ``tool`` cannot run here (None: it can); .ci/test.sh installs both."""
    if shutil.which(tool) is None:
        return f"{tool} is not installed"
    probe = {"perl": ["perl", "-MMail::DKIM::Verifier", "-e1"], "node": None}[tool]
    if probe and subprocess.run(probe, capture_output=True).returncode != 0:
        return "Mail::DKIM is missing (apt-get install libmail-dkim-perl)"
    if tool == "node" and not (VERIFIERS / "node_modules" / "mailauth").is_dir():
        return "mailauth is missing (npm ci --prefix tests/verifiers)"
    return None


def verify(message: bytes, dns_port: int, tool: str) -> dict[tuple[str, str, str], str]:
    """Each signature's result (``pass``, ``fail`` …) as ``tool`` sees it."""
    missing = verifier_missing(tool)
    if missing and not os.environ.get("CI"):  # CI installs them: there, missing fails
        pytest.skip(missing)
    done = subprocess.run(
        [*_COMMANDS[tool], str(dns_port)], input=message, capture_output=True, timeout=60
    )
    results = {}
    for line in done.stdout.decode().splitlines():
        result, *tags = line.split(" (", 1)[0].split()
        fields = dict(tag.split("=", 1) for tag in tags if "=" in tag)
        if fields:
            results[(fields["d"], fields["s"], fields["a"])] = result
    assert results or "none" in done.stdout.decode(), done.stderr.decode()
    return results
