"""The network's regions and municipalities (reference data from the seed)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from .model import RuleViolation

ACTIVE_STATUSES = ("in_use", "pilot", "joining_2025_2026", "popup")


@dataclass(frozen=True)
class Municipality:
    code: str
    names: dict[str, str]
    region: str
    status: str
    country: str


@dataclass(frozen=True)
class Network:
    regions: dict[str, dict[str, Any]]
    municipalities: dict[str, Municipality]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Network:
        municipalities = {
            m["code"]: Municipality(m["code"], m["name"], m["region"], m["status"],
                                    m.get("country", "FI"))
            for m in data["municipalities"]
        }
        return cls({r["code"]: r for r in data["regions"]}, municipalities)

    def municipality(self, name_or_code: str) -> Municipality:
        """Find by code or by a name in any language, case and accents forgiven."""
        wanted = _fold(name_or_code)
        for municipality in self.municipalities.values():
            if wanted == _fold(municipality.code) or any(
                wanted == _fold(n) for n in municipality.names.values()
            ):
                return municipality
        raise RuleViolation(
            "municipality-not-in-network",
            f"{name_or_code!r} is not a municipality in the Kaikukortti network.",
            "municipality",
        )

    def card_municipality(self, name_or_code: str) -> Municipality:
        municipality = self.municipality(name_or_code)
        if municipality.status not in ("in_use", "pilot", "joining_2025_2026"):
            raise RuleViolation(
                "municipality-not-in-network",
                f"Cards are not issued in {municipality.names['fi']} "
                f"(status {municipality.status}).",
                "municipality",
            )
        return municipality


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace(" ", "-")
