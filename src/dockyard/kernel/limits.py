"""Process resource limits the daemon sets for itself at start."""

from __future__ import annotations

import resource

# dockerd runs with LimitNOFILE=infinity (systemd), which the kernel caps at nr_open;
# Go then raises the soft limit to the hard one. The same ceiling here.
NOFILE_TARGET = 1 << 20


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return NOFILE_TARGET


def raise_nofile_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE so many client connections cannot run the daemon out of fds.

    As root the hard limit goes up to min(nr_open, 2**20); the soft limit follows it.
    Returns the (soft, hard) limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(_nr_open(), NOFILE_TARGET)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want, want
        except (ValueError, OSError):
            pass  # not privileged to raise the hard limit: use what there is
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft, hard
