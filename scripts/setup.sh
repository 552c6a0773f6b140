#!/usr/bin/env bash
# Set up a fresh machine: .venv with vkpp-learning and its dev extras from PyPI, Tesseract for OCR
# (Debian's tesseract-ocr, when running as root with apt), and the local PostgreSQL server started
# if it is installed but stopped. Safe to run again: pip runs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$python" -m venv .venv
fi

stamp=.venv/.vkpp-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing vkpp-learning with its dev extras" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch is pinned in pyproject.toml (2.13.0): pip takes the CPU build instead of a CUDA one.
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  echo "$wanted" > "$stamp"
fi

is_root() { [ "$(id -u)" = 0 ]; }

if ! command -v tesseract >/dev/null 2>&1; then
  if is_root && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing tesseract-ocr (OCR for scanned pages)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null
  else
    echo "setup: tesseract is not installed: scanned pages will not be read, and OCR tests will skip" >&2
  fi
fi

if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if is_root && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "setup: starting the local PostgreSQL server" >&2
    for version in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
  fi
fi
