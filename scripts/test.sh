#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh tests/test_cli.py -x`. Exits with pytest's status.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The browser tests (tests/test_browser.py, marked `browser`) drive Debian's Chromium through Playwright's
# bundled driver; never `playwright install`. Installed here only as root with apt; otherwise they skip.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test: installing chromium for the browser tests" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export HF_HUB_OFFLINE=1  # models ship inside installed packages; never fetch from a hub
exec .venv/bin/python -m pytest "$@"
