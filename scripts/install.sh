#!/usr/bin/env bash
# Installs station-agent as a systemd service on Raspberry Pi OS (bookworm) or Debian 12.
#
#   sudo scripts/install.sh [--station-id ID] [--broker HOST] [--profile NAME]
#   sudo scripts/install.sh --uninstall [--purge]
#
# What it does (each step only if not done yet, so running it again is safe):
#   - system user `station-agent` in groups dialout and gpio (gpio is created if missing:
#     the unit's SupplementaryGroups would fail the start without it);
#   - a virtual environment /opt/station-agent/venv with the package (PEP 668: never the
#     system pip), from this source tree, or offline from --wheel-dir;
#   - /etc/station-agent/agent.toml from a template (never overwritten), keys/ for signing;
#   - /etc/systemd/system/station-agent.service, enabled (started with --start).
# --uninstall removes the service and /opt/station-agent but keeps /etc/station-agent and
# /var/lib/station-agent (the job store) unless --purge is given.
#
# Options for staging and tests (see docs/deployment-pi.md, "Installer"):
#   --root DIR      install under DIR instead of / (no users, no systemctl calls; the unit is
#                   enabled by its multi-user.target.wants symlink, as `systemctl enable` does)
#   --no-venv       skip the virtual environment (nothing is pip-installed)
#   --wheel-dir DIR pip install --no-index from DIR (offline: DIR must hold every dependency)
#   --python PATH   interpreter for the venv (default python3; 3.11 or newer)
#   --with-signing  also install `cryptography` (needed when [signing] enabled = true)
#   --dry-run       print what would change, change nothing
set -euo pipefail

APP=station-agent
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=""
DRY_RUN=0
NO_VENV=0
WHEEL_DIR=""
PYTHON=python3
UNINSTALL=0
PURGE=0
START=0
WITH_SIGNING=0
STATION_ID=""
BROKER="mqtt.factory.lan"
PROFILE="grbl-1.1"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="${2:?--root needs a directory}"; shift ;;
        --dry-run) DRY_RUN=1 ;;
        --no-venv) NO_VENV=1 ;;
        --wheel-dir) WHEEL_DIR="${2:?--wheel-dir needs a directory}"; shift ;;
        --python) PYTHON="${2:?--python needs a path}"; shift ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        --start) START=1 ;;
        --with-signing) WITH_SIGNING=1 ;;
        --station-id) STATION_ID="${2:?--station-id needs a value}"; shift ;;
        --broker) BROKER="${2:?--broker needs a host}"; shift ;;
        --profile) PROFILE="${2:?--profile needs a name}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ -n "$ROOT" ]; then
    ROOT="$(cd "$ROOT" 2>/dev/null && pwd)" || { echo "install.sh: --root $ROOT: no such directory" >&2; exit 2; }
    [ "$ROOT" = "/" ] && ROOT=""
fi
REAL=1   # act on the running system (users, systemctl)
[ -n "$ROOT" ] && REAL=0

if [ "$REAL" = 1 ] && [ "$DRY_RUN" = 0 ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo), or use --root DIR / --dry-run" >&2
    exit 2
fi

OPT="$ROOT/opt/$APP"
VENV="$OPT/venv"
ETC="$ROOT/etc/$APP"
UNIT_DIR="$ROOT/etc/systemd/system"
UNIT="$UNIT_DIR/$APP.service"
WANTS="$UNIT_DIR/multi-user.target.wants/$APP.service"
STATE="$ROOT/var/lib/$APP"

changed=0
say() { echo "install.sh: $*"; }
# Runs a command that changes something, or only says it in --dry-run.
act() {
    changed=1
    if [ "$DRY_RUN" = 1 ]; then
        say "would run: $*"
    else
        say "$*"
        "$@"
    fi
}

# -- uninstall -----------------------------------------------------------------------------

if [ "$UNINSTALL" = 1 ]; then
    if [ "$REAL" = 1 ] && command -v systemctl >/dev/null 2>&1 && [ -e "$UNIT" ]; then
        act systemctl disable --now "$APP.service"
    fi
    [ -L "$WANTS" ] && act rm -f "$WANTS"
    [ -e "$UNIT" ] && act rm -f "$UNIT"
    if [ "$REAL" = 1 ] && command -v systemctl >/dev/null 2>&1 && [ "$changed" = 1 ]; then
        act systemctl daemon-reload
    fi
    [ -e "$OPT" ] && act rm -rf "$OPT"
    if [ "$PURGE" = 1 ]; then
        [ -e "$ETC" ] && act rm -rf "$ETC"
        [ -e "$STATE" ] && act rm -rf "$STATE"
        if [ "$REAL" = 1 ] && getent passwd "$APP" >/dev/null; then
            act userdel "$APP"
        fi
    else
        [ -e "$ETC" ] && say "kept $ETC (configuration; --purge removes it)"
        [ -e "$STATE" ] && say "kept $STATE (job store; --purge removes it)"
    fi
    [ "$changed" = 0 ] && say "nothing to remove"
    exit 0
fi

# -- install -------------------------------------------------------------------------------

