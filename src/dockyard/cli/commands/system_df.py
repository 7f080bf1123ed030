"""`dockyard system df`: the space images, containers and volumes use (-v: each one)."""

from __future__ import annotations

from dockyard.cli.context import Context
from dockyard.cli.flags import Command, Opt
from dockyard.cli.formatting import Formatter, human_size

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="df",
    usage="[OPTIONS]",
    description="Show docker disk usage",
    options=[
        Opt("format", kind="string", help="Format output using a custom template"),
        Opt("verbose", "v", help="Show detailed information on space usage"),
    ],
    aliases=["system df"],
    max_args=0,
)  # fmt: skip

SUMMARY_TABLE = "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
SUMMARY_HEADERS = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}
IMAGE_TABLE = (
    "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}"
    "\t{{.UniqueSize}}\t{{.Containers}}"
)
CONTAINER_TABLE = (
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}"
    "\t{{.Status}}\t{{.Names}}"
)
VOLUME_TABLE = "{{.Name}}\t{{.Links}}\t{{.Size}}"
VOLUME_HEADERS = {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}
CACHE_TABLE = (
    "{{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}"
    "\t{{.UsageCount}}\t{{.Shared}}"
)
CACHE_HEADERS = {
    "ID": "CACHE ID",
    "CacheType": "CACHE TYPE",
    "Size": "SIZE",
    "CreatedSince": "CREATED",
    "LastUsedSince": "LAST USED",
    "UsageCount": "USAGE",
    "Shared": "SHARED",
}


def _share(part: int, total: int) -> str:
    """docker's "RECLAIMABLE": the size, and its share of the total when there is one."""
    if total > 0:
        return f"{human_size(part, 4)} ({part * 100 // total}%)"
    return human_size(part, 4)


def summary_rows(df: dict[str, Any]) -> list[dict[str, str]]:
    """docker's diskUsage*Context rows: Images, Containers, Local Volumes, Build Cache."""
    images = df.get("Images") or []
    layers = int(df.get("LayersSize") or 0)
    used = sum(
        int(i.get("Size") or 0) - int(i.get("SharedSize") or 0)
        for i in images
        if i.get("Containers") and i.get("Size", -1) != -1 and i.get("SharedSize", -1) != -1
    )
    containers = df.get("Containers") or []

    def active(c: dict[str, Any]) -> bool:
        return any(s in str(c.get("State", "")) for s in ("running", "paused", "restarting"))

    rw = sum(int(c.get("SizeRw") or 0) for c in containers)
    idle_rw = sum(int(c.get("SizeRw") or 0) for c in containers if not active(c))
    volumes = df.get("Volumes") or []
    usage = [v.get("UsageData") or {} for v in volumes]
    vsize = sum(int(u.get("Size") or 0) for u in usage if int(u.get("Size", -1)) != -1)
    vfree = sum(
        int(u.get("Size") or 0)
        for u in usage
        if int(u.get("RefCount") or 0) == 0 and int(u.get("Size", -1)) != -1
    )
    cache = df.get("BuildCache") or []
    csize = sum(int(b.get("Size") or 0) for b in cache)
    cused = sum(int(b.get("Size") or 0) for b in cache if b.get("InUse") and not b.get("Shared"))
    return [
        {
            "Type": "Images",
            "TotalCount": str(len(images)),
            "Active": str(sum(1 for i in images if (i.get("Containers") or 0) > 0)),
            "Size": human_size(layers, 4),
            "Reclaimable": _share(layers - used, layers),
        },
        {
            "Type": "Containers",
            "TotalCount": str(len(containers)),
            "Active": str(sum(1 for c in containers if active(c))),
            "Size": human_size(rw, 4),
            "Reclaimable": _share(idle_rw, rw),
        },
        {
            "Type": "Local Volumes",
            "TotalCount": str(len(volumes)),
            "Active": str(sum(1 for u in usage if int(u.get("RefCount") or 0) > 0)),
            "Size": human_size(vsize, 4),
            "Reclaimable": _share(vfree, vsize),
        },
        {
            "Type": "Build Cache",
            "TotalCount": str(len(cache)),
            "Active": str(sum(1 for b in cache if b.get("InUse"))),
            "Size": human_size(csize, 4),
            "Reclaimable": human_size(csize - cused, 4),
        },
    ]


def verbose(df: dict[str, Any]) -> str:
    from dockyard.cli.commands import images as images_cmd
    from dockyard.cli.commands import ps

    out = ["Images space usage:\n\n"]
    rows = [row for img in df.get("Images") or [] for row in images_cmd.image_rows(img, True)]
    out.append(Formatter("", IMAGE_TABLE, images_cmd.HEADERS).render(rows))
    out.append("\nContainers space usage:\n\n")
    # As docker: no virtual size here, only each container's own layer.
    rows = [ps.container_row({**c, "SizeRootFs": 0}, True) for c in df.get("Containers") or []]
    out.append(Formatter("", CONTAINER_TABLE, ps.HEADERS).render(rows))
    out.append("\nLocal Volumes space usage:\n\n")
    rows = []
    for v in df.get("Volumes") or []:
        u = v.get("UsageData") or {}
        size, links = int(u.get("Size", -1)), int(u.get("RefCount", -1))
        rows.append(
            {
                "Name": str(v.get("Name", "")),
                "Links": "N/A" if links == -1 else str(links),
                "Size": "N/A" if size == -1 else human_size(size, 4),
            }
        )
    out.append(Formatter("", VOLUME_TABLE, VOLUME_HEADERS).render(rows))
    cache = df.get("BuildCache") or []
    out.append(
        f"\nBuild cache usage: {human_size(sum(int(b.get('Size') or 0) for b in cache), 4)}\n\n"
    )
    out.append(Formatter("", CACHE_TABLE, CACHE_HEADERS).render([]))
    return "".join(out)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    df = ctx.client.get("/system/df") or {}
    if opts["verbose"]:
        if opts["format"]:
            from dockyard.cli.context import CLIError

            raise CLIError("the verbose and the format options conflict", 1)
        ctx.out(verbose(df))
        return 0
    ctx.out(
        Formatter(opts["format"] or "", SUMMARY_TABLE, SUMMARY_HEADERS).render(summary_rows(df))
    )
    return 0
