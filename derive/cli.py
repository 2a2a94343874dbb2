"""Command-line plumbing shared by every entry point of ``derive`` and ``numeric``.

* :class:`OneLineParser`: argparse whose usage errors are one line
  (``error: ...`` on stderr, exit status 2) and whose ``--help`` shows the
  defaults and keeps the description's line breaks.
* :func:`run`: calls ``main(argv)``; bad input (a usage error, an expression
  outside the grammar or meaningless in its context, a bad value) becomes one
  line on stderr and exit status 2, never a traceback; a closed output pipe
  (``python -m derive --format json | head -1``) ends quietly.
"""

from __future__ import annotations

import argparse
import os
import sys

from derive.engine.errors import ExpressionError, GrammarError

__all__ = ["UsageError", "OneLineParser", "HelpFormatter", "run", "fail"]


class UsageError(argparse.ArgumentTypeError, ValueError):
    """Bad command-line input; the message is one line (argparse shows it as is)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the description's layout and show every option's default (none for empty lists and flags)."""

    def _get_help_string(self, action):
        if action.default in (None, [], False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as a single line (no usage dump) and shows defaults in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(message)


def fail(message: str) -> int:
    """Print ``error: message`` (one line) on stderr; return the exit status 2."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def run(main, argv=None) -> int:
    """Call ``main(argv)``; turn input errors into one stderr line and exit code 2."""
    try:
        status = main(argv) or 0
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # the reader went away (| head): silence the final flush and stop
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (UsageError, GrammarError, ExpressionError, ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        return fail(message)
    except RecursionError:
        return fail("the input nests too deeply; split it")
