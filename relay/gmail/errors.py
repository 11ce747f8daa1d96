"""Errors raised by the Gmail filter library.

The tree::

    GmailError
     ├── QuerySyntaxError   a query that does not parse (column, expected)
     └── RuleFileError      a rules, mailFilters.xml or filter-test file that is invalid
"""

from __future__ import annotations

__all__ = ["GmailError", "QuerySyntaxError", "RuleFileError"]


class GmailError(Exception):
    """Root of the errors this library raises."""


class QuerySyntaxError(GmailError, ValueError):
    """A search query that does not parse.

    ``column`` is 1-based and points into ``query``; ``expected`` says what the parser
    wanted to find there.
    """

    def __init__(self, query: str, column: int, expected: str) -> None:
        super().__init__(query, column, expected)
        self.query = query
        self.column = column
        self.expected = expected

    def __str__(self) -> str:
        return f"{self.query!r} column {self.column}: expected {self.expected}"

    def caret(self) -> str:
        """Return the query and a caret under the column, as two lines."""
        return f"{self.query}\n{' ' * (self.column - 1)}^"


class RuleFileError(GmailError, ValueError):
    """A rules, mailFilters.xml or test file that cannot be used; ``where`` names the place."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)
        self.where = where
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"
