"""Docker's --user spec resolved against an image's /etc/passwd and /etc/group.

Follows runc's libcontainer/user.GetExecUser, which dockerd uses, so that
"", "name", "uid", "name:group", "uid:gid", "name:gid"... behave and fail
exactly as with Docker (uid/gid default to 0; a numeric uid need not exist
in /etc/passwd; supplementary groups come from /etc/group membership, only
when no group is given explicitly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dockyard.errors import InvalidParameter

_MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def parse_passwd(data: bytes) -> list[PasswdEntry]:
    entries = []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        fields += [""] * (7 - len(fields))
        uid, gid = _int_or_none(fields[2]), _int_or_none(fields[3])
        if uid is None or gid is None:
            continue  # malformed line (e.g. NIS "+::::::"): cannot match anything useful
        entries.append(PasswdEntry(fields[0], uid, gid, fields[5]))
    return entries


def parse_group(data: bytes) -> list[GroupEntry]:
    entries = []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        fields += [""] * (4 - len(fields))
        gid = _int_or_none(fields[2])
        if gid is None:
            continue
        members = tuple(m for m in fields[3].split(",") if m)
        entries.append(GroupEntry(fields[0], gid, members))
    return entries


def _numeric_id(text: str) -> int | None:
    # Go's strconv.Atoi: optional sign, decimal digits only.
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    return int(text)


def resolve_user(user: str, read: Callable[[str], bytes | None]) -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary gids) for a `--user` / image `User` value."""
    user_arg, _, rest = user.partition(":")
    group_arg = rest.split(":", 1)[0]
    uid_arg = _numeric_id(user_arg)
    gid_arg = _numeric_id(group_arg)

    uid, gid = 0, 0
    passwd_data = read("/etc/passwd")
    users = parse_passwd(passwd_data) if passwd_data is not None else []
    if not user_arg:
        matches = [u for u in users if u.uid == uid]
    elif uid_arg is not None:
        matches = [u for u in users if u.uid == uid_arg]
    else:
        matches = [u for u in users if u.name == user_arg]

    matched_name = ""
    if matches:
        # First match wins, even if there is more than one.
        matched_name, uid, gid = matches[0].name, matches[0].uid, matches[0].gid
    elif user_arg:
        if uid_arg is None:
            raise InvalidParameter(
                f"unable to find user {user_arg}: no matching entries in passwd file"
            )
        if not 0 <= uid_arg <= _MAX_ID:
            raise InvalidParameter(f"uids and gids must be in range 0-{_MAX_ID}")
        uid = uid_arg

    sgids: list[int] = []
    if group_arg or matched_name:
        group_data = read("/etc/group")
        groups = parse_group(group_data) if group_data is not None else []
        if group_arg:
            if gid_arg is not None:
                gmatches = [g for g in groups if g.gid == gid_arg]
            else:
                gmatches = [g for g in groups if g.name == group_arg]
            if gmatches:
                gid = gmatches[0].gid
            else:
                if gid_arg is None:
                    raise InvalidParameter(
                        f"unable to find group {group_arg}: no matching entries in group file"
                    )
                if not 0 <= gid_arg <= _MAX_ID:
                    raise InvalidParameter(f"uids and gids must be in range 0-{_MAX_ID}")
                gid = gid_arg
        else:
            # Supplementary groups only in the implicit form, as runc.
            sgids = [g.gid for g in groups if matched_name in g.members]
    return uid, gid, sgids


def resolve_groups(groups: list[str], read: Callable[[str], bytes | None]) -> list[int]:
    """`--group-add` values (names or gids) as gids, in order, without duplicates.

    As runc's GetAdditionalGroups: a name must exist in /etc/group; a number
    need not.
    """
    if not groups:
        return []
    data = read("/etc/group")
    entries = parse_group(data) if data is not None else []
    gids: list[int] = []
    for spec in groups:
        gid = next((g.gid for g in entries if g.name == spec), None)
        if gid is None:
            gid = _numeric_id(spec)
            if gid is None:
                raise InvalidParameter(
                    f"Unable to find group {spec}: no matching entries in group file"
                )
            if not 0 <= gid <= _MAX_ID:
                raise InvalidParameter(f"uids and gids must be in range 0-{_MAX_ID}")
        if gid not in gids:
            gids.append(gid)
    return gids
