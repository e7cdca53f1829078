"""The `dvsa` command: a small argparse dispatcher; each command lives in its package and registers itself
with ``add_parser(subparsers)``, setting ``run(args) -> exit code``."""

from __future__ import annotations

import argparse
import sys

from dvsa.caption import command as caption_command
from dvsa.demo import command as demo_command
from dvsa.errors import DvsaError
from dvsa.regiondesc import command as describe_command

COMMANDS = (caption_command, describe_command, demo_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dvsa", description="Deep visual-semantic alignments: tools outside the DAG")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except DvsaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
