"""Command-line plumbing shared by every entry point: bad input is one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import sys


class UsageError(argparse.ArgumentTypeError, ValueError):
    """Bad command-line input; the message is one line (argparse shows it as is)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as a single line (no usage dump)."""

    def error(self, message):
        raise UsageError(message)


def run(main, argv=None) -> int:
    """Call ``main(argv)``; turn input errors into one stderr line and exit code 2."""
    from derive.grammar import GrammarError
    from derive.expand import ExpressionError

    try:
        return main(argv) or 0
    except (UsageError, GrammarError, ExpressionError, ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
