#!/usr/bin/env bash
# Installs, from Debian 12's packages, the tools that docs/benchmarks.md
# measures dirindex against (the anchors), and prints their versions.
# Run as root (or through sudo). Running it again changes nothing once the
# packages are installed. scripts/install-deps.sh installs these packages
# too, together with everything that builds and tests dirindex.
set -euo pipefail

packages=(
  findutils     # find
  coreutils     # du
  bfs
  fd-find       # fdfind
  watchman
  rclone
  openssh-client
  curl
  hyperfine
  fuse3         # fusermount3, for tools/fuse_delay
  libfuse3-dev  # builds tools/fuse_delay
  pkg-config    # finds libfuse3 for CMake
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-anchors.sh: run as root (apt-get install needs it), for example with sudo" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Keep package scripts from starting services: the benchmarks start their
# own private watchman and servers on 127.0.0.1.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap 'if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi' EXIT

apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"

# The version lines that docs/benchmarks.md records with each run. None of
# these commands contacts a server.
find --version | head -n 1
du --version | head -n 1
bfs --version | head -n 1
fdfind --version
echo "watchman $(watchman --version)"
rclone version | head -n 1
ssh -V
curl --version | head -n 1
hyperfine --version
fusermount3 --version
pkg-config --modversion fuse3 | sed 's/^/libfuse3 /'
