"""Which process sent a request to a loopback server: the one holding the client's end of its
connection (found in /proc while the connection is open, so asked from the request's handler)."""

from __future__ import annotations

import os
from pathlib import Path

_LOOPBACK = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def sender_pid(client_port: int, server_port: int) -> int | None:
    """The process whose socket is 127.0.0.1:client_port connected to 127.0.0.1:server_port,
    among those this user may look into; None if there is none (it closed meanwhile)."""
    inode = _socket_inode(client_port, server_port)
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == wanted for fd in descriptors):
                return pid
        except (FileNotFoundError, PermissionError):  # ended meanwhile, or another user's
            continue
    return None


def _socket_inode(client_port: int, server_port: int) -> str | None:
    local, remote = f"{_LOOPBACK}:{client_port:04X}", f"{_LOOPBACK}:{server_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return fields[9]
    return None
