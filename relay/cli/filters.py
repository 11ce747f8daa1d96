"""``notify-relay filters``: match queries, apply and test filters, convert mailFilters.xml."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]

_TIMEZONE = "America/Los_Angeles"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``filters`` verb and its sub-verbs to ``subparsers``."""
    parser = subparsers.add_parser("filters", help="Gmail search queries and filters, locally")
    verbs = parser.add_subparsers(dest="filters_verb", metavar="SUBVERB", required=True)

    match = verbs.add_parser("match", help="print the messages a Gmail query matches (like grep)")
    match.add_argument("query", help="Gmail search query")
    match.add_argument("files", nargs="+", type=Path, metavar="FILE.eml", help="messages")
    match.add_argument("--explain", action="store_true", help="show how each part matched")
    match.add_argument("--json", action="store_true", help="with --explain: print JSON")
    match.add_argument(
        "--now", type=_instant, help="instant for older_than:/newer_than: (ISO 8601)"
    )
    _message_options(match)
    match.set_defaults(func=_match)

    apply = verbs.add_parser("apply", help="show what a rules file does to messages")
    apply.add_argument(
        "rules", type=Path, metavar="RULES.(yaml|xml)", help="YAML rules or mailFilters.xml"
    )
    apply.add_argument("files", nargs="+", type=Path, metavar="FILE.eml", help="messages")
    apply.add_argument("--json", action="store_true", help="print JSON")
    apply.add_argument("--mode", choices=("pure", "sequential"), help="override the file's mode")
    _param_option(apply)
    _message_options(apply)
    apply.set_defaults(func=_apply)

    test = verbs.add_parser("test", help="run filter tests from a YAML file")
    test.add_argument("tests", type=Path, metavar="TESTS.yaml", help="a filter-test file")
    test.set_defaults(func=_test)

    to_yaml = verbs.add_parser("import", help="convert mailFilters.xml to YAML rules")
    to_yaml.add_argument("source", type=Path, metavar="mailFilters.xml", help="Gmail's export")
    to_yaml.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    to_yaml.set_defaults(func=_import)

    to_xml = verbs.add_parser("export", help="convert YAML rules to mailFilters.xml")
    to_xml.add_argument("source", type=Path, metavar="RULES.yaml", help="a YAML rules file")
    to_xml.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    _param_option(to_xml)
    to_xml.set_defaults(func=_export)


def _message_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timezone", default=_TIMEZONE, help=f"zone of calendar dates ({_TIMEZONE})"
    )
    parser.add_argument(
        "--me",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="your address (the meaning of 'me'); repeatable",
    )
    parser.add_argument(
        "--received",
        type=_instant,
        metavar="ISO8601",
        help="arrival time of files without a Received header",
    )


def _param_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a ${NAME} parameter of the rules file; repeatable",
    )


