#!/usr/bin/env bash
# Set up (scripts/setup.sh), ingest the sample reviews in corpus_samples/ into the default database
# (the VKPP_DATABASE_URL setting: vkpp_data/vkpp.sqlite), tag, embed and fit topics, list the
# reviews, and start the app.
# Extra arguments go to `vkpp app`, e.g. `bash scripts/demo.sh --headless --port 8600`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
status=0
.venv/bin/vkpp ingest corpus_samples/ || status=$?
# corpus_samples/bad/ holds deliberately broken files (empty, encrypted, truncated...), so some
# errors are expected: exit 3 means "some files failed, the rest were ingested".
if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
  exit "$status"
fi
# Tag every passage (rules, embeddings and the supervised ensemble trained on the sample gold labels),
# embed them for semantic search, and fit a topic model, so every page of the app has real figures.
# Each step does nothing when its inputs are unchanged, so running the demo again is quick.
.venv/bin/vkpp tag
.venv/bin/vkpp embed
if ! .venv/bin/vkpp topics runs 2>/dev/null | grep -qE '^ *[0-9]+ '; then
  .venv/bin/vkpp topics fit --seed 42
fi
.venv/bin/vkpp reviews
exec .venv/bin/vkpp app "$@"
