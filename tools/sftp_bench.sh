#!/usr/bin/env bash
# Measures SFTP listing speed on loopback, for docs/sftp.md: OpenSSH
# `sftp -b` with `ls -l`, `rclone lsjson` and dirindex's sftp_list on one
# folder of FILES empty files (whole process, connect included), then
# relistings on a live session, directly and through delay_relay.
#
#   tools/sftp_bench.sh TOOLS_DIR [FILES] [DELAY_MS]
#
# TOOLS_DIR is the build folder holding sftp_list and delay_relay. FILES
# defaults to 20000 and DELAY_MS (added per direction by the relay) to 10.
# Needs root (for sshd) and hyperfine; rclone is measured when installed.
# Everything lives in a temporary folder that is removed at exit.
set -euo pipefail

tools=$(cd "${1:?usage: $0 TOOLS_DIR [FILES] [DELAY_MS]}" && pwd)
files=${2:-20000}
delay=${3:-10}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/dirindex-sftp-bench-XXXXXX)
relay_pid=

cleanup() {
  [[ -n $relay_pid ]] && kill "$relay_pid" 2>/dev/null
  "$repo/tests/servers/sshd.sh" stop "$work/sshd"
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mkdir -p "$work/tree"
seq -f "$work/tree/file%06g.xml" 0 $((files - 1)) | xargs touch
port=$(free_port)
"$repo/tests/servers/sshd.sh" start "$work/sshd" "$port"
key=$work/sshd/user_ed25519_key
known_hosts=$work/sshd/known_hosts
url=sftp://root@127.0.0.1:$port$work/tree
echo "ls -l $work/tree" > "$work/ls.batch"

echo "## First listing of $files files, whole process, loopback"
commands=(
  -n "sftp -b (ls -l)"
  "sftp -q -b $work/ls.batch -i $key -o UserKnownHostsFile=$known_hosts -o BatchMode=yes -P $port root@127.0.0.1"
)
if command -v rclone >/dev/null; then
  commands+=(
    -n "rclone lsjson"
    "rclone lsjson :sftp,host=127.0.0.1,port=$port,user=root,key_file=$key,known_hosts_file=$known_hosts:$work/tree"
  )
fi
commands+=(-n "sftp_list" "$tools/sftp_list $url --identity $key --known-hosts $known_hosts")
hyperfine --warmup 2 --runs 15 --style basic --output=null "${commands[@]}"

# Prints the median of the millisecond figures of "relist" lines on stdin.
median_relist() {
  grep '^relist' | sed 's/^relist [0-9]*: \([0-9.]*\) ms.*/\1/' | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] " ms (median of " NR ")" }'
}

echo
echo "## Relisting on a live session, loopback"
echo "pipelined: $("$tools/sftp_list" "$url" --identity "$key" --known-hosts "$known_hosts" --repeat 21 | median_relist)"
"$tools/sftp_list" "$url" --identity "$key" --known-hosts "$known_hosts" --repeat 11 --index "$work/index" |
  grep '^relist' | tail -1 | sed 's/^/through the index, last run: /'
echo "libssh2 one READDIR at a time: $("$tools/sftp_list" "$url" --identity "$key" --known-hosts "$known_hosts" --repeat 11 --libssh2 |
  sed 's/^libssh2 //' | median_relist)"

echo
echo "## Relisting through delay_relay, $delay ms added each way"
"$tools/delay_relay" 0 "$port" "$delay" > "$work/relay.out" &
relay_pid=$!
for _ in $(seq 50); do
  grep -q listening "$work/relay.out" 2>/dev/null && break
  sleep 0.05
done
relay_port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/relay.out")
sed "s/\[127.0.0.1\]:$port/[127.0.0.1]:$relay_port/" "$known_hosts" > "$work/known_hosts_relay"
relay_url=sftp://root@127.0.0.1:$relay_port$work/tree
relay_args=(--identity "$key" --known-hosts "$work/known_hosts_relay")
echo "pipelined: $("$tools/sftp_list" "$relay_url" "${relay_args[@]}" --repeat 6 | median_relist)"
echo "pipelined, one READDIR per directory at a time: $("$tools/sftp_list" "$relay_url" "${relay_args[@]}" --repeat 3 \
  --initial-readdirs 1 --max-readdirs 1 | median_relist)"
echo "libssh2 one READDIR at a time: $("$tools/sftp_list" "$relay_url" "${relay_args[@]}" --repeat 3 --libssh2 |
  sed 's/^libssh2 //' | median_relist)"
