#!/usr/bin/env bash
# System packages for the end-to-end cluster test (tests/platform/test_cluster.py): an SSH server and
# client, rsync (Ray's file mounts) and netcat (the ssh relay to the test's sshd), plus util-linux's
# unshare; and Chromium for the browser test of the MLflow dashboard (tests/platform/test_dashboard_browser.py,
# driven by the `playwright` package from the dev extra). Idempotent and quiet: does nothing when they
# are all present. Needs root (or passwordless sudo) and apt; elsewhere it says what is missing and
# leaves it to the tests, which skip locally and fail under CI=true.
set -euo pipefail

missing=()
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || missing+=(openssh-server)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
command -v nc >/dev/null 2>&1 || missing+=(netcat-openbsd)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -gt 0 ]; then
  # shellcheck disable=SC2207
  missing=($(printf '%s\n' "${missing[@]}" | sort -u))
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "ci_system_deps: not root and no passwordless sudo; missing: ${missing[*]} (the cluster and dashboard tests need them)" >&2
    exit 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ci_system_deps: no apt-get here; install ${missing[*]} with the system's package manager" >&2
    exit 0
  fi
  log=$(mktemp)
  if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
         "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
       >"$log" 2>&1; then
    echo "ci_system_deps: installing ${missing[*]} failed:" >&2
    tail -n 20 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
fi

# sshd refuses to start without its privilege-separation folder (normally made by systemd).
if [ "$(id -u)" -eq 0 ]; then
  mkdir -p /run/sshd && chmod 0755 /run/sshd
fi
