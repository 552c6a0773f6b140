"""Who is using vkpp and what they may do: viewer < analyst < admin, checked by the library on every write.

With a login (Streamlit OIDC) the role comes from the VKPP_ROLES setting; without one, vkpp runs in
single-user local mode and the local user is an admin.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from enum import IntEnum

from vkpp_learning import settings
from vkpp_learning.errors import ConfigurationError, PermissionDenied

LOCAL_MODE = "local"
LOGIN_MODE = "login"


class Role(IntEnum):
    """Roles in increasing order of what they may do; each can do everything the one below can."""

    VIEWER = 1
    ANALYST = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            known = ", ".join(role.label for role in cls)
            raise ConfigurationError(f"unknown role {name.strip()!r}; roles are {known}", code="bad_role") from None

    @property
    def label(self) -> str:
        return self.name.lower()


# The least role each action needs.
ACTIONS: dict[str, Role] = {
    "read": Role.VIEWER,
    "export": Role.VIEWER,
    "annotate": Role.ANALYST,
    "basket": Role.ANALYST,
    "ingest": Role.ANALYST,
    "taxonomy": Role.ADMIN,
    "delete": Role.ADMIN,
}
# How each action reads in a message.
ACTION_WORDS = {
    "read": "read the repository",
    "export": "export",
    "annotate": "confirm, reject or add tags",
    "basket": "change evidence baskets",
    "ingest": "ingest reviews",
    "taxonomy": "edit the taxonomy",
    "delete": "delete reviews or other people's work",
}


@dataclass(frozen=True)
class User:
    """A person acting on the repository; `name` is what annotations and baskets record."""

    name: str
    role: Role
    mode: str  # "local" (single-user, no login) or "login"

    @property
    def local(self) -> bool:
        return self.mode == LOCAL_MODE


def parse_roles(text: str) -> dict[str, Role]:
    """{email: role} from the VKPP_ROLES form "ann@force.police.uk=analyst, bob@force.police.uk=viewer"."""
    roles: dict[str, Role] = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        email, sep, role = pair.rpartition("=")
        if not sep or not email.strip():
            raise ConfigurationError(
                f"VKPP_ROLES entry {pair!r} is not 'email=role' (roles: viewer, analyst, admin)", code="bad_role"
            )
        roles[email.strip().lower()] = Role.parse(role)
    return roles


def local_user(name: str | None = None) -> User:
    """The single user of a local install: named by `name`, VKPP_USER or the OS account; an admin."""
    return User(
        name=(name or "").strip() or settings.get("VKPP_USER").strip() or _os_user(), role=Role.ADMIN, mode=LOCAL_MODE
    )


def resolve_user(login_email: str | None) -> User:
    """The user behind a login (role from VKPP_ROLES, viewer when not listed), or the local user without one."""
    if not login_email or not login_email.strip():
        return local_user()
    email = login_email.strip()
    role = parse_roles(settings.get("VKPP_ROLES")).get(email.lower(), Role.VIEWER)
    return User(name=email, role=role, mode=LOGIN_MODE)


def can(user: User, action: str) -> bool:
    """Whether `user` may do `action` (for showing or hiding controls; writes still call `require`)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; actions are {', '.join(ACTIONS)}")
    return user.role >= ACTIONS[action]


def require(user: User, action: str) -> None:
    """Raise PermissionDenied unless `user` may do `action`."""
    if not can(user, action):
        needed = ACTIONS[action]
        allowed = " and ".join(f"{role.label}s" for role in Role if role >= needed)
        raise PermissionDenied(
            f"{user.name} is a {user.role.label} and cannot {ACTION_WORDS[action]}: only {allowed} can. "
            "Ask an admin to change your role in VKPP_ROLES."
        )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        return "local user"
