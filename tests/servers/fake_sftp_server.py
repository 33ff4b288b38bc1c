#!/usr/bin/env python3
"""A scripted SFTP version 3 server for the SFTP tests, run by sshd as its
sftp subsystem. It serves directory listings from a JSON file, and can send
what OpenSSH's sftp-server never sends: names containing '/' or NUL,
attributes without size, mtime or file-type bits, and a whole directory in
one NAME reply however large it is.

    fake_sftp_server.py SPEC_JSON

The spec maps each directory path to its entries:

    {"entries_per_reply": 0,
     "dirs": {"/data": [{"name_b64": "...", "size": 5, "permissions": 33188,
                         "mtime": 1700000000}, ...],
              "/big": {"generate": 60000, "name_prefix": "file-", "size": 1,
                       "permissions": 33188, "mtime": 1700000000}}}

An attribute left out of an entry is not sent, and its flag stays clear.
entries_per_reply 0 sends every entry of a directory in one NAME reply.
With "max_open_handles": N the server fails an OPENDIR with SSH_FX_FAILURE
while N handles are open, and announces limits@openssh.com reporting N
unless "announce_limits" is false.
Requests other than INIT, OPENDIR, READDIR, CLOSE and that extension get
SSH_FX_OP_UNSUPPORTED.
"""
import base64
import json
import struct
import sys

SSH_FXP_INIT, SSH_FXP_VERSION, SSH_FXP_CLOSE = 1, 2, 4
SSH_FXP_OPENDIR, SSH_FXP_READDIR = 11, 12
SSH_FXP_STATUS, SSH_FXP_HANDLE, SSH_FXP_NAME = 101, 102, 104
SSH_FXP_EXTENDED, SSH_FXP_EXTENDED_REPLY = 200, 201
SSH_FX_OK, SSH_FX_EOF, SSH_FX_NO_SUCH_FILE, SSH_FX_FAILURE = 0, 1, 2, 4
SSH_FX_OP_UNSUPPORTED = 8
LIMITS = b"limits@openssh.com"


def sftp_string(data):
    return struct.pack(">I", len(data)) + data


def read_string(data, offset):
    (length,) = struct.unpack_from(">I", data, offset)
    start = offset + 4
    return data[start:start + length], start + length


def attributes(entry):
    flags, fields = 0, b""
    if "size" in entry:
        flags |= 0x1
        fields += struct.pack(">Q", entry["size"])
    if "permissions" in entry:
        flags |= 0x4
        fields += struct.pack(">I", entry["permissions"])
    if "mtime" in entry:
        flags |= 0x8
        fields += struct.pack(">II", entry["mtime"], entry["mtime"])
    return struct.pack(">I", flags) + fields


def encode_entries(spec):
    """Returns one directory's entries as encoded NAME records."""
    if isinstance(spec, dict):
        prefix = spec.get("name_prefix", "file-").encode()
        template = {k: v for k, v in spec.items() if k in ("size", "permissions", "mtime")}
        attrs = attributes(template)
        return [sftp_string(prefix + b"%08d" % i) + sftp_string(b"") + attrs
                for i in range(spec["generate"])]
    return [sftp_string(base64.b64decode(entry["name_b64"])) + sftp_string(b"") +
            attributes(entry) for entry in spec]


def main():
    with open(sys.argv[1], encoding="utf-8") as spec_file:
        spec = json.load(spec_file)
    per_reply = spec.get("entries_per_reply", 0)
    max_handles = spec.get("max_open_handles", 0)
    announce_limits = max_handles and spec.get("announce_limits", True)
    dirs = {path.encode(): encode_entries(entries) for path, entries in spec["dirs"].items()}
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    handles = {}

    def send(packet_type, payload):
        sink.write(struct.pack(">IB", len(payload) + 1, packet_type) + payload)
        sink.flush()

    def status(request_id, code, message):
        send(SSH_FXP_STATUS, struct.pack(">II", request_id, code) +
             sftp_string(message) + sftp_string(b""))

    while True:
        header = source.read(5)
        if len(header) < 5:
            return
        length, packet_type = struct.unpack(">IB", header)
        body = source.read(length - 1)
        if packet_type == SSH_FXP_INIT:
            extensions = sftp_string(LIMITS) + sftp_string(b"1") if announce_limits else b""
            send(SSH_FXP_VERSION, struct.pack(">I", 3) + extensions)
            continue
        (request_id,) = struct.unpack_from(">I", body, 0)
        if packet_type == SSH_FXP_OPENDIR:
            path, _ = read_string(body, 4)
            if path not in dirs:
                status(request_id, SSH_FX_NO_SUCH_FILE, b"No such file")
                continue
            if max_handles and len(handles) >= max_handles:
                status(request_id, SSH_FX_FAILURE, b"too many open handles")
                continue
            handle = b"%d" % request_id
            handles[handle] = [path, 0]
            send(SSH_FXP_HANDLE, struct.pack(">I", request_id) + sftp_string(handle))
        elif packet_type == SSH_FXP_READDIR:
            handle, _ = read_string(body, 4)
            path, position = handles[handle]
            records = dirs[path]
            if position >= len(records):
                status(request_id, SSH_FX_EOF, b"End of file")
                continue
            end = len(records) if per_reply == 0 else position + per_reply
            chunk = records[position:end]
            handles[handle][1] = position + len(chunk)
            send(SSH_FXP_NAME, struct.pack(">II", request_id, len(chunk)) + b"".join(chunk))
        elif packet_type == SSH_FXP_CLOSE:
            handle, _ = read_string(body, 4)
            handles.pop(handle, None)
            status(request_id, SSH_FX_OK, b"")
        elif (packet_type == SSH_FXP_EXTENDED and announce_limits and
              read_string(body, 4)[0] == LIMITS):
            send(SSH_FXP_EXTENDED_REPLY, struct.pack(">IQQQQ", request_id, 256 * 1024, 0, 0,
                                                     max_handles))
        else:
            status(request_id, SSH_FX_OP_UNSUPPORTED, b"not supported by the test server")


if __name__ == "__main__":
    main()
