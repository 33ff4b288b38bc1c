#!/usr/bin/env bash
# Installs the Debian 12 packages that build, test and benchmark dirindex.
# Run as root (or through sudo).
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config
  # libraries
  liburing-dev liblmdb-dev libxxhash-dev libboost-dev libboost-system-dev
  rapidjson-dev libtomlplusplus-dev libcli11-dev libspdlog-dev
  libssh2-1-dev libcurl4-openssl-dev
  # tests and tools
  libgtest-dev libgmock-dev libbenchmark-dev lmdb-utils curl
  clang clang-tidy libclang-rt-14-dev
  # real servers the remote-source tests start on 127.0.0.1
  openssh-server openssh-client pure-ftpd python3 python3-pyftpdlib openssl tzdata
  # benchmark anchors and tools
  bfs fd-find watchman hyperfine rclone fuse3 libfuse3-dev linux-perf
)

"$(dirname "$0")/apt-install.sh" "${packages[@]}"
