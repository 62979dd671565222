#!/usr/bin/env bash
# The published agents the suite drives through the proxy, at the versions tested, installed
# under .agents/ (or $DEVSTRAL_AGENTS): Codex CLI, Claude Code and Qwen Code from npm; Mistral
# Vibe (Python >= 3.12) and the OpenAI Agents SDK from PyPI, each in a virtualenv of its own.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${DEVSTRAL_AGENTS:-.agents}
CODEX=0.171.0 CLAUDE=2.1.197 QWEN=0.24.4 VIBE=3.0.3 AGENTS_SDK=0.24.0
mkdir -p "$dir"
stamp="$dir/.installed-$CODEX-$CLAUDE-$QWEN-$VIBE-$AGENTS_SDK"
[ -f "$stamp" ] && exit 0

npm install --prefix "$dir/node" --no-audit --no-fund --loglevel=error \
  "@openai/codex@$CODEX" "@anthropic-ai/claude-code@$CLAUDE" "@qwen-code/qwen-code@$QWEN"

# Mistral Vibe: Python >= 3.12. Its wheel pins certifi to a release the index does not serve:
# the wheel goes in without dependencies, then its own requirements with that one pin loosened.
py312=""
for candidate in "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 python3.13 python3.12; do
  if "$candidate" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then py312=$candidate; break; fi
done
if [ -z "$py312" ]; then
  echo "Mistral Vibe needs Python >= 3.12 (python3.12 on PATH or pyenv): not found" >&2
  exit 1
fi
"$py312" -m venv "$dir/vibe"
wheels=$(mktemp -d)
"$dir/vibe/bin/pip" download -q --no-deps -d "$wheels" "mistral-vibe==$VIBE"
wheel=$(ls "$wheels"/mistral_vibe-*.whl)
python3 - "$wheel" > "$wheels/requirements.txt" <<'PY'
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        if line.startswith("Requires-Dist: ") and "extra ==" not in line:
            print(re.sub(r"^certifi==[^ ;]+", "certifi", line[len("Requires-Dist: "):]))
PY
"$dir/vibe/bin/pip" install -q -r "$wheels/requirements.txt"
"$dir/vibe/bin/pip" install -q --no-deps "$wheel"
rm -rf "$wheels"

python3 -m venv "$dir/sdk"
"$dir/sdk/bin/pip" install -q "openai-agents==$AGENTS_SDK"
touch "$stamp"
