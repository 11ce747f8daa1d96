"""Syntax tree -> query text that parses back to the same tree."""

from __future__ import annotations

from relay.gmail.ast import And, Around, Field, Node, Not, Or, Term

__all__ = ["format_query"]


def format_query(node: Node) -> str:
    """Return query text for ``node``; ``parse_query(format_query(n)) == n``."""
    if isinstance(node, Term):
        return _term(node)
    if isinstance(node, Around):
        if node.ordered:
            return f'"{node.left.text} AROUND {node.distance} {node.right.text}"'
        return f"{_term(node.left)} AROUND {node.distance} {_term(node.right)}"
    if isinstance(node, Field):
        value = format_query(node.value)
        return f"{node.name}:{value if isinstance(node.value, Term) else f'({value})'}"
    if isinstance(node, Not):
        return f"-{_operand(node.operand)}"
    if isinstance(node, And):
        return " ".join(_operand(operand) for operand in node.operands)
    return " OR ".join(_operand(operand) for operand in node.operands)


def _term(term: Term) -> str:
    if term.quoted:
        return f'"{term.text}"'
    return f"+{term.text}" if term.exact else term.text


def _operand(node: Node) -> str:
    """Format a node that stands inside another one, in parentheses unless it is atomic."""
    text = format_query(node)
    return f"({text})" if isinstance(node, And | Or | Around) else text
