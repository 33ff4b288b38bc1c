#!/usr/bin/env bash
# Installs Debian packages without letting their scripts start services:
# the tests and benchmarks start their own servers (sshd, FTP, watchman) on
# 127.0.0.1 and private sockets.
#   scripts/apt-install.sh PACKAGE...
# Run as root (or through sudo).
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "$(basename "$0"): run as root (apt-get install needs it), for example with sudo" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap 'if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi' EXIT

apt-get update -q
apt-get install -y -q --no-install-recommends "$@"
