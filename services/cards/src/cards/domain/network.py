"""The network's regions and municipalities (reference data from the seed)."""

from __future__ import annotations

import copy
import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate, event

from .model import RuleViolation

ACTIVE_STATUSES = ("in_use", "pilot", "joining_2025_2026", "popup")
# 'left': a municipality that no longer takes part (its cards stay in the history).
STATUSES = (*ACTIVE_STATUSES, "left")
# 2 to 60 characters: the published contract (NetworkChangedV1) holds codes up to 60.
_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{1,59}$")


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "regions": [copy.deepcopy(r) for r in self.regions.values()],
            "municipalities": [
                {"code": m.code, "name": dict(m.names), "region": m.region,
                 "status": m.status, "country": m.country}
                for m in self.municipalities.values()
            ],
        }

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


class NetworkRegistry(Aggregate):
    """The network's regions and municipalities, editable by Kaikukeskus.

    Seeded once from the reference data shipped with the service; every later
    change is an event, so the network's history is kept. The network is
    published (``Announced``, the whole of it) once; from then on each change
    is published as it is made. Stores seeded before the network was published
    have no announcement: the next start records it.
    """

    @staticmethod
    def create_id() -> Any:
        return uuid5(NAMESPACE_URL, "/kaikukanta/network")

    @event("Seeded")
    def __init__(self, regions: list[dict[str, Any]], municipalities: list[dict[str, Any]]
                 ) -> None:
        self.regions = {r["code"]: r for r in regions}
        self.municipalities = {m["code"]: m for m in municipalities}
        self.announced = False

    def announce(self) -> bool:
        """Record the whole network for publication, once; False if it was."""
        if self.announced:
            return False
        self._announced(regions=copy.deepcopy(list(self.regions.values())),
                        municipalities=copy.deepcopy(list(self.municipalities.values())))
        return True

    @event("Announced")
    def _announced(self, regions: list[dict[str, Any]],
                   municipalities: list[dict[str, Any]]) -> None:
        self.announced = True

    def network(self) -> Network:
        return Network.from_dict({"regions": list(self.regions.values()),
                                  "municipalities": list(self.municipalities.values())})

    def set_region(self, code: str, names: dict[str, str], country: str) -> bool:
        _check_code(code)
        if not names.get("fi", "").strip():
            raise RuleViolation("region-name", "A region needs at least a Finnish name.",
                                "name")
        region = {"code": code, "name": {k: v.strip() for k, v in names.items()},
                  "country": country.upper()}
        if self.regions.get(code) == region:
            return False
        self._region_set(region=region, publish=self.announced)
        return True

    # ``publish``: made after the announcement, so it is published. Changes
    # stored before it (no such field) were not, and stay unpublished.
    @event("RegionSet")
    def _region_set(self, region: dict[str, Any], publish: bool = False) -> None:
        self.regions[region["code"]] = region

    def set_municipality(self, code: str, *, names: dict[str, str] | None, region: str | None,
                         status: str | None, country: str | None) -> bool:
        _check_code(code)
        current = self.municipalities.get(code)
        if current is None and (not names or not region or not status):
            raise RuleViolation(
                "municipality-incomplete",
                "A new municipality needs a name, a region and a status.", "name")
        merged = dict(current or {"code": code, "country": "FI"})
        if names:
            if not names.get("fi", "").strip() and not merged.get("name"):
                raise RuleViolation("municipality-name",
                                    "A municipality needs at least a Finnish name.", "name")
            merged["name"] = {**merged.get("name", {}),
                              **{k: v.strip() for k, v in names.items()}}
        if region is not None:
            if region not in self.regions:
                raise RuleViolation("region-unknown", f"No region {region!r}.", "region")
            merged["region"] = region
        if status is not None:
            if status not in STATUSES:
                raise RuleViolation("municipality-status",
                                    f"status is one of {', '.join(STATUSES)}.", "status")
            merged["status"] = status
        if country is not None:
            merged["country"] = country.upper()
        if merged == current:
            return False
        self._municipality_set(municipality=merged, publish=self.announced)
        return True

    @event("MunicipalitySet")
    def _municipality_set(self, municipality: dict[str, Any], publish: bool = False) -> None:
        self.municipalities[municipality["code"]] = municipality


def _check_code(code: str) -> None:
    if not _CODE.match(code):
        raise RuleViolation("code", "A code is lower-case letters, digits and '-', "
                            "e.g. 'etela-karjala'.", "code")
