"""Gmail query syntax tree -> SQL conditions over the capture index (pure).

The index does not hold all that the evaluator reads, so each node compiles to two
conditions: ``upper``, which every matching message meets, and ``lower``, which only
matching messages meet. Where the index holds what a node reads, they are the same and the
node is exact; rows between the two are checked with :func:`relay.gmail.matches`. ``Not``
swaps the bounds, ``And`` and ``Or`` combine them. Words and phrases become FTS5 queries
over the tokens :mod:`relay.capture.entry` stored, so they are exact.

Tables: ``m`` (messages), ``s`` (the chosen recipient's state), ``words`` (FTS5),
``addresses`` (field, folded address, domain).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from relay.capture.entry import reversed_domain
from relay.gmail import Field, MessageState, MessageView, matches
from relay.gmail.addresses import canonical_address
from relay.gmail.ast import And, Around, Node, Not, Or, Term
from relay.gmail.operators import (
    ADDRESS_OPERATORS,
    AGE_OPERATORS,
    DATE_OPERATORS,
    SIZE_OPERATORS,
    STATE_HAS,
    STATE_OPERATORS,
    parse_age,
    parse_date,
    parse_size,
)
from relay.gmail.terms import Pattern, compile_term
from relay.gmail.words import fold, tokenize

__all__ = ["FALSE", "TRUE", "Bounds", "Scope", "Sql", "bounds"]


@dataclass(frozen=True, slots=True)
class Sql:
    """A boolean SQL expression and its ``?`` parameters, in order."""

    text: str
    params: tuple[object, ...] = ()


TRUE = Sql("1")
FALSE = Sql("0")


@dataclass(frozen=True, slots=True)
class Bounds:
    """``lower`` implies a match, a match implies ``upper``."""

    upper: Sql
    lower: Sql

    @property
    def exact(self) -> bool:
        """True when the index alone decides the query."""
        return self.upper == self.lower


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """What a query is evaluated against.

    ``recipient`` (folded) is whose view state operators read and whom ``me`` means;
    ``states`` maps each state key occurring in that recipient's rows to its state
    (without a recipient: the arrival state only, under the key ``""``).
    """

    now: dt.datetime
    timezone: dt.tzinfo
    recipient: str | None = None
    states: Mapping[str, MessageState] = field(default_factory=lambda: {"": MessageState()})


#: FTS columns searched by a bare word, and by a word inside each text operator.
_ANYWHERE = ("subject", "body", "filename", "f_from", "f_to", "f_cc", "f_bcc", "f_list")
_TEXT_COLUMNS = {"subject": ("subject",), "filename": ("filename",)}
#: to: also covers Cc, Bcc and the list address (as relay.gmail does); others their own field.
_ADDRESS_SCOPES = {"to": ("to", "cc", "bcc", "list")}
_MATCH = "m.n IN (SELECT rowid FROM words WHERE words MATCH ?)"
_BLANK = MessageView.from_bytes(b"")
_UNKNOWN = Bounds(TRUE, FALSE)


def bounds(node: Node, scope: Scope) -> Bounds:
    """Compile ``node`` for the index, as seen from ``scope``."""
    return _node(node, scope, None)


def _node(node: Node, scope: Scope, name: str | None) -> Bounds:
    if isinstance(node, And | Or):
        parts = [_node(operand, scope, name) for operand in node.operands]
        join = _all if isinstance(node, And) else _any
        return Bounds(join([p.upper for p in parts]), join([p.lower for p in parts]))
    if isinstance(node, Not):
        inner = _node(node.operand, scope, name)
        return Bounds(_negate(inner.lower), _negate(inner.upper))
    if isinstance(node, Field):
        return _node(node.value, scope, node.name)
    if isinstance(node, Around):
        return _around(node, name)
    return _term(node, scope, name)


def _term(term: Term, scope: Scope, name: str | None) -> Bounds:
    if name is None or name in _TEXT_COLUMNS:
        return _exact(_words(_TEXT_COLUMNS.get(name or "", _ANYWHERE), compile_term(term)))
    if name in ADDRESS_OPERATORS:
        return _address(name, term, scope)
    value = term.text.strip()
    if name in SIZE_OPERATORS:
        return _exact(Sql(f"m.size {'<' if name == 'smaller' else '>'} ?", (parse_size(value),)))
    if name in DATE_OPERATORS:
        return _exact(_arrival(">=" if name == "after" else "<", _date_bound(value, scope)))
    if name in AGE_OPERATORS:
        return _age(name, value, scope)
    if name == "rfc822msgid":
        return _exact(Sql("m.message_id = ?", (fold(value.strip("<>")),)))
    if name == "has" and value.lower() == "attachment":
        return _exact(Sql("m.attachments > 0"))
    if name in STATE_OPERATORS or (name == "has" and value.lower() in STATE_HAS):
        return _exact(_state(Field(name, term), scope))
    return _UNKNOWN  # has:drive, has:youtube ... read the body text: checked one by one


def _address(operator: str, term: Term, scope: Scope) -> Bounds:
    """The value kinds of :mod:`relay.gmail.addresses`: words, me, address, local@, @domain."""
    fields = _ADDRESS_SCOPES.get(operator, (operator,))
    columns = tuple(f"f_{name}" for name in fields)
    value = term.text.strip()
    if operator == "list":
        value = value.replace("@", ".")
    if " " in value or "@" not in value:
        words = _words(columns, compile_term(term))
        if value.casefold() != "me" or scope.recipient is None:
            return _exact(words)
        mine = _any([_addresses("address", scope.recipient, fields), words])
        gmail = canonical_address(scope.recipient).endswith("@gmail.com")  # b.ob+x@ is bob@
        return Bounds(TRUE if gmail else mine, mine)
    if value.endswith("@"):
        phrase = tokenize(value[:-1])
        return Bounds(_words(columns, Pattern(((phrase,),))), FALSE) if phrase else _exact(FALSE)
    if value.startswith(("@", "*@")):
        domain = value.lstrip("*@")
        phrase = tokenize(domain)
        if not phrase:
            return _exact(FALSE)
        upper = _words(columns, Pattern(((phrase,),)))
        return Bounds(upper, _domain(fold(domain), fields))
    exact = _addresses("address", fold(value), fields)
    own = canonical_address(value)
    folding = own.endswith("@gmail.com") and scope.recipient is not None
    folding = folding and own == canonical_address(scope.recipient or "")
    return Bounds(TRUE if folding else exact, exact)


def _around(node: Around, name: str | None) -> Bounds:
    """Both sides within the distance: FTS5 NEAR, which may also match across two texts."""
    if name is None or name in _TEXT_COLUMNS:
        columns = _TEXT_COLUMNS.get(name or "", _ANYWHERE)
    elif name in ADDRESS_OPERATORS:
        columns = (f"f_{name}",)
    else:
        return _exact(FALSE)
    left, right = tokenize(node.left.text), tokenize(node.right.text)
    if not left or not right:
        return _exact(FALSE)
    near = f"{{{' '.join(columns)}}} : NEAR({_phrase(left)} {_phrase(right)}, {node.distance})"
    return Bounds(Sql(_MATCH, (near,)), FALSE)


def _age(name: str, value: str, scope: Scope) -> Bounds:
    """older_than:/newer_than: from ``scope.now``; calendar months are 28 to 31 days long."""
    count, unit = parse_age(value)
    now = scope.now.astimezone(scope.timezone)
    if unit == "d":
        early = late = now - dt.timedelta(days=count)  # the evaluator's own arithmetic
    else:
        months = count * (12 if unit == "y" else 1)
        early = now - dt.timedelta(days=31 * months + 1)
        late = now - dt.timedelta(days=28 * months - 1)
    if name == "newer_than":
        return Bounds(_arrival(">", early), _arrival(">", late))
    return Bounds(_arrival("<", late), _arrival("<", early))


def _date_bound(value: str, scope: Scope) -> dt.datetime:
    parsed = parse_date(value)
    if isinstance(parsed, int):
        return dt.datetime.fromtimestamp(parsed, dt.UTC)
    return dt.datetime.combine(parsed, dt.time(), scope.timezone)


def _arrival(operator: str, bound: dt.datetime) -> Sql:
    return Sql(f"(m.arrival IS NOT NULL AND m.arrival {operator} ?)", (bound.timestamp(),))


def _state(leaf: Field, scope: Scope) -> Sql:
    """The recipient's states for which the evaluator says yes (each tried on a blank view)."""
    keys = [
        key for key, state in scope.states.items() if matches(leaf, replace(_BLANK, state=state))
    ]
    if len(keys) == len(scope.states):
        return TRUE
    if not keys:
        return FALSE
    return Sql(f"s.state IN ({', '.join('?' * len(keys))})", tuple(keys))