# 1. The system user, in the groups that own the serial adapters and the GPIO chips.
if [ "$REAL" = 1 ]; then
    if ! getent group gpio >/dev/null; then
        act groupadd --system gpio
    fi
    if ! getent passwd "$APP" >/dev/null; then
        act useradd --system --no-create-home --home-dir "/var/lib/$APP" \
            --shell /usr/sbin/nologin --user-group --groups dialout,gpio "$APP"
    else
        for g in dialout gpio; do
            if ! id -nG "$APP" | tr ' ' '\n' | grep -qx "$g"; then
                act usermod -aG "$g" "$APP"
            fi
        done
    fi
else
    say "skipping the system user (--root): create it in the image with the same commands"
fi

# 2. The virtual environment with the package.
if [ "$NO_VENV" = 0 ]; then
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "install.sh: $PYTHON is missing or older than 3.11" >&2
        exit 1
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        act mkdir -p "$OPT"
        act "$PYTHON" -m venv "$VENV"
    fi
    pkgs=("$APP")
    [ "$WITH_SIGNING" = 1 ] && pkgs+=(cryptography)
    if [ -n "$WHEEL_DIR" ]; then
        pip_args=(--no-index --find-links "$WHEEL_DIR" "${pkgs[@]}")
    else
        pip_args=("$SRC")
        [ "$WITH_SIGNING" = 1 ] && pip_args+=(cryptography)
    fi
    # pip itself decides whether anything changed; the same version stays as it is.
    if [ "$DRY_RUN" = 1 ]; then
        say "would run: $VENV/bin/python -m pip install --quiet ${pip_args[*]}"
    else
        say "pip install ${pip_args[*]}"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_args[@]}"
    fi
else
    say "skipping the virtual environment (--no-venv)"
fi

# Copies a file if the target differs; sets its mode.
install_file() {  # SRC DEST MODE
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        return 0
    fi
    act install -D -m "$3" "$1" "$2"
}

# 3. Documentation and examples the unit and the docs point to.
install_file "$SRC/docs/deployment-pi.md" "$OPT/docs/deployment-pi.md" 0644
install_file "$SRC/udev/99-station-agent-serial.rules.example" \
    "$OPT/share/udev/99-station-agent-serial.rules.example" 0644
install_file "$SRC/systemd/station-agent.service.d/broker-allowlist.conf.example" \
    "$OPT/share/systemd/broker-allowlist.conf.example" 0644

# 4. Configuration: written once from the template, never overwritten.
[ -n "$STATION_ID" ] || STATION_ID="$(hostname -s 2>/dev/null || echo station-01)"
if [ ! -d "$ETC" ]; then
    act install -d -m 0750 "$ETC"
fi
if [ ! -d "$ETC/keys" ]; then
    act install -d -m 0755 "$ETC/keys"
fi
if [ ! -e "$ETC/agent.toml" ]; then
    tmp="$(mktemp)"
    trap 'rm -f "$tmp"' EXIT
    cat >"$tmp" <<EOF
# station-agent configuration; every key is described in
# /opt/station-agent/docs/deployment-pi.md. Check it with:
#   sudo -u $APP /opt/station-agent/venv/bin/station-agent doctor --config /etc/$APP/agent.toml
station_id = "$STATION_ID"
profile = "$PROFILE"

[mqtt]
host = "$BROKER"
port = 8883
topic_prefix = "mf"

[mqtt.tls]
ca_file = "/etc/$APP/factory-ca.crt"
cert_file = "/etc/$APP/station.crt"
key_file = "/etc/$APP/station.key"

[serial]
# A stable udev name: see /opt/station-agent/share/udev/.
port = "/dev/station-machine"

[storage]
dir = "/var/lib/$APP"
EOF
    act install -m 0640 "$tmp" "$ETC/agent.toml"
else
    say "kept $ETC/agent.toml"
fi
if [ "$REAL" = 1 ] && getent group "$APP" >/dev/null; then
    # The service reads its config through the group; root keeps ownership.
    if [ "$(stat -c %G "$ETC")" != "$APP" ]; then
        act chgrp "$APP" "$ETC" "$ETC/agent.toml"
    fi
fi

# 5. The unit, enabled.
unit_changed=0
if ! { [ -f "$UNIT" ] && cmp -s "$SRC/systemd/$APP.service" "$UNIT"; }; then
    act install -D -m 0644 "$SRC/systemd/$APP.service" "$UNIT"
    unit_changed=1
fi
if [ "$REAL" = 1 ]; then
    [ "$unit_changed" = 1 ] && act systemctl daemon-reload
    if ! systemctl is-enabled --quiet "$APP.service" 2>/dev/null; then
        act systemctl enable "$APP.service"
    fi
    if [ "$START" = 1 ]; then
        act systemctl restart "$APP.service"
    fi
elif [ ! -L "$WANTS" ]; then
    # What `systemctl enable` does for WantedBy=multi-user.target.
    act mkdir -p "$(dirname "$WANTS")"
    act ln -s "../$APP.service" "$WANTS"
fi

if [ "$changed" = 0 ]; then
    say "already installed, nothing changed"
elif [ "$DRY_RUN" = 1 ]; then
    say "dry run: nothing was changed"
else
    say "installed; edit $ETC/agent.toml, run the doctor, then: systemctl start $APP"
fi
