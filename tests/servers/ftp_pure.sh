#!/usr/bin/env bash
# Runs pure-ftpd in the foreground on 127.0.0.1 for tests/ftp_test.cc, with
# one virtual user chrooted into the served folder. Runs until killed.
#
# Usage: ftp_pure.sh --root DIR --state DIR --port PORT --user NAME
#                    --password-file FILE [--passive FROM:TO] [--tls PEM]
#                    [--max-files N]
#
#   --root           folder served as the user's home; it must be readable
#                    by the user "nobody", whose uid the account gets
#   --state          folder for the password database (created)
#   --passive        passive data ports; without it the kernel picks them
#   --tls PEM        require explicit TLS on control and data connections;
#                    PEM contains the private key, then the certificate
#   --max-files      listing limit; pure-ftpd truncates longer listings and
#                    reports it only in its final reply (default 1000000)
#
# Needs root (pure-ftpd chroots), pure-ftpd, pure-pw and openssl. The
# password gets a SHA-512 crypt hash: Debian's pure-ftpd checks its default
# hash so slowly that each login takes seconds.
set -euo pipefail

root= state= port= user= password_file= passive= tls= max_files=1000000
while (($#)); do
  case $1 in
    --root) root=$2 ;;
    --state) state=$2 ;;
    --port) port=$2 ;;
    --user) user=$2 ;;
    --password-file) password_file=$2 ;;
    --passive) passive=$2 ;;
    --tls) tls=$2 ;;
    --max-files) max_files=$2 ;;
    *) echo "ftp_pure.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift 2
done
for name in root state port user password_file; do
  if [[ -z ${!name} ]]; then
    echo "ftp_pure.sh: --${name//_/-} is required" >&2
    exit 2
  fi
done

mkdir -p "$state"
hash=$(openssl passwd -6 -stdin < "$password_file")
uid=$(id -u nobody)
gid=$(id -g nobody)
# user:hash:uid:gid:gecos:home/./ then the unused quota and limit fields;
# "/./" marks where pure-ftpd chroots.
printf '%s:%s:%s:%s::%s/./::::::::::::\n' "$user" "$hash" "$uid" "$gid" "$root" \
  > "$state/pureftpd.passwd"
pure-pw mkdb "$state/pureftpd.pdb" -f "$state/pureftpd.passwd" > /dev/null

# -E no anonymous logins, -D list dot files, -H no reverse DNS, -A chroot
# everyone, -L listing limits (files:depth), -f none no syslog.
args=(-S "127.0.0.1,$port" -l "puredb:$state/pureftpd.pdb" -E -D -H -A
      -L "$max_files:64" -f none)
if [[ -n $passive ]]; then
  args+=(-p "$passive")
fi
if [[ -n $tls ]]; then
  # -Y 3: TLS required on the control connection and on data connections.
  args+=(-Y 3 -2 "$tls")
fi
# LIST times are printed in the server's zone; the tests expect UTC.
export TZ=UTC
exec /usr/sbin/pure-ftpd "${args[@]}"
