"""One error hierarchy for every service's domain and application layers.

A use case raises these; the HTTP layer turns each into a problem+json answer
with the same status, ``kind`` (the rule) and field in every service
(``kaiku_shared.http.problem_for``).
"""

from __future__ import annotations


class RuleViolation(Exception):
    """A rule refused the command; ``rule`` names it for clients.

    ``status`` is 409 when the system's state refuses it (the card is closed),
    422 when the input does (a postal code of four digits); ``field`` names the
    input at fault, if one is.
    """

    def __init__(self, rule: str, message: str, *, status: int = 409,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.status = status
        self.field = field


class NotFound(RuleViolation):
    """What the command names does not exist (or is not visible to the caller)."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(f"{what.lower()}-not-found", message, status=404)
        self.what = what


class Forbidden(RuleViolation):
    """The caller may not do this to that: it belongs to another organisation."""

    def __init__(self, message: str, rule: str = "not-yours") -> None:
        super().__init__(rule, message, status=403)


class NotYetKnown(LookupError):
    """A projection needs a fact that has not arrived yet (a sibling stream's
    event): the message is retried, with backoff, for as long as that lasts —
    never dead-lettered, because it is not wrong, only early."""
