#!/usr/bin/env bash
# Starts and stops a throwaway OpenSSH server on 127.0.0.1 for the SFTP tests
# and benchmarks. Keys, configuration, log and pid file live in DIR. Outside
# DIR only /run/sshd (the privilege separation folder sshd requires) is
# created, and `password-user` creates or updates the local account
# dirindex-test.
#
#   sshd.sh start DIR PORT [SFTP_SUBSYSTEM_COMMAND]
#   sshd.sh stop DIR
#   sshd.sh password-user PASSWORD
#
# start writes, unless they exist already:
#   DIR/host_ed25519_key    the server's host key
#   DIR/user_ed25519_key    a client key without passphrase, authorized for
#                           every user through DIR/authorized_keys
#   DIR/known_hosts         the host key recorded for [127.0.0.1]:PORT
# and always DIR/sshd_config, then runs sshd in the background (log in
# DIR/sshd.log, pid in DIR/sshd.pid) and returns once it listens. Keys are
# kept across restarts, so a restarted server presents the same host key.
# The SFTP subsystem is internal-sftp unless a command is given; a command
# runs through the user's login shell, so use it with root. Lines in the
# environment variable SSHD_EXTRA_CONFIG are appended to the configuration.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR PORT [SFTP_SUBSYSTEM_COMMAND] | stop DIR | password-user PASSWORD" >&2
  exit 2
}

# Prints the ids of every descendant of process $1, deepest first.
descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    descendants "$child"
    echo "$child"
  done
}

start() {
  local dir=$1 port=$2 subsystem=${3:-internal-sftp}
  mkdir -p "$dir" /run/sshd
  chmod 700 "$dir"
  dir=$(cd "$dir" && pwd)

  [[ -f $dir/host_ed25519_key ]] ||
    ssh-keygen -q -t ed25519 -N '' -C dirindex-test-host -f "$dir/host_ed25519_key"
  [[ -f $dir/user_ed25519_key ]] ||
    ssh-keygen -q -t ed25519 -N '' -C dirindex-test-user -f "$dir/user_ed25519_key"
  cp "$dir/user_ed25519_key.pub" "$dir/authorized_keys"
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_ed25519_key.pub")" > "$dir/known_hosts"

  cat > "$dir/sshd_config" <<CONFIG
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
MaxStartups 100
MaxSessions 100
LogLevel INFO
Subsystem sftp $subsystem
CONFIG
  if [[ -n ${SSHD_EXTRA_CONFIG:-} ]]; then
    printf '%s\n' "$SSHD_EXTRA_CONFIG" >> "$dir/sshd_config"
  fi

  rm -f "$dir/sshd.pid"
  # The wait below looks for a line in the log, so a restart starts a new log.
  : > "$dir/sshd.log"
  /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
  echo $! > "$dir/sshd.pid"

  # sshd logs this line once its socket is bound.
  for _ in $(seq 100); do
    if grep -q "Server listening on 127.0.0.1 port $port" "$dir/sshd.log" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
      echo "sshd exited at start; its log follows" >&2
      cat "$dir/sshd.log" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "sshd did not listen on 127.0.0.1:$port within 5 s; see $dir/sshd.log" >&2
  exit 1
}

# Kills the server and every session process it forked, by process id.
stop() {
  local dir=$1 pid
  [[ -f $dir/sshd.pid ]] || return 0
  pid=$(cat "$dir/sshd.pid")
  local victims
  victims="$(descendants "$pid") $pid"
  kill -KILL $victims 2>/dev/null || true
  # Wait until the listener is gone or a zombie: its socket is closed then.
  local state
  for _ in $(seq 100); do
    state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    [[ -z $state || $state == Z* ]] && break
    sleep 0.02
  done
  rm -f "$dir/sshd.pid"
  # The wait below looks for a line in the log, so a restart starts a new log.
  : > "$dir/sshd.log"
}

password_user() {
  local password=$1
  id dirindex-test >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin dirindex-test
  echo "dirindex-test:$password" | chpasswd
}

case ${1:-} in
  start) [[ $# -ge 3 ]] || usage; start "$2" "$3" "${4:-}" ;;
  stop) [[ $# -eq 2 ]] || usage; stop "$2" ;;
  password-user) [[ $# -eq 2 ]] || usage; password_user "$2" ;;
  *) usage ;;
esac
