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

"$(dirname "$0")/apt-install.sh" "${packages[@]}"

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
