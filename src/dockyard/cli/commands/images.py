"""`dockyard images`: list images (REPOSITORY TAG IMAGE ID CREATED SIZE)."""

from __future__ import annotations

from dockyard.cli.context import Context, parse_filters
from dockyard.cli.flags import TABLE_FORMAT_HELP, Command, Opt
from dockyard.cli.formatting import Formatter, go_time_string, human_size, short_id, time_ago

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="images",
    usage="[OPTIONS] [REPOSITORY[:TAG]]",
    description="List images",
    options=[
        Opt("all", "a", help="Show all images (default hides intermediate images)"),
        Opt("digests", help="Show digests"),
        Opt("filter", "f", kind="list", metavar="filter", help="Filter output based on conditions provided"),
        Opt("format", kind="string", help=TABLE_FORMAT_HELP),
        Opt("no-trunc", help="Don't truncate output"),
        Opt("quiet", "q", help="Only show image IDs"),
    ],
    aliases=["image ls", "image list", "images"],
    max_args=1,
)  # fmt: skip

DEFAULT_TABLE = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
DIGEST_TABLE = "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "VirtualSize": "VIRTUAL SIZE",
}


def split_ref(ref: str) -> tuple[str, str]:
    """'repo:tag' -> ('repo', 'tag'); a ':' before the last '/' is a registry port."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, ""
    return name, tag


def image_rows(img: dict[str, Any], trunc: bool, now: float | None = None) -> list[dict[str, Any]]:
    """One row per repo:tag (docker's imageFormat), '<none>' for dangling images."""
    iid = str(img.get("Id", ""))
    created = img.get("Created")
    base = {
        "ID": short_id(iid) if trunc else iid,
        "CreatedSince": time_ago(created, now),
        "CreatedAt": go_time_string(float(created)) if isinstance(created, int | float) else "",
        "Size": human_size(float(img.get("Size") or 0)),
        "VirtualSize": human_size(float(img.get("VirtualSize") or img.get("Size") or 0)),
        "SharedSize": _na(img.get("SharedSize")),
        "UniqueSize": _na(
            (img.get("Size") or 0) - img["SharedSize"] if (img.get("SharedSize") or -1) >= 0 else -1
        ),
        "Containers": _na(img.get("Containers"), raw=True),
    }
    digests: dict[str, str] = {}
    for d in img.get("RepoDigests") or []:
        repo, _, digest = d.partition("@")
        if repo != "<none>":
            digests.setdefault(repo, digest)
    rows: list[dict[str, Any]] = []
    seen_repos: set[str] = set()
    for ref in img.get("RepoTags") or []:
        if ref == "<none>:<none>":
            continue
        repo, tag = split_ref(ref)
        seen_repos.add(repo)
        rows.append(
            {
                **base,
                "Repository": repo,
                "Tag": tag or "<none>",
                "Digest": digests.get(repo, "<none>"),
            }
        )
    for repo, digest in digests.items():
        if repo not in seen_repos:
            rows.append({**base, "Repository": repo, "Tag": "<none>", "Digest": digest})
    if not rows:
        rows.append({**base, "Repository": "<none>", "Tag": "<none>", "Digest": "<none>"})
    return rows


def _na(value: Any, raw: bool = False) -> str:
    if value is None or (isinstance(value, int) and value < 0):
        return "N/A"
    return str(value) if raw else human_size(float(value))


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.transport import encode_filters

    filters = parse_filters(opts["filter"])
    if args:
        filters.setdefault("reference", []).append(args[0])
    query: dict[str, Any] = {"all": True if opts["all"] else None}
    if filters:
        query["filters"] = encode_filters(filters)
    images = ctx.client.get("/images/json", query) or []
    trunc = not opts["no_trunc"]
    if opts["quiet"]:
        seen: set[str] = set()
        out = []
        for img in images:
            iid = short_id(img.get("Id", "")) if trunc else str(img.get("Id", ""))
            if iid not in seen:
                seen.add(iid)
                out.append(iid + "\n")
        ctx.out("".join(out))
        return 0
    rows = [row for img in images for row in image_rows(img, trunc)]
    table = DIGEST_TABLE if opts["digests"] else DEFAULT_TABLE
    ctx.out(Formatter(opts["format"] or "", table, HEADERS).render(rows))
    return 0
