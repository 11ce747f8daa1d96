"""Gmail filters: criteria, actions, and what a set of filters does to a message (spec §4)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.gmail.ast import And, Field, Node, Not, Or, Term
from relay.gmail.evaluate import DEFAULT_TIMEZONE, label_key, matcher
from relay.gmail.operators import AGE_OPERATORS, STATE_HAS, STATE_OPERATORS
from relay.gmail.parser import parse
from relay.gmail.printer import format_query
from relay.gmail.view import MessageState, MessageView

__all__ = [
    "CATEGORIES",
    "Actions",
    "Conflict",
    "Criteria",
    "Filter",
    "FilterResult",
    "Mode",
    "RuleSet",
    "apply_filters",
    "make_filter",
    "merge_actions",
]

#: Filter categories (gmailctl's names) -> the ``category:`` search name they set.
CATEGORIES = {
    "personal": "primary",
    "social": "social",
    "updates": "updates",
    "forums": "forums",
    "promotions": "promotions",
    "purchases": "purchases",
}


class Mode(enum.Enum):
    """How filters see state: all at arrival (``pure``) or one after another (``sequential``)."""

    PURE = "pure"
    SEQUENTIAL = "sequential"


@dataclass(frozen=True, slots=True, kw_only=True)
class Criteria:
    """What a filter matches, as Gmail stores it (API names; ``size`` in bytes).

    ``query`` is "Has the words" (``hasTheWord``), ``negated_query`` "Doesn't have"
    (``doesNotHaveTheWord``), read as ``-{...}`` like gmailctl's importer (spec §4.4).
    """

    from_: str = ""
    to: str = ""
    subject: str = ""
    query: str = ""
    negated_query: str = ""
    has_attachment: bool = False
    exclude_chats: bool = False
    size: int | None = None
    size_comparison: str = "larger"

    def node(self) -> tuple[Node, tuple[str, ...]]:
        """Return the query these criteria are equivalent to, and the parser's warnings.

        Raises QuerySyntaxError for a malformed value and ValueError when nothing is set.
        """
        parts: list[Node] = []
        warnings: list[str] = []

        def parsed(text: str) -> Node:
            result = parse(text)
            warnings.extend(f"{text!r} column {w.column}: {w.message}" for w in result.warnings)
            return result.node

        for name, value in (("from", self.from_), ("to", self.to), ("subject", self.subject)):
            if value.strip():
                parts.append(Field(name, parsed(value)))
        if self.query.strip():
            parts.append(parsed(self.query))
        if self.negated_query.strip():
            excluded = parsed(self.negated_query)
            parts.append(Not(Or(excluded.operands) if isinstance(excluded, And) else excluded))
        if self.has_attachment:
            parts.append(Field("has", Term("attachment")))
        if self.size is not None:
            parts.append(Field(self.size_comparison, Term(str(self.size))))
        if not parts:
            raise ValueError("a filter needs at least one criterion")
        return (parts[0] if len(parts) == 1 else And(tuple(parts))), tuple(warnings)


@dataclass(frozen=True, slots=True, kw_only=True)
class Actions:
    """What a filter does (gmailctl's vocabulary); ``important`` None leaves it to Gmail."""

    archive: bool = False
    delete: bool = False
    mark_read: bool = False
    star: bool = False
    never_spam: bool = False
    important: bool | None = None
    category: str | None = None
    labels: tuple[str, ...] = ()
    forward: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Filter:
    """One filter: criteria, actions, an optional name, and the compiled query."""

    criteria: Criteria
    actions: Actions
    name: str = ""
    node: Node = field(default=Term(""), compare=False, repr=False)
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The filters of one rules file, in order, and how to apply them."""

    filters: tuple[Filter, ...]
    mode: Mode = Mode.PURE
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Conflict:
    """Filters that disagree (important or not, two categories, several forward targets)."""

    action: str
    values: tuple[Any, ...]
    filters: tuple[int, ...]
    chosen: Any

    def __str__(self) -> str:
        shown = ", ".join(map(str, self.values))
        numbers = ", ".join(f"#{i + 1}" for i in self.filters)
        return (
            f"{self.action}: filters {numbers} disagree ({shown}); "
            f"Gmail's choice is undefined, using {self.chosen}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterResult:
    """The message as Gmail would show it after its filters ran.

    ``archived``: it skipped the inbox; ``in_inbox``: it shows there (not archived, not in
    Trash or Spam); ``matched``: (0-based index, name) of each filter that fired.
    """

    matched: tuple[tuple[int, str], ...]
    actions: Actions
    labels: tuple[str, ...]
    archived: bool
    in_inbox: bool
    read: bool
    starred: bool
    important: bool
    category: str | None
    trashed: bool
    never_spam: bool
    forwarded_to: tuple[str, ...]
    conflicts: tuple[Conflict, ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-able data."""
        return {
            "matched": [{"index": i + 1, "name": name} for i, name in self.matched],
            "labels": list(self.labels),
            "archived": self.archived,
            "in_inbox": self.in_inbox,
            "read": self.read,
            "starred": self.starred,
            "important": self.important,
            "category": self.category,
            "trashed": self.trashed,
            "never_spam": self.never_spam,
            "forwarded_to": list(self.forwarded_to),
            "conflicts": [str(conflict) for conflict in self.conflicts],
            "warnings": list(self.warnings),
        }


def make_filter(criteria: Criteria, actions: Actions, name: str = "") -> Filter:
    """Return a filter with its query compiled; raise like :meth:`Criteria.node`."""
    node, warnings = criteria.node()
    used = {format_query(f) for f in _fields(node) if _reads_state(f)}
    notes = [f"{query} sees the arrival state unless mode is sequential" for query in sorted(used)]
    ages = {f.name for f in _fields(node)} & AGE_OPERATORS
    notes += [f"{op}: is decided at arrival (newer true, older false)" for op in sorted(ages)]
    return Filter(criteria, actions, name, node, (*warnings, *notes))


def _reads_state(field: Field) -> bool:
    """``label: is: in: category:`` and the label and star forms of ``has:``."""
    if field.name == "has":
        return isinstance(field.value, Term) and field.value.text.lower() in STATE_HAS
    return field.name in STATE_OPERATORS


def apply_filters(
    ruleset: RuleSet,
    view: MessageView,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    mode: Mode | None = None,
) -> FilterResult:
    """Run every filter of ``ruleset`` on ``view`` as at arrival and return the outcome.

    All matching filters fire (spec §4.3). In ``pure`` mode each sees the arrival state; in
    ``sequential`` mode each sees the state the earlier ones left.
    """
    sequential = (mode or ruleset.mode) is Mode.SEQUENTIAL
    state = view.state
    fired: list[tuple[int, Filter]] = []
    test = matcher(view, timezone=timezone)
    for index, rule in enumerate(ruleset.filters):
        if test(rule.node):
            fired.append((index, rule))
            if sequential:
                state = _apply(state, rule.actions)
                test = matcher(dataclasses.replace(view, state=state), timezone=timezone)
    merged, conflicts = merge_actions([(index, rule.actions) for index, rule in fired])
    if not sequential:
        state = _apply(state, merged)
    warnings = [str(conflict) for conflict in conflicts]
    if merged.delete and merged.forward:
        warnings.append("the message is both deleted and forwarded; it is forwarded")
    return FilterResult(
        matched=tuple((index, rule.name) for index, rule in fired),
        actions=merged,
        labels=tuple(sorted(state.labels, key=label_key)),
        archived=not state.in_inbox,
        in_inbox=state.in_inbox and not (state.trashed or state.spam),
        read=not state.unread,
        starred=state.starred,
        important=state.important,
        category=state.category,
        trashed=state.trashed,
        never_spam=merged.never_spam,
        forwarded_to=merged.forward,
        conflicts=conflicts,
        warnings=tuple(warnings),
    )


def merge_actions(fired: Sequence[tuple[int, Actions]]) -> tuple[Actions, tuple[Conflict, ...]]:
    """Union the actions of the filters that fired; the last one wins a conflict (spec §4.3)."""
    labels: dict[str, str] = {}
    forward: dict[str, int] = {}
    settings: dict[str, list[tuple[int, Any]]] = {"important": [], "category": []}
    for index, actions in fired:
        for label in actions.labels:
            labels.setdefault(label_key(label), label)
        for address in actions.forward:
            forward.setdefault(address.casefold(), index)
        for name in settings:
            value = getattr(actions, name)
            if value is not None:
                settings[name].append((index, value))
    conflicts = [
        Conflict(
            name,
            tuple(dict.fromkeys(v for _, v in chosen)),
            tuple(i for i, _ in chosen),
            chosen[-1][1],
        )
        for name, chosen in settings.items()
        if len({value for _, value in chosen}) > 1
    ]
    if len(forward) > 1:
        conflicts.append(Conflict("forward", tuple(forward), tuple(forward.values()), "all"))
    merged = Actions(
        **{
            flag: any(getattr(a, flag) for _, a in fired)
            for flag in ("archive", "delete", "mark_read", "star", "never_spam")
        },
        important=settings["important"][-1][1] if settings["important"] else None,
        category=settings["category"][-1][1] if settings["category"] else None,
        labels=tuple(labels.values()),
        forward=tuple(forward),
    )
    return merged, tuple(conflicts)


def _apply(state: MessageState, actions: Actions) -> MessageState:
    """Apply ``actions`` in order: labels, category, star, importance, read, archive, trash."""
    known = {label_key(label) for label in state.labels}
    added = {label for label in actions.labels if label_key(label) not in known}
    return dataclasses.replace(
        state,
        labels=state.labels | added,
        category=CATEGORIES[actions.category] if actions.category else state.category,
        starred=state.starred or actions.star,
        important=state.important if actions.important is None else actions.important,
        unread=state.unread and not actions.mark_read,
        in_inbox=state.in_inbox and not actions.archive,
        trashed=state.trashed or actions.delete,
        spam=state.spam and not actions.never_spam,
    )


def _fields(node: Node) -> Iterator[Field]:
    if isinstance(node, Field):
        yield node
        yield from _fields(node.value)
    elif isinstance(node, Not):
        yield from _fields(node.operand)
    elif isinstance(node, And | Or):
        for operand in node.operands:
            yield from _fields(operand)
