"""Every problem a service can answer has its Finnish and Swedish text.

The sources (shared/src and services/*/src) are read, not run: every place a
problem's kind is made is found by its call —

    RuleViolation("card-closed", …)     conflict/unprocessable("kind", …)
    NotFound("Card", …), not_found(…)   → "card-not-found"
    Forbidden("…", rule="…")            → its rule, else "not-yours"
    Problem(403, "Current password needed", …)  → kind=… or the title's slug

— and so is every function that passes one of its own parameters on as the kind
(notifications' ``refused(rule, …)``, venues' ``_get(id, what)``) and every
exception class that keeps one as ``self.rule`` (venues' ``MobileCardRefused``):
their callers' literals count too, as do module constants (``INVALID = "…"``).
A kind made from anything else must be listed in INDIRECT with the kinds it can
be, so a new one cannot slip by unseen.

Run ``python tests/unit/test_problem_catalogue.py`` to list every kind found,
with where it is made and its English detail.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from kaiku_shared.http import _HTTP_TITLES
from kaiku_shared.problems import catalogue

REPO = Path(__file__).resolve().parents[2]
# The web answers with HTML pages from its own i18n files, never problem+json.
SOURCES = (REPO / "shared" / "src", *sorted(
    src for src in (REPO / "services").glob("*/src") if src.parent.name != "web"))


@dataclass(frozen=True)
class Maker:
    """A callable whose argument (``position``, or ``keyword``) is a kind."""

    position: int | None
    keyword: str
    shape: str = "kind"  # "kind" | "what" ("Card" → "card-not-found") | "title"
    default: str | None = None


# The constructors themselves (kaiku_shared.kernel.errors, kaiku_shared.http, and
# cards' own RuleViolation/NotFound/Forbidden, which its api maps the same way).
BASE_MAKERS = {
    "RuleViolation": Maker(0, "rule"),
    "conflict": Maker(0, "kind"),
    "unprocessable": Maker(0, "kind"),
    "NotFound": Maker(0, "what", "what"),
    "not_found": Maker(0, "what", "what"),
    "Forbidden": Maker(1, "rule", default="not-yours"),
    "Problem": Maker(1, "title", "title"),
}

# Kinds made from a value the call does not spell out: (callee, argument's source)
# → the kinds it can be. Empty when the call makes no problem+json at all.
INDIRECT: dict[tuple[str, str], set[str]] = {
    ("Problem", '_HTTP_TITLES.get(exc.status_code, "Request refused")'): {
        *(title.lower().replace(" ", "-") for title in _HTTP_TITLES.values()),
        "request-refused"},
    # Set only to one of these two (venues' domain: Offering.card_tickets_excluded).
    ("RuleViolation", "self.card_tickets_excluded"): {"production-excluded",
                                                      "weekend-excluded"},
}


@dataclass(frozen=True)
class Found:
    kind: str
    where: str
    english: str
    # The English detail (7 standing for each value); when the call names it by
    # a variable, every text the function assigns.
    samples: tuple[str, ...] = ()


def _kind_of(maker: Maker, value: str) -> str:
    if maker.shape == "what":
        return f"{value.lower()}-not-found"
    if maker.shape == "title":
        return value.lower().replace(" ", "-")
    return value


def _callee(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else \
        func.attr if isinstance(func, ast.Attribute) else None


def _argument(call: ast.Call, maker: Maker) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == maker.keyword:
            return keyword.value
    if maker.shape == "title":  # Problem(..., kind=...) overrides the title
        kind = next((k.value for k in call.keywords if k.arg == "kind"), None)
        if kind is not None:
            return kind
    position = maker.position
    if position is None or any(isinstance(a, ast.Starred) for a in call.args[:position + 1]):
        return None
    return call.args[position] if position < len(call.args) else None


def _passes_on(node: ast.expr) -> bool:
    """``error.rule``, ``error.what.capitalize()``: a kind already made elsewhere."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            node.func.attr in ("capitalize", "lower", "title"):
        node = node.func.value
    return isinstance(node, ast.Attribute) and node.attr in ("rule", "what", "kind")


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    names = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
    return names[1:] if names and names[0] in ("self", "cls") else names


def _functions(tree: ast.Module) -> Iterator[tuple[ast.AST, list[str]]]:
    """Every function (with its parameters) and the module's own statements."""
    yield tree, []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, _parameters(node)


