"""Run a command with a /dev/shm of its own; list what it left there.

Usage (as root, in a private mount namespace)::

    unshare --mount --propagation private python tests/_private_shm.py LIST CMD...

Mounts a fresh tmpfs on /dev/shm, runs CMD, waits (bounded) until no other
process of this session is alive — the resource tracker unlinks what the run
registered only after the run has ended — then writes the names left in
/dev/shm to LIST, one per line, and exits with CMD's exit code. Exit 97: the
tmpfs could not be mounted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

WAIT = 10.0


def others_alive() -> bool:
    sid, me = os.getsid(0), os.getpid()
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.pid != me and os.getsid(proc.pid) == sid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return False


def main() -> int:
    listing, cmd = sys.argv[1], sys.argv[2:]
    if subprocess.call(["mount", "-t", "tmpfs", "kata-shm", "/dev/shm"]) != 0:
        return 97
    code = subprocess.call(cmd)
    deadline = time.monotonic() + WAIT
    while others_alive() and time.monotonic() < deadline:
        time.sleep(0.02)  # sleep-ok: bounded poll for the run's last processes to end
    with open(listing, "w") as out:
        out.writelines(f"{name}\n" for name in sorted(os.listdir("/dev/shm")))
    return code


if __name__ == "__main__":
    sys.exit(main())
