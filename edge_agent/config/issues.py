"""Raise several located problems from one pydantic validator, each with a technician's hint.

pydantic stops at the first exception a validator raises; a validator that raises a
`ValidationError` instead contributes every line of it, prefixed with the validator's location.
That is how one tag can report both a bad `bit` and a bad `order` in a single run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from millstream_common.locs import Loc

__all__ = ["ERROR_TYPE", "Issue", "raise_issues", "reraise_with"]

# The pydantic error type of every problem our own validators find.
ERROR_TYPE = "millstream"


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found by a validator, relative to the model being validated."""

    loc: Loc
    message: str
    hint: str = ""
    input: Any = None


def _details(issue: Issue) -> InitErrorDetails:
    error = PydanticCustomError(
        ERROR_TYPE, "{message}", {"message": issue.message, "hint": issue.hint}
    )
    return InitErrorDetails(type=error, loc=issue.loc, input=issue.input)


def raise_issues(title: str, issues: Iterable[Issue]) -> None:
    """Raise one ValidationError carrying every issue, or return if there are none."""
    details = [_details(issue) for issue in issues]
    if details:
        raise ValidationError.from_exception_data(title, details)


def reraise_with(title: str, exc: ValidationError, issues: Iterable[Issue]) -> NoReturn:
    """Raise `exc`'s errors plus `issues` as one ValidationError (used by wrap validators)."""
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        ctx = error.get("ctx") or {}
        if error["type"] == ERROR_TYPE:
            details.append(_details(Issue(error["loc"], ctx["message"], ctx.get("hint", ""))))
        else:
            item = InitErrorDetails(type=error["type"], loc=error["loc"], input=error["input"])
            if ctx:
                item["ctx"] = ctx
            details.append(item)
    details.extend(_details(issue) for issue in issues)
    raise ValidationError.from_exception_data(title, details)