def _addresses(column: str, value: str, fields: Sequence[str]) -> Sql:
    marks = ", ".join("?" * len(fields))
    return Sql(
        f"m.n IN (SELECT n FROM addresses WHERE {column} = ? AND field IN ({marks}))",
        (value, *fields),
    )


def _domain(domain: str, fields: Sequence[str]) -> Sql:
    """Addresses in ``domain`` or a subdomain: then the domain's words end with its words.

    Not for a domain starting with a digit: ``a1.2b.org`` is the words ``a1.2b org``.
    """
    key = reversed_domain(f"@{domain}")
    if domain[:1].isdigit():
        return _addresses("domain", key, fields)
    marks = ", ".join("?" * len(fields))
    return Sql(
        f"m.n IN (SELECT n FROM addresses WHERE domain >= ? AND domain < ? AND field IN ({marks}))",
        (key, key + "\U0010ffff", *fields),
    )


def _words(columns: Sequence[str], pattern: Pattern) -> Sql:
    """Any alternative of ``pattern`` with each of its phrases in one of ``columns``."""
    if not pattern.alternatives:
        return FALSE
    alternatives = " OR ".join(
        f"({' AND '.join(_phrase(phrase) for phrase in alternative)})"
        for alternative in pattern.alternatives
    )
    return Sql(_MATCH, (f"{{{' '.join(columns)}}} : ({alternatives})",))


def _phrase(tokens: Sequence[str]) -> str:
    return '"' + " ".join(tokens) + '"'  # tokens are word characters: nothing to escape


def _exact(sql: Sql) -> Bounds:
    return Bounds(sql, sql)


def _all(parts: Sequence[Sql]) -> Sql:
    if FALSE in parts:
        return FALSE
    return _join(" AND ", [part for part in parts if part != TRUE], TRUE)


def _any(parts: Sequence[Sql]) -> Sql:
    if TRUE in parts:
        return TRUE
    return _join(" OR ", [part for part in parts if part != FALSE], FALSE)


def _join(operator: str, parts: Sequence[Sql], empty: Sql) -> Sql:
    if not parts:
        return empty
    if len(parts) == 1:
        return parts[0]
    params = tuple(param for part in parts for param in part.params)
    return Sql(f"({operator.join(part.text for part in parts)})", params)


def _negate(part: Sql) -> Sql:
    if part in (TRUE, FALSE):
        return FALSE if part == TRUE else TRUE
    return Sql(f"(NOT {part.text})", part.params)
