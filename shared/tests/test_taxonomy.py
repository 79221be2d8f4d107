"""The national genre taxonomy: complete in fi/sv/en, unique codes, helpers behave."""

import re

import pytest

from kaiku_shared import taxonomy as t

CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _all_items():
    for g in t.GENRES:
        yield g
        yield from g.subgenres


def test_languages():
    assert t.LANGUAGES == ("fi", "sv", "en")


@pytest.mark.parametrize("item", list(_all_items()), ids=lambda i: i.code)
def test_every_genre_and_subgenre_named_in_all_languages(item):
    assert set(item.names) == set(t.LANGUAGES)
    assert all(isinstance(v, str) and v.strip() for v in item.names.values())
    assert CODE.match(item.code) and item.code.isascii()


def test_genre_codes_unique_and_subgenre_codes_unique_within_genre():
    codes = [g.code for g in t.GENRES]
    assert len(codes) == len(set(codes))
    assert t.GENRE_CODES == tuple(codes)
    for g in t.GENRES:
        sub = [s.code for s in g.subgenres]
        assert sub, f"{g.code} has no subgenres"
        assert len(sub) == len(set(sub))


def test_expected_genres_present():
    assert set(t.GENRE_CODES) >= {
        "music", "theatre", "dance", "visual_arts", "museums", "cinema",
        "literature", "courses", "sports", "festivals",
    }
    assert {"classical", "jazz", "iskelma", "rock_pop", "folk", "opera", "choir", "world"} <= set(
        t.subgenre_codes("music")
    )
    assert {"childrens_theatre", "puppet_theatre", "circus"} <= set(t.subgenre_codes("theatre"))


def test_genre_lookup():
    assert t.genre("music").names["fi"] == "Musiikki"
    with pytest.raises(KeyError, match="unknown genre code 'nope'"):
        t.genre("nope")
    with pytest.raises(KeyError):
        t.genre(None)  # type: ignore[arg-type]


def test_validity_helpers():
    assert t.is_valid_genre("theatre")
    assert not t.is_valid_genre("Theatre")
    assert not t.is_valid_genre(None)
    assert t.is_valid_subgenre("music", "iskelma")
    assert not t.is_valid_subgenre("music", "ballet")
    assert not t.is_valid_subgenre("nope", "jazz")


def test_subgenre_codes():
    assert t.subgenre_codes("cinema") == ("feature_film", "documentary")
    with pytest.raises(KeyError):
        t.subgenre_codes("nope")


def test_label():
    assert t.label("music", "fi") == "Musiikki"
    assert t.label("music", "sv") == "Musik"
    assert t.label("music", "fi", subgenre="iskelma") == "Iskelmä"
    assert t.label("theatre", "sv", "childrens_theatre") == "Barnteater"
    assert t.label("sports", "sv") == "Idrott"
    with pytest.raises(ValueError, match="unsupported language"):
        t.label("music", "de")
    with pytest.raises(KeyError):
        t.label("music", "en", subgenre="ballet")
    with pytest.raises(KeyError):
        t.label("nope", "en")


def test_data_is_immutable_and_hashable():
    g = t.genre("dance")
    with pytest.raises(TypeError):
        g.names["fi"] = "x"  # type: ignore[index]
    assert hash(g) == hash(t.genre("dance"))
    assert len({*t.GENRES}) == len(t.GENRES)


def test_a_choice_of_genres_and_subgenres_is_checked_in_one_place():
    from kaiku_shared.taxonomy import check_choice

    check_choice(["music"], ["jazz"])
    check_choice(["music", "theatre"], [])
    with pytest.raises(ValueError, match=r"unknown genre\(s\) \['jatsi'\]"):
        check_choice(["jatsi"], [])
    with pytest.raises(ValueError, match=r"subgenre\(s\) \['jazz'\] belong to none"):
        check_choice(["theatre"], ["jazz"])
