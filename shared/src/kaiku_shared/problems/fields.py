"""pydantic's field messages in Finnish and Swedish, by error type.

A message whose type is not here (a custom validator's ValueError, say) stays
in English; the field name still says where the fault is.
"""

from __future__ import annotations

from typing import Any

_TEXT = ("string_type", "string_sub_type", "string_unicode")
_INTEGER = ("int_type", "int_parsing", "int_from_float", "int_parsing_size")
_NUMBER = ("float_type", "float_parsing", "decimal_type", "decimal_parsing",
           "finite_number")
_BOOLEAN = ("bool_type", "bool_parsing")
_UUID = ("uuid_type", "uuid_parsing", "uuid_version")
_DATE = ("date_type", "date_parsing", "date_from_datetime_parsing",
         "date_from_datetime_inexact")
_TIMESTAMP = ("datetime_type", "datetime_parsing", "datetime_from_date_parsing",
              "datetime_object_invalid")
_OBJECT = ("dict_type", "model_type", "model_attributes_type", "dataclass_type")
_URL = ("url_type", "url_parsing", "url_syntax_violation", "url_scheme", "url_too_long")

# (types, Finnish, Swedish); {name} is filled from pydantic's ``ctx``.
_MESSAGES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("missing",), "pakollinen tieto puuttuu", "obligatorisk uppgift saknas"),
    (_TEXT, "arvon on oltava tekstiä", "värdet ska vara text"),
    (_INTEGER, "arvon on oltava kokonaisluku", "värdet ska vara ett heltal"),
    (_NUMBER, "arvon on oltava luku", "värdet ska vara ett tal"),
    (_BOOLEAN, "arvon on oltava true tai false", "värdet ska vara true eller false"),
    (_UUID, "arvon on oltava UUID-tunniste", "värdet ska vara ett UUID"),
    (_DATE, "arvon on oltava päivämäärä muodossa VVVV-KK-PP",
     "värdet ska vara ett datum i formatet ÅÅÅÅ-MM-DD"),
    (_TIMESTAMP, "arvon on oltava aikaleima muodossa VVVV-KK-PPTtt:mm:ss+hh:mm",
     "värdet ska vara en tidpunkt i formatet ÅÅÅÅ-MM-DDTtt:mm:ss+hh:mm"),
    (("timezone_aware",), "aikaleimassa on oltava aikavyöhyke (esim. +03:00)",
     "tidpunkten ska ha en tidszon (t.ex. +03:00)"),
    (("list_type", "tuple_type", "set_type"), "arvon on oltava luettelo",
     "värdet ska vara en lista"),
    (_OBJECT, "arvon on oltava JSON-objekti", "värdet ska vara ett JSON-objekt"),
    (("json_invalid", "json_type"), "sisältö ei ole kelvollista JSONia",
     "innehållet är inte giltig JSON"),
    (("extra_forbidden",), "tuntematon kenttä", "okänt fält"),
    (_URL, "arvon on oltava kelvollinen URL-osoite", "värdet ska vara en giltig URL"),
    (("string_pattern_mismatch",), "arvo ei ole vaaditussa muodossa ({pattern})",
     "värdet har inte det format som krävs ({pattern})"),
    (("string_too_long",), "arvossa saa olla enintään {max_length} merkkiä",
     "värdet får ha högst {max_length} tecken"),
    (("too_long",), "luettelossa saa olla enintään {max_length} kohtaa",
     "listan får ha högst {max_length} element"),
    (("too_short",), "luettelossa on oltava vähintään {min_length} kohtaa",
     "listan ska ha minst {min_length} element"),
    (("literal_error", "enum"), "arvon on oltava jokin näistä: {expected}",
     "värdet ska vara något av följande: {expected}"),
    (("greater_than_equal",), "arvon on oltava vähintään {ge}", "värdet ska vara minst {ge}"),
    (("greater_than",), "arvon on oltava suurempi kuin {gt}", "värdet ska vara större än {gt}"),
    (("less_than_equal",), "arvon on oltava enintään {le}", "värdet ska vara högst {le}"),
    (("less_than",), "arvon on oltava pienempi kuin {lt}", "värdet ska vara mindre än {lt}"),
)
_BY_TYPE = {kind: {"fi": fi, "sv": sv} for kinds, fi, sv in _MESSAGES for kind in kinds}
_OR = {"fi": "tai", "sv": "eller"}

# The whole declared range of a number (kaiku_shared.http fills it from the schema).
RANGES = {
    "between": {"en": "must be between {low} and {high}",
                "fi": "arvon on oltava välillä {low}–{high}",
                "sv": "värdet ska vara mellan {low} och {high}"},
    "at_least": {"en": "must be at least {low}", "fi": "arvon on oltava vähintään {low}",
                 "sv": "värdet ska vara minst {low}"},
    "at_most": {"en": "must be at most {high}", "fi": "arvon on oltava enintään {high}",
                "sv": "värdet ska vara högst {high}"},
}

# The 422 detail that lists the fields, and the name of a fault in the whole body.
CHECK_FIELDS = {"en": "Check these fields: {fields}.", "fi": "Tarkista nämä kentät: {fields}.",
                "sv": "Kontrollera de här fälten: {fields}."}
WHOLE_BODY = {"en": "body", "fi": "pyynnön sisältö", "sv": "begärans innehåll"}


def field_message(error: dict[str, Any], language: str) -> str | None:
    """pydantic's ``error`` in ``language`` (fi or sv); None when not known here."""
    kind = error.get("type", "")
    if kind == "string_too_short":
        return _too_short_text(error.get("ctx") or {}, language)
    template = _BY_TYPE.get(kind, {}).get(language)
    if template is None:
        return None
    values = {name: str(value) for name, value in (error.get("ctx") or {}).items()}
    if "expected" in values:  # "'a', 'b' or 'c'"
        values["expected"] = values["expected"].replace("' or '", f"' {_OR[language]} '")
    try:
        return template.format(**values)
    except (KeyError, IndexError):
        return None


def _too_short_text(ctx: dict[str, Any], language: str) -> str | None:
    minimum = ctx.get("min_length")
    if minimum == 1:
        return {"fi": "arvo ei saa olla tyhjä", "sv": "värdet får inte vara tomt"}.get(language)
    return {"fi": f"arvossa on oltava vähintään {minimum} merkkiä",
            "sv": f"värdet ska ha minst {minimum} tecken"}.get(language)
