#!/usr/bin/env bash
# Create .venv-tts once; reinstall only when the pinned requirements change.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-tts
stamp="$VENV/.installed-$(cat tests/speech/requirements-tts.txt tests/speech/requirements-tts-nodeps.txt | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0
test -x "$VENV/bin/python" || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -r tests/speech/requirements-tts.txt
"$VENV/bin/python" -m pip install -q --no-deps -r tests/speech/requirements-tts-nodeps.txt
rm -f "$VENV"/.installed-*
touch "$stamp"
