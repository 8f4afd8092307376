#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian or Raspberry Pi OS machine:
# the Mosquitto broker and clients, hp2xx and systemd-analyze from the system's packages,
# and a Python virtual environment (.venv) with the project and its test tools.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_pkgs=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_pkgs+=(mosquitto-clients)
command -v hp2xx >/dev/null 2>&1 || need_pkgs+=(hp2xx)
command -v systemd-analyze >/dev/null 2>&1 || need_pkgs+=(systemd)
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || need_pkgs+=(python3)
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then need_pkgs+=(python3-venv); fi

if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "setup: installing ${need_pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
    # Debian starts the packaged broker; the project never relies on it, tests start their own.
fi

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[test]'
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
echo "setup: ready ($("$VENV/bin/python" --version), mosquitto $(/usr/sbin/mosquitto -h 2>/dev/null | head -1 | awk '{print $3}'))"
