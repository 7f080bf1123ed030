"""Names a bundle's config.json carries: the OCI version, Dockyard's annotations,
the default PATH. Their own module so that reading a bundle (the container
init, `dockyard-runtime run`) does not import spec.py's RunSpec machinery."""

from __future__ import annotations

OCI_VERSION = "1.0.2"

ANNOTATION_LOWERDIR = "org.dockyard.rootfs.lowerdir"
ANNOTATION_UPPERDIR = "org.dockyard.rootfs.upperdir"
ANNOTATION_WORKDIR = "org.dockyard.rootfs.workdir"
ANNOTATION_OPEN_STDIN = "org.dockyard.open-stdin"
# --ipc container:X: the mount namespace whose /dev/shm the container shares.
ANNOTATION_SHM_FROM = "org.dockyard.ipc.shm-from"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
