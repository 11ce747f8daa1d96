"""Gmail search queries and filters, evaluated locally: parse, match, explain, apply.

A library of its own: it depends on nothing else in the relay (stdlib and PyYAML only).
"""

from relay.gmail.ast import And, Around, Field, Node, Not, Or, Term
from relay.gmail.checks import CheckOutcome, CheckReport, run_checks
from relay.gmail.errors import GmailError, QuerySyntaxError, RuleFileError
from relay.gmail.evaluate import DEFAULT_TIMEZONE, explain, matches
from relay.gmail.filters import (
    Actions,
    Conflict,
    Criteria,
    Filter,
    FilterResult,
    Mode,
    RuleSet,
    apply_filters,
    make_filter,
)
from relay.gmail.lexer import QueryWarning
from relay.gmail.mailfilters import read_mailfilters, write_mailfilters
from relay.gmail.parser import ParsedQuery, parse, parse_query
from relay.gmail.printer import format_query
from relay.gmail.rules import dump_rules, load_rules, read_rules
from relay.gmail.view import Attachment, Mailbox, MessageState, MessageView

__all__ = [
    "DEFAULT_TIMEZONE",
    "Actions",
    "And",
    "Around",
    "Attachment",
    "CheckOutcome",
    "CheckReport",
    "Conflict",
    "Criteria",
    "Field",
    "Filter",
    "FilterResult",
    "GmailError",
    "Mailbox",
    "MessageState",
    "MessageView",
    "Mode",
    "Node",
    "Not",
    "Or",
    "ParsedQuery",
    "QuerySyntaxError",
    "QueryWarning",
    "RuleFileError",
    "RuleSet",
    "Term",
    "apply_filters",
    "dump_rules",
    "explain",
    "format_query",
    "load_rules",
    "make_filter",
    "matches",
    "parse",
    "parse_query",
    "read_mailfilters",
    "read_rules",
    "run_checks",
    "write_mailfilters",
]