def _own_calls(scope: ast.AST) -> Iterator[ast.Call]:
    """The calls in ``scope``, not those of functions nested in it."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _modules() -> list[tuple[str, ast.Module, str]]:
    found = []
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            text = path.read_text("utf-8")
            found.append((path.relative_to(REPO).as_posix(), ast.parse(text), text))
    return found


def _rule_keepers(modules: list[tuple[str, ast.Module, str]]) -> dict[str, Maker]:
    """Exception classes whose ``__init__`` keeps a parameter as ``self.rule``."""
    keepers = {}
    for _, tree, _ in modules:
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef) or node.name in BASE_MAKERS:
                continue
            init = next((f for f in node.body
                         if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
            if init is None:
                continue
            parameters = _parameters(init)
            for statement in ast.walk(init):
                if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Name) \
                        and statement.value.id in parameters and any(
                            isinstance(t, ast.Attribute) and t.attr == "rule"
                            for t in statement.targets):
                    keepers[node.name] = Maker(parameters.index(statement.value.id),
                                               statement.value.id)
    return keepers


def _constants(tree: ast.Module) -> dict[str, str]:
    """The module's ``NAME = "text"`` assignments."""
    return {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets if isinstance(target, ast.Name)}


def _makers(modules: list[tuple[str, ast.Module, str]]) -> dict[str, Maker]:
    """The base makers plus every function that hands a parameter on as a kind."""
    makers = {**BASE_MAKERS, **_rule_keepers(modules)}
    changed = True
    while changed:
        changed = False
        for _, tree, _ in modules:
            for function, parameters in _functions(tree):
                name = getattr(function, "name", None)
                if name is None or name in makers:
                    continue
                for call in _own_calls(function):
                    maker = makers.get(_callee(call) or "")
                    argument = _argument(call, maker) if maker else None
                    if isinstance(argument, ast.Name) and argument.id in parameters:
                        makers[name] = Maker(parameters.index(argument.id), argument.id,
                                             maker.shape)
                        changed = True
                        break
    return makers


def _english(call: ast.Call, text: str) -> str:
    rest = [a for a in call.args if isinstance(a, (ast.Constant, ast.JoinedStr, ast.BinOp))]
    return " ".join(ast.get_source_segment(text, a) or "" for a in rest)[:300]


