"""Reference data: the Kaikukortti network (regions, municipalities) as of 20.10.2025."""

import json
from collections import Counter
from pathlib import Path

import pytest

NETWORK_JSON = Path(__file__).resolve().parents[2] / "src" / "cards" / "reference" / "network.json"

STATUSES = {"in_use", "pilot", "joining_2025_2026", "popup"}

# Counted by hand from the seed's "Kaikukortti maantieteellisesti" section.
EXPECTED_PER_STATUS = {"in_use": 60, "pilot": 36, "joining_2025_2026": 24, "popup": 1}


@pytest.fixture(scope="module")
def network():
    with NETWORK_JSON.open(encoding="utf-8") as f:
        return json.load(f)


def _by_code(items):
    return {i["code"]: i for i in items}


def test_header(network):
    assert network["updated"] == "2025-10-20"
    assert "Helsinki" in network["source"] and "popup" in network["source"]


def test_codes_unique_and_ascii(network):
    for key in ("regions", "municipalities"):
        codes = [i["code"] for i in network[key]]
        assert len(codes) == len(set(codes)), key
        for c in codes:
            assert c.isascii() and c == c.lower() and " " not in c, c


def test_names_in_three_languages(network):
    for item in network["regions"] + network["municipalities"]:
        assert set(item["name"]) == {"fi", "sv", "en"}, item["code"]
        assert all(v.strip() for v in item["name"].values()), item["code"]


def test_every_municipality_region_exists_and_country_matches(network):
    regions = _by_code(network["regions"])
    for m in network["municipalities"]:
        assert m["region"] in regions, m["code"]
        assert m["country"] == regions[m["region"]]["country"], m["code"]
    used = {m["region"] for m in network["municipalities"]}
    assert used == set(regions), "every region has at least one municipality"


def test_statuses_valid_and_counts(network):
    counts = Counter(m["status"] for m in network["municipalities"])
    assert set(counts) <= STATUSES
    assert dict(counts) == EXPECTED_PER_STATUS
    # the national figure "120 municipalities" = the network list, without pop-up Helsinki
    assert sum(n for s, n in counts.items() if s != "popup") == 120


def test_fi_names_unique(network):
    names = [m["name"]["fi"] for m in network["municipalities"]]
    assert len(names) == len(set(names))


def test_haaparanta_is_in_sweden(network):
    m = _by_code(network["municipalities"])["haaparanta"]
    assert m["country"] == "SE"
    assert m["region"] == "ruotsi"
    assert m["name"]["sv"] == "Haparanda"
    assert m["status"] == "in_use"
    assert _by_code(network["regions"])["ruotsi"]["name"]["en"] == "Sweden"


def test_helsinki_is_popup_only(network):
    m = _by_code(network["municipalities"])["helsinki"]
    assert m["status"] == "popup"
    assert m["name"]["sv"] == "Helsingfors"
    assert [x["code"] for x in network["municipalities"] if x["status"] == "popup"] == ["helsinki"]


@pytest.mark.parametrize(
    "code, region, status, sv",
    [
        ("imatra", "etela-karjala", "in_use", "Imatra"),
        ("kotka", "kymenlaakso", "in_use", "Kotka"),
        ("kemi", "lappi", "in_use", "Kemi"),
        ("keminmaa", "lappi", "in_use", "Keminmaa"),
        ("rovaniemi", "lappi", "in_use", "Rovaniemi"),
        ("vaasa", "pohjanmaa", "in_use", "Vasa"),
        ("espoo", "lansi-uusimaa", "in_use", "Esbo"),
        ("isokyro", "etela-pohjanmaa", "pilot", "Storkyro"),
        ("pietarsaari", "pohjanmaa", "pilot", "Jakobstad"),
        ("tervo", "pohjois-savo", "pilot", "Tervo"),
        ("vantaa", "vantaa-kerava", "joining_2025_2026", "Vanda"),
        ("kerava", "vantaa-kerava", "joining_2025_2026", "Kervo"),
        ("soini", "etela-pohjanmaa", "joining_2025_2026", "Soini"),
        ("vihti", "lansi-uusimaa", "joining_2025_2026", "Vichtis"),
    ],
)
def test_sample_entries(network, code, region, status, sv):
    m = _by_code(network["municipalities"])[code]
    assert (m["region"], m["status"], m["name"]["sv"], m["country"]) == (region, status, sv, "FI")


def test_per_region_counts(network):
    c = Counter((m["region"], m["status"]) for m in network["municipalities"])
    assert c[("pohjois-savo", "pilot")] == 13
    assert c[("pohjois-pohjanmaa", "pilot")] == 12
    assert c[("kanta-hame", "in_use")] == 9
    assert c[("etela-karjala", "joining_2025_2026")] == 7
    assert c[("lappi", "in_use")] == 4
