#!/usr/bin/env bash
# Runs a pyftpdlib FTP server in the foreground on 127.0.0.1 for
# tests/ftp_test.cc, with faults a test can switch on and off. Runs until
# killed.
#
# Usage: ftp_py.sh --root DIR --port PORT --user NAME --password-file FILE
#                  --control DIR [--no-mlsd] [--local-times]
#
#   --no-mlsd      drop MLSD and MLST, so FEAT lists neither and clients
#                  have to use LIST
#   --local-times  print times in the zone of $TZ instead of UTC
#
# A file in the control folder turns on a fault for the next listings. It
# may contain a directory path relative to the root, and then only listings
# of that directory are affected. An empty file affects all of them.
#
#   cut:   the server process exits halfway through the listing.
#   stall: the server stops for 5 seconds halfway through the listing.
#   bad:   a line in no known LIST format is sent halfway through.
#   slash: an entry named "evil/name" is sent halfway through.
#   dos:   LIST replies use the DOS/IIS format.
#
# Needs python3-pyftpdlib; DIRINDEX_PYTHON names the interpreter that has
# it (default /usr/bin/python3).
set -euo pipefail
python=${DIRINDEX_PYTHON:-/usr/bin/python3}
exec "$python" - "$@" <<'PY'
import argparse
import logging
import os
import sys
import time

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.log import config_logging
from pyftpdlib.servers import FTPServer

STALL_SECONDS = 5

parser = argparse.ArgumentParser(prog="ftp_py.sh")
parser.add_argument("--root", required=True)
parser.add_argument("--port", required=True, type=int)
parser.add_argument("--user", required=True)
parser.add_argument("--password-file", required=True)
parser.add_argument("--control", required=True)
parser.add_argument("--no-mlsd", action="store_true")
parser.add_argument("--local-times", action="store_true")
args = parser.parse_args()
root = os.path.realpath(args.root)


def fault(name, basedir):
    """Returns True when control file `name` applies to `basedir`."""
    path = os.path.join(args.control, name)
    try:
        with open(path) as control:
            target = control.read().strip().strip("/")
    except FileNotFoundError:
        return False
    if not target:
        return True
    return os.path.realpath(basedir) == os.path.realpath(os.path.join(root, target))


class FaultFS(AbstractedFS):
    def with_faults(self, basedir, lines, total, mlsd):
        half = total // 2
        for index, line in enumerate(lines):
            if index == half:
                if fault("cut", basedir):
                    sys.stderr.write("ftp_py.sh: exiting halfway through a listing\n")
                    sys.stderr.flush()
                    os._exit(3)
                if fault("stall", basedir):
                    time.sleep(STALL_SECONDS)
                if fault("bad", basedir):
                    yield b"this line is in no LIST format\r\n"
                if fault("slash", basedir):
                    if mlsd:
                        yield b"type=file;size=1;modify=20260101000000; evil/name\r\n"
                    else:
                        yield b"-rw-r--r--   1 root     root            1 Jan 01  2026 evil/name\r\n"
            yield line

    def dos_lines(self, basedir, listing):
        timefunc = time.gmtime if self.cmd_channel.use_gmt_times else time.localtime
        for name in listing:
            st = os.lstat(os.path.join(basedir, name))
            when = time.strftime("%m-%d-%y  %I:%M%p", timefunc(st.st_mtime))
            if os.path.isdir(os.path.join(basedir, name)):
                line = "%s       <DIR>          %s\r\n" % (when, name)
            else:
                line = "%s %20d %s\r\n" % (when, st.st_size, name)
            yield line.encode("utf8", "surrogateescape")

    def format_list(self, basedir, listing, ignore_err=True):
        if fault("dos", basedir):
            lines = self.dos_lines(basedir, listing)
        else:
            lines = super().format_list(basedir, listing, ignore_err)
        return self.with_faults(basedir, lines, len(listing), mlsd=False)

    def format_mlsx(self, basedir, listing, perms, facts, ignore_err=True):
        lines = super().format_mlsx(basedir, listing, perms, facts, ignore_err)
        return self.with_faults(basedir, lines, len(listing), mlsd=True)


with open(args.password_file) as secret:
    password = secret.read().rstrip("\r\n")
authorizer = DummyAuthorizer()
authorizer.add_user(args.user, password, root, perm="elr")

handler = FTPHandler
handler.authorizer = authorizer
handler.abstracted_fs = FaultFS
handler.use_gmt_times = not args.local_times
handler.banner = "dirindex test server"
if args.no_mlsd:
    handler.proto_cmds = {
        name: spec for name, spec in FTPHandler.proto_cmds.items()
        if name not in ("MLSD", "MLST")
    }

config_logging(level=logging.WARNING)
server = FTPServer(("127.0.0.1", args.port), handler)
server.serve_forever(handle_exit=True)
PY
