"""Rules admins manage through the API, and shelves (silenced rules or machines), in PostgreSQL.

The hub config's rules stay the config's: the API lists them (read-only) beside its own, and
refuses a rule of the same name. The evaluator reloads API rules and shelves as they change.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from hub.alerts.engine import Transition
from hub.alerts.rules import AlertsConfig, Rule
from hub.sql import Database

__all__ = [
    "RuleConflict",
    "Shelf",
    "api_rules",
    "check_rule",
    "delete_rule",
    "delete_shelf",
    "list_shelves",
    "put_rule",
    "rules_version",
    "shelve",
    "shelved",
]


class RuleConflict(Exception):  # noqa: N818 -- it is a refusal, named for what the caller did
    """The rule cannot be stored as asked (the message says why and what to do)."""


def check_rule(cfg: AlertsConfig | None, body: dict[str, Any]) -> Rule:
    """Validate a rule from the API like one from the config; raise ValueError naming the field."""
    try:
        rule = Rule.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "rule"
        raise ValueError(f"{where}: {first['msg']}") from exc
    known = {n.name for n in cfg.notifiers} if cfg is not None else set()
    missing = [n for n in rule.notify if n not in known]
    if missing:
        raise ValueError(
            f"notify: no notifier named {', '.join(missing)}; notifiers are declared in the hub"
            f" config ({', '.join(sorted(known)) or 'none yet'})"
        )
    if cfg is not None and any(r.name == rule.name for r in cfg.rules):
        raise RuleConflict(f"rule {rule.name!r} is defined in the hub config; change it there")
    return rule


def _dump(rule: Rule) -> str:
    return json.dumps(rule.model_dump(mode="json", by_alias=True, exclude_defaults=True))


async def put_rule(db: Database, rule: Rule, who: str, now_ms: int) -> None:
    """Create or replace an API rule."""
    await db.execute(
        "INSERT INTO alert_rules (name, body, updated_by, updated_ms) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (name) DO UPDATE SET body = excluded.body,"
        " updated_by = excluded.updated_by, updated_ms = excluded.updated_ms",
        rule.name,
        _dump(rule),
        who,
        now_ms,
    )


async def delete_rule(db: Database, name: str) -> bool:
    """Remove an API rule; False if there is none of that name."""
    rows = await db.fetch("DELETE FROM alert_rules WHERE name = $1 RETURNING name", name)
    return bool(rows)


async def api_rules(db: Database) -> list[tuple[Rule, str, int]]:
    """The API's rules with who changed each last and when."""
    rows = await db.fetch(
        "SELECT name, body, updated_by, updated_ms FROM alert_rules ORDER BY name"
    )
    return [(Rule.model_validate_json(r["body"]), r["updated_by"], r["updated_ms"]) for r in rows]


async def rules_version(db: Database) -> tuple[int, int]:
    """Changes to the API's rules show here (count, newest change)."""
    rows = await db.fetch(
        "SELECT count(*) AS n, coalesce(max(updated_ms), 0) AS t FROM alert_rules"
    )
    return int(rows[0]["n"]), int(rows[0]["t"])


@dataclass(frozen=True, slots=True)
class Shelf:
    """A silence: a rule and/or machines (globs; None = any) until a time, and why."""

    id: int
    rule: str | None
    site: str | None
    line: str | None
    machine: str | None
    until_ms: int
    reason: str
    by: str
    created_ms: int

    def covers(self, t: Transition) -> bool:
        """True when this shelf silences the transition's rule and machine."""
        pairs = (
            (self.rule, t.rule.name),
            (self.site, t.key.site),
            (self.line, t.key.line),
            (self.machine, t.key.machine),
        )
        return all(p is None or fnmatch.fnmatchcase(v, p) for p, v in pairs)


_SHELF_COLUMNS = "id, rule, site, line, machine, until_ms, reason, by_whom, created_ms"


async def shelve(
    db: Database,
    *,
    rule: str | None,
    site: str | None,
    line: str | None,
    machine: str | None,
    until_ms: int,
    reason: str,
    who: str,
    now_ms: int,
) -> Shelf:
    """Silence a rule and/or machines until `until_ms`."""
    rows = await db.fetch(
        "INSERT INTO alert_shelves (rule, site, line, machine, until_ms, reason, by_whom,"  # noqa: S608
        f" created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_SHELF_COLUMNS}",
        rule,
        site,
        line,
        machine,
        until_ms,
        reason,
        who,
        now_ms,
    )
    return Shelf(*rows[0].values())


async def list_shelves(db: Database, now_ms: int) -> list[Shelf]:
    """Shelves in force now, soonest to end first."""
    rows = await db.fetch(
        f"SELECT {_SHELF_COLUMNS} FROM alert_shelves WHERE until_ms > $1"  # noqa: S608
        " ORDER BY until_ms, id",
        now_ms,
    )
    return [Shelf(*r.values()) for r in rows]


async def delete_shelf(db: Database, shelf_id: int) -> bool:
    """End a shelf early; False if there is none."""
    rows = await db.fetch("DELETE FROM alert_shelves WHERE id = $1 RETURNING id", shelf_id)
    return bool(rows)


def shelved(shelves: Sequence[Shelf], t: Transition, now_ms: int) -> bool:
    """True when a shelf in force silences this transition."""
    return any(s.until_ms > now_ms and s.covers(t) for s in shelves)