def _instant(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _match(args: argparse.Namespace) -> int:
    from relay import gmail

    try:
        node = gmail.parse_query(args.query)
    except gmail.QuerySyntaxError as exc:
        print(f"{exc.caret()}\nexpected {exc.expected} (column {exc.column})", file=sys.stderr)
        return 2
    now = args.now or dt.datetime.now(dt.UTC)
    status = 1
    errors = False
    for path in args.files:
        view = _view(args, path)
        if view is None:
            errors = True
            continue
        if args.explain:
            tree = gmail.explain(node, view, now=now, timezone=args.timezone)
            print(
                json.dumps({"file": str(path), **tree}, ensure_ascii=False, indent=2)
                if args.json
                else f"{path}\n{_tree(tree, '  ')}"
            )
            matched = tree["matched"]
        else:
            matched = gmail.matches(node, view, now=now, timezone=args.timezone)
            if matched:
                print(path)
        status = 0 if matched else status
    return 2 if errors else status


def _apply(args: argparse.Namespace) -> int:
    from relay import gmail

    ruleset = _ruleset(args.rules, args.param)
    if ruleset is None:
        return 2
    mode = gmail.Mode(args.mode) if args.mode else None
    results = []
    for path in args.files:
        view = _view(args, path)
        if view is None:
            return 2
        result = gmail.apply_filters(ruleset, view, timezone=args.timezone, mode=mode)
        results.append({"file": str(path), **result.to_dict()})
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for entry in results:
            print(_describe(entry))
    return 0


def _test(args: argparse.Namespace) -> int:
    from relay import gmail

    try:
        report = gmail.run_checks(args.tests)
    except (gmail.GmailError, ValueError) as exc:
        print(f"notify-relay filters: {exc}", file=sys.stderr)
        return 2
    for outcome in report.outcomes:
        print(f"{'ok  ' if outcome.passed else 'FAIL'} {outcome.name}")
        for problem in outcome.problems:
            print(f"     {problem}")
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


def _import(args: argparse.Namespace) -> int:
    from relay import gmail

    ruleset = _ruleset(args.source, [])
    return 2 if ruleset is None else _write(args.output, gmail.dump_rules(ruleset))


def _export(args: argparse.Namespace) -> int:
    from relay import gmail

    ruleset = _ruleset(args.source, args.param)
    if ruleset is None:
        return 2
    xml = gmail.write_mailfilters(ruleset.filters, updated=dt.datetime.now(dt.UTC))
    return _write(args.output, xml)


def _view(args: argparse.Namespace, path: Path) -> Any:
    """Return the message view of ``path`` (None after reporting an unreadable file)."""
    import dataclasses

    from relay import gmail

    try:
        raw = path.read_bytes()
    except OSError as exc:
        print(f"notify-relay filters: {path}: {exc.strerror}", file=sys.stderr)
        return None
    view = gmail.MessageView.from_bytes(raw, user_addresses=args.me)
    if view.received_at is None and args.received is not None:
        view = dataclasses.replace(view, received_at=args.received)
    return view


def _ruleset(source: Path, param: list[str]) -> Any:
    """The rules in ``source`` with ``--param`` values (None after reporting why not)."""
    from relay import gmail

    try:
        return gmail.load_rules(source, params=_params(param))
    except (gmail.GmailError, ValueError) as exc:
        print(f"notify-relay filters: {exc}", file=sys.stderr)
        return None


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--param wants NAME=VALUE, got {pair!r}")
        params[name] = value
    return params


def _write(output: Path | None, text: str) -> int:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    return 0


def _tree(entry: dict[str, Any], indent: str) -> str:
    """Render an explanation as an indented tree: [x] matched, [ ] not."""
    mark = "[x]" if entry["matched"] else "[ ]"
    lines = [f"{indent}{mark} {entry['query']}"]
    for where in entry.get("where", []):
        lines.append(f"{indent}      {where['field']}: {where['text']}")
    if entry.get("detail"):
        lines.append(f"{indent}      {entry['detail']}")
    lines += [_tree(child, indent + "    ") for child in entry.get("children", [])]
    return "\n".join(lines)


def _describe(entry: dict[str, Any]) -> str:
    """Render one apply result as text."""
    matched = ", ".join(f"#{m['index']} {m['name']}".rstrip() for m in entry["matched"])
    state = [word for key, word in (("in_inbox", "inbox"), ("archived", "archived")) if entry[key]]
    state.append("read" if entry["read"] else "unread")
    state += [name for name in ("starred", "important", "trashed") if entry[name]]
    lines = [
        str(entry["file"]),
        f"  matched:   {matched or '(none)'}",
        f"  labels:    {', '.join(entry['labels']) or '(none)'}",
        f"  state:     {', '.join(state)}",
    ]
    if entry["category"]:
        lines.append(f"  category:  {entry['category']}")
    if entry["never_spam"]:
        lines.append("  never spam")
    if entry["forwarded_to"]:
        lines.append(f"  forwarded: {', '.join(entry['forwarded_to'])}")
    lines += [f"  warning:   {text}" for text in entry["warnings"]]
    return "\n".join(lines)
