"""The one national genre taxonomy for Kaikukortti offerings.

Declared once, here, in Finnish, Swedish and English. Every service that tags an
offering (venues publishing events), filters it (OmaKaiku browsing) or subscribes
to it (genre notifications) uses these codes; the labels are for display only.

Pure data plus tiny helpers: no I/O, no settings, no third-party imports.

Codes are stable ASCII ``snake_case`` identifiers and must never be renamed once
in use (they are stored in events and subscriptions). Subgenre codes are unique
within their genre; a subgenre is always addressed together with its genre.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "LANGUAGES",
    "Genre",
    "Subgenre",
    "GENRES",
    "GENRE_CODES",
    "genre",
    "subgenre",
    "is_valid_genre",
    "is_valid_subgenre",
    "subgenre_codes",
    "label",
]

LANGUAGES: tuple[str, ...] = ("fi", "sv", "en")

_CODE_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")


@dataclass(frozen=True)
class Subgenre:
    code: str
    names: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True)
class Genre:
    code: str
    names: Mapping[str, str] = field(hash=False)
    subgenres: tuple[Subgenre, ...] = ()


def _names(fi: str, sv: str, en: str) -> Mapping[str, str]:
    return MappingProxyType({"fi": fi, "sv": sv, "en": en})


def _s(code: str, fi: str, sv: str, en: str) -> Subgenre:
    return Subgenre(code, _names(fi, sv, en))


def _g(code: str, fi: str, sv: str, en: str, *subgenres: Subgenre) -> Genre:
    return Genre(code, _names(fi, sv, en), tuple(subgenres))


GENRES: tuple[Genre, ...] = (
    _g(
        "music", "Musiikki", "Musik", "Music",
        _s("classical", "Klassinen musiikki", "Klassisk musik", "Classical music"),
        _s("jazz", "Jazz", "Jazz", "Jazz"),
        _s("iskelma", "Iskelmä", "Schlager", "Iskelmä (Finnish schlager)"),
        _s("rock_pop", "Rock ja pop", "Rock och pop", "Rock and pop"),
        _s("folk", "Kansanmusiikki", "Folkmusik", "Folk music"),
        _s("opera", "Ooppera", "Opera", "Opera"),
        _s("choir", "Kuoromusiikki", "Körmusik", "Choral music"),
        _s("world", "Maailmanmusiikki", "Världsmusik", "World music"),
    ),
    _g(
        "theatre", "Teatteri", "Teater", "Theatre",
        _s("drama", "Draama", "Drama", "Drama"),
        _s("comedy", "Komedia", "Komedi", "Comedy"),
        _s("musical", "Musikaali", "Musikal", "Musical"),
        _s("childrens_theatre", "Lastenteatteri", "Barnteater", "Children's theatre"),
        _s("puppet_theatre", "Nukketeatteri", "Dockteater", "Puppet theatre"),
        _s("circus", "Sirkus", "Cirkus", "Circus"),
    ),
    _g(
        "dance", "Tanssi", "Dans", "Dance",
        _s("ballet", "Baletti", "Balett", "Ballet"),
        _s("contemporary", "Nykytanssi", "Samtida dans", "Contemporary dance"),
        _s("folk_dance", "Kansantanssi", "Folkdans", "Folk dance"),
    ),
    _g(
        "visual_arts", "Kuvataide", "Bildkonst", "Visual arts",
        _s("exhibitions", "Näyttelyt", "Utställningar", "Exhibitions"),
        _s("photography", "Valokuvataide", "Fotokonst", "Photography"),
        _s("design", "Muotoilu", "Design", "Design"),
    ),
    _g(
        "museums", "Museot", "Museer", "Museums",
        _s("art_museum", "Taidemuseo", "Konstmuseum", "Art museum"),
        _s("history_museum", "Historiallinen museo", "Historiskt museum", "History museum"),
        _s("science_museum", "Tiedemuseo", "Vetenskapsmuseum", "Science museum"),
    ),
    _g(
        "cinema", "Elokuvat", "Film", "Cinema",
        _s("feature_film", "Pitkä elokuva", "Långfilm", "Feature film"),
        _s("documentary", "Dokumenttielokuva", "Dokumentärfilm", "Documentary"),
    ),
    _g(
        "literature", "Kirjallisuus", "Litteratur", "Literature",
        _s("readings", "Lukutilaisuudet", "Uppläsningar", "Readings"),
        _s("library_events", "Kirjaston tapahtumat", "Bibliotekets evenemang", "Library events"),
    ),
    _g(
        "courses", "Kurssit", "Kurser", "Courses",
        _s("arts_crafts", "Taide ja kädentaidot", "Konst och hantverk", "Arts and crafts"),
        _s("languages", "Kielet", "Språk", "Languages"),
        _s("music_lessons", "Musiikin opiskelu", "Musikundervisning", "Music lessons"),
        _s("exercise_courses", "Liikuntakurssit", "Motionskurser", "Exercise courses"),
    ),
    _g(
        "sports", "Liikunta", "Idrott", "Sports",
        _s("swimming", "Uinti", "Simning", "Swimming"),
        _s("gym", "Kuntosali", "Gym", "Gym"),
        _s("ball_games", "Pallopelit", "Bollspel", "Ball games"),
        _s("spectator_sports", "Urheilutapahtumat", "Idrottsevenemang", "Spectator sports"),
    ),
    _g(
        "festivals", "Festivaalit", "Festivaler", "Festivals",
        _s("music_festival", "Musiikkifestivaali", "Musikfestival", "Music festival"),
        _s("cultural_festival", "Kulttuurifestivaali", "Kulturfestival", "Cultural festival"),
    ),
)

_BY_CODE: Mapping[str, Genre] = MappingProxyType({g.code: g for g in GENRES})

GENRE_CODES: tuple[str, ...] = tuple(g.code for g in GENRES)


def _validate() -> None:
    """Fail at import if the declaration above is inconsistent."""
    if len(_BY_CODE) != len(GENRES):
        raise ValueError("taxonomy: duplicate genre code")
    for g in GENRES:
        items: tuple[Genre | Subgenre, ...] = (g, *g.subgenres)
        for item in items:
            if not _CODE_RE.match(item.code):
                raise ValueError(f"taxonomy: code {item.code!r} is not ASCII snake_case")
            if set(item.names) != set(LANGUAGES) or not all(
                isinstance(v, str) and v.strip() for v in item.names.values()
            ):
                raise ValueError(f"taxonomy: {item.code!r} needs a non-empty name in {LANGUAGES}")
        codes = [s.code for s in g.subgenres]
        if len(set(codes)) != len(codes):
            raise ValueError(f"taxonomy: duplicate subgenre code in genre {g.code!r}")


_validate()


def genre(code: str) -> Genre:
    """The genre with this code; ``KeyError`` naming the valid codes otherwise."""
    try:
        return _BY_CODE[code]
    except (KeyError, TypeError):
        raise KeyError(
            f"unknown genre code {code!r}; valid codes: {', '.join(GENRE_CODES)}"
        ) from None


def subgenre(genre_code: str, subgenre_code: str) -> Subgenre:
    """The subgenre of a genre; ``KeyError`` if either code is unknown."""
    g = genre(genre_code)
    for s in g.subgenres:
        if s.code == subgenre_code:
            return s
    raise KeyError(
        f"unknown subgenre code {subgenre_code!r} for genre {genre_code!r}; "
        f"valid codes: {', '.join(s.code for s in g.subgenres)}"
    )


# ``label`` has a parameter called ``subgenre``; keep an unshadowed alias.
_subgenre = subgenre


def is_valid_genre(code: object) -> bool:
    return isinstance(code, str) and code in _BY_CODE


def is_valid_subgenre(genre_code: object, subgenre_code: object) -> bool:
    if not is_valid_genre(genre_code):
        return False
    return any(s.code == subgenre_code for s in _BY_CODE[genre_code].subgenres)  # type: ignore[index]


def check_choice(genres: Sequence[str], subgenres: Sequence[str] = ()) -> None:
    """``ValueError`` naming what is wrong unless every genre is known and every
    subgenre belongs to one of the chosen genres (offering, subscriptions)."""
    unknown = [g for g in genres if not is_valid_genre(g)]
    if unknown:
        raise ValueError(f"unknown genre(s) {unknown}; use codes from the national "
                         f"taxonomy: {', '.join(GENRE_CODES)}")
    stray = [s for s in subgenres if not any(is_valid_subgenre(g, s) for g in genres)]
    if stray:
        raise ValueError(f"subgenre(s) {stray} belong to none of the chosen genres "
                         f"{list(genres)}; choose the subgenre's genre too")


def subgenre_codes(genre_code: str) -> tuple[str, ...]:
    """Subgenre codes of a genre, in declaration order; ``KeyError`` if unknown."""
    return tuple(s.code for s in genre(genre_code).subgenres)


def label(code: str, language: str, subgenre: str | None = None) -> str:
    """Display name of a genre, or of one of its subgenres when ``subgenre`` is given.

    ``language`` must be one of ``LANGUAGES`` (``ValueError`` otherwise);
    unknown codes raise ``KeyError``.
    """
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; expected one of {LANGUAGES}")
    item: Genre | Subgenre = genre(code) if subgenre is None else _subgenre(code, subgenre)
    return item.names[language]