def _sample(node: ast.expr) -> tuple[str, ...]:
    """The texts an f-string, concatenation or ``a if … else b`` can make, with
    7 for each value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    if isinstance(node, ast.JoinedStr):
        return ("".join(v.value if isinstance(v, ast.Constant) else "7"
                        for v in node.values),)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return tuple(left + right for left in _sample(node.left)
                     for right in _sample(node.right))
    if isinstance(node, ast.IfExp):
        return (*_sample(node.body), *_sample(node.orelse))
    return ()


def _samples(call: ast.Call, assigned: tuple[str, ...]) -> tuple[str, ...]:
    """The detail among the arguments: the longest texts with a space in them."""
    texts = [t for t in map(_sample, [*call.args, *(k.value for k in call.keywords)])
             if t and " " in t[0]]
    return max(texts, key=lambda t: len(t[0])) if texts else assigned


def _assigned_texts(function: ast.AST) -> tuple[str, ...]:
    return tuple(text for node in ast.walk(function) if isinstance(node, ast.Assign)
                 for text in _sample(node.value) if " " in text)


@cache
def scan() -> tuple[list[Found], list[str]]:
    """Every kind made in the sources, and the calls whose kind cannot be read."""
    modules = _modules()
    makers = _makers(modules)
    found: list[Found] = []
    unresolved: list[str] = []
    for path, tree, text in modules:
        constants = _constants(tree)
        for function, parameters in _functions(tree):
            if getattr(function, "name", None) in BASE_MAKERS:
                continue  # the definitions themselves
            assigned = _assigned_texts(function) if parameters or function is not tree else ()
            for call in _own_calls(function):
                callee = _callee(call) or ""
                maker = makers.get(callee)
                if maker is None:
                    continue
                where = f"{path}:{call.lineno}"
                argument = _argument(call, maker)
                if argument is None:
                    if maker.default is not None:
                        found.append(Found(maker.default, where, _english(call, text),
                                           _samples(call, assigned)))
                    elif any(isinstance(a, ast.Starred) for a in call.args):
                        unresolved.append(f"{where}: {ast.get_source_segment(text, call)}")
                    continue
                if isinstance(argument, ast.Name) and argument.id not in parameters and \
                        argument.id in constants:
                    argument = ast.Constant(constants[argument.id])
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.append(Found(_kind_of(maker, argument.value), where,
                                       _english(call, text), _samples(call, assigned)))
                    continue
                if isinstance(argument, ast.Name) and argument.id in parameters \
                        or _passes_on(argument):
                    continue
                source = ast.get_source_segment(text, argument) or ""
                if (callee, source) in INDIRECT:
                    found.extend(Found(kind, where, "", _samples(call, assigned))
                                 for kind in INDIRECT[callee, source])
                    continue
                unresolved.append(f"{where}: {callee}({source}, …)")
    return found, unresolved


def test_the_scan_finds_the_kinds_made_every_way() -> None:
    kinds = {f.kind for f in scan()[0]}
    # One of each way: a rule, a What, a Forbidden's default and its rule=, a
    # title's slug, a kind=, a wrapper's caller (notifications' refused(), venues' _get()).
    assert {"card-closed", "card-not-found", "not-yours", "current-password-needed",
            "signin-refused", "venue-not-found", "busy", "validation"} <= kinds
    assert {"method-not-allowed", "weekend-excluded"} <= kinds


def test_every_kind_made_can_be_read_from_the_source() -> None:
    unresolved = scan()[1]
    assert not unresolved, (
        "These calls make a problem kind the catalogue test cannot read; spell the "
        "kind out, or list the argument in INDIRECT (tests/unit/test_problem_catalogue.py) "
        "with the kinds it can be:\n  " + "\n  ".join(unresolved))


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_every_kind_has_a_title_and_a_detail(language: str) -> None:
    entries = catalogue(language)
    missing: dict[str, list[str]] = {}
    for found in scan()[0]:
        entry = entries.get(found.kind) or {}
        if not (entry.get("title") and entry.get("detail")):
            missing.setdefault(found.kind, []).append(f"{found.where}  {found.english}")
    assert not missing, (
        f"Kinds without a {language} title and detail in "
        f"shared/src/kaiku_shared/problems/{language}.json:\n" + "\n".join(
            f"  {kind}: {places[0]}" for kind, places in sorted(missing.items())))


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_the_catalogue_holds_only_well_formed_entries(language: str) -> None:
    for kind, entry in catalogue(language).items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", kind), kind
        assert set(entry) <= {"title", "detail", "details"}, kind
        assert entry["detail"].rstrip().endswith((".", "!", "?")), kind
        assert "{" not in entry["detail"], kind  # values only in ``details``
        for variant in entry.get("details", ()):
            names = set(re.compile(variant["en"]).groupindex)
            used = set(re.findall(r"{(\w+)}", variant["detail"]))
            assert used <= names, (kind, variant)


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_every_specific_sentence_matches_an_english_detail_in_the_source(language: str) -> None:
    """A ``details`` pattern that no longer matches (its English was reworded)
    would silently fall back to the general sentence: say so instead."""
    samples: dict[str, list[str]] = {}
    for found in scan()[0]:
        samples.setdefault(found.kind, []).extend(found.samples)
    stale = [(kind, variant["en"]) for kind, entry in catalogue(language).items()
             for variant in entry.get("details", ())
             if not any(re.fullmatch(variant["en"], sample, flags=re.DOTALL)
                        for sample in samples.get(kind, ()))]
    assert not stale, "Patterns matching no English detail in the sources:\n" + "\n".join(
        f"  {kind}: {pattern}" for kind, pattern in stale)


def test_finnish_and_swedish_hold_the_same_kinds() -> None:
    assert set(catalogue("fi")) == set(catalogue("sv"))


if __name__ == "__main__":
    found, unresolved = scan()
    by_kind: dict[str, list[Found]] = {}
    for item in found:
        by_kind.setdefault(item.kind, []).append(item)
    only_missing = "--missing" in sys.argv
    for kind, items in sorted(by_kind.items()):
        if only_missing and kind in catalogue("fi") and kind in catalogue("sv"):
            continue
        print(kind)
        for item in items:
            print(f"    {item.where}  {item.english}")
    for line in unresolved:
        print("UNRESOLVED", line)
