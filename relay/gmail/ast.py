"""The query syntax tree: frozen nodes built by the parser and read by the evaluator."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["And", "Around", "Field", "Node", "Not", "Or", "Term"]


@dataclass(frozen=True, slots=True)
class Term:
    """A word (``quoted=False``) or a ``"quoted phrase"``; ``exact`` marks ``+word``."""

    text: str
    quoted: bool = False
    exact: bool = False


@dataclass(frozen=True, slots=True)
class Around:
    """``left AROUND n right``: at most ``distance`` words between them in one field.

    ``ordered`` (the whole expression was in quotes) requires ``left`` to come first.
    """

    left: Term
    right: Term
    distance: int = 5
    ordered: bool = False


@dataclass(frozen=True, slots=True)
class Field:
    """``name:value``: ``value`` (a term or a group) is matched in the operator's field."""

    name: str
    value: Node


@dataclass(frozen=True, slots=True)
class Not:
    """``-operand``."""

    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    """Two or more operands that must all match (juxtaposition, ``AND``, ``( )``)."""

    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Two or more operands of which one must match (``OR``, ``{ }``)."""

    operands: tuple[Node, ...]


Node = Term | Around | Field | Not | And | Or
