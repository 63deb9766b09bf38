"""A small WQL parser for what WinRM clients send, and its evaluation against instances.

``SELECT * | prop[, prop...] FROM class [WHERE condition]``, where a condition combines
``prop op value`` (op ``=``, ``<>``, ``!=``, ``<``, ``>``, ``<=``, ``>=``, ``LIKE``),
``prop IS [NOT] NULL``, ``NOT``, ``AND``, ``OR`` and parentheses; values are integers, quoted
strings, TRUE, FALSE or NULL. Keywords, class and property names are case-insensitive, and so are
string comparisons, as in WMI. Anything else raises :class:`WqlError` (WMI's WBEM_E_INVALID_QUERY).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class WqlError(ValueError):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<number>-?\d+(?:\.\d+)?)|(?P<string>'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")"
    r"|(?P<op><>|!=|<=|>=|=|<|>)|(?P<punct>[(),*])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE", "LIKE"})

Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Query:
    class_name: str
    properties: tuple[str, ...] | None  # None for SELECT *
    where: Predicate | None
    text: str

    def matches(self, properties: Mapping[str, Any]) -> bool:
        return self.where is None or self.where(properties)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise WqlError(f"unexpected text at {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "word" and value.upper() in _KEYWORDS:
            kind, value = "keyword", value.upper()
        tokens.append((kind, value))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, known: Callable[[str], str | None]) -> None:
        self.tokens = _tokens(text)
        self.position = 0
        self.known = known  # property name (any case) -> its spelling, None if the class lacks it

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            wanted = value or kind
            raise WqlError(f"expected {wanted}, found {token[1] if token else 'the end'}")
        self.position += 1
        return token[1]

    def accept(self, kind: str, value: str | None = None) -> bool:
        token = self.peek()
        if token is not None and token[0] == kind and (value is None or token[1] == value):
            self.position += 1
            return True
        return False

    def property(self) -> str:
        name = self.take("word")
        spelled = self.known(name)
        if spelled is None:
            raise WqlError(f"the class has no property {name!r}")
        return spelled

    def expression(self) -> Predicate:
        left = self.conjunction()
        while self.accept("keyword", "OR"):
            right = self.conjunction()
            left = _either(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.negation()
        while self.accept("keyword", "AND"):
            right = self.negation()
            left = _both(left, right)
        return left

    def negation(self) -> Predicate:
        if self.accept("keyword", "NOT"):
            inner = self.negation()
            return lambda p: not inner(p)
        if self.accept("punct", "("):
            inner = self.expression()
            self.take("punct", ")")
            return inner
        return self.comparison()

    def literal(self) -> Any:
        token = self.peek()
        if token is None:
            raise WqlError("expected a value, found the end")
        kind, value = token
        self.position += 1
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "string":
            quote = value[0]
            return value[1:-1].replace(quote * 2, quote)
        if kind == "keyword" and value in ("TRUE", "FALSE"):
            return value == "TRUE"
        if kind == "keyword" and value == "NULL":
            return None
        raise WqlError(f"expected a value, found {value}")

    def comparison(self) -> Predicate:
        name = self.property()
        if self.accept("keyword", "IS"):
            negate = self.accept("keyword", "NOT")
            self.take("keyword", "NULL")
            return lambda p: (p.get(name) is None) != negate
        if self.accept("keyword", "LIKE"):
            pattern = self.literal()
            if not isinstance(pattern, str):
                raise WqlError("LIKE needs a string")
            regex = re.compile(_like(pattern), re.IGNORECASE | re.DOTALL)
            return lambda p: isinstance(p.get(name), str) and regex.fullmatch(str(p.get(name))) is not None
        op = self.take("op")
        value = self.literal()
        return lambda p: _compare(p.get(name), op, value)


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda p: a(p) or b(p)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda p: a(p) and b(p)


def _like(pattern: str) -> str:
    out = []
    for char in pattern:
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return "".join(out)


def _normal(value: Any) -> Any:
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value.lower() if isinstance(value, str) else value


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if actual is None or expected is None:
        return False
    if isinstance(actual, list):  # an array property matches when any element does
        return any(_compare(item, op, expected) for item in actual)
    left, right = _normal(actual), _normal(expected)
    if isinstance(left, bool) or isinstance(right, bool):
        if op not in ("=", "<>", "!="):
            return False
        left, right = bool(left), bool(right)
    elif isinstance(left, (int, float)) != isinstance(right, (int, float)):
        try:
            left, right = float(left), float(right)
        except (TypeError, ValueError):
            return op in ("<>", "!=")
    try:
        return bool(
            {
                "=": left == right,
                "<>": left != right,
                "!=": left != right,
                "<": left < right,
                ">": left > right,
                "<=": left <= right,
                ">=": left >= right,
            }[op]
        )
    except TypeError:
        return False


def parse(text: str, properties_of: Callable[[str], Mapping[str, Any] | None]) -> Query:
    """Parse ``text``; ``properties_of(class)`` gives the class's property table, None if unknown.

    Raises WqlError for bad syntax, and LookupError naming the class when it does not exist.
    """
    head = _tokens(text)
    if len(head) < 4 or head[0] != ("keyword", "SELECT"):
        raise WqlError("a WQL query starts SELECT ... FROM class")
    try:
        from_at = head.index(("keyword", "FROM"))
    except ValueError as exc:
        raise WqlError("a WQL query needs FROM") from exc
    if from_at + 1 >= len(head) or head[from_at + 1][0] != "word":
        raise WqlError("FROM needs a class name")
    class_name = head[from_at + 1][1]
    table = properties_of(class_name)
    if table is None:
        raise LookupError(class_name)
    folded = {name.lower(): name for name in table}
    parser = _Parser(text, lambda name: folded.get(name.lower()))
    parser.take("keyword", "SELECT")
    selected: tuple[str, ...] | None
    if parser.accept("punct", "*"):
        selected = None
    else:
        names = [parser.property()]
        while parser.accept("punct", ","):
            names.append(parser.property())
        selected = tuple(names)
    parser.take("keyword", "FROM")
    parser.take("word")
    where = None
    if parser.accept("keyword", "WHERE"):
        where = parser.expression()
    if parser.peek() is not None:
        raise WqlError(f"unexpected {parser.peek()[1]!r} after the query")  # type: ignore[index]
    return Query(class_name, selected, where, text)
