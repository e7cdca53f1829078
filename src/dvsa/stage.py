"""Entry point wrapper for the DVC stage scripts: a DvsaError becomes one line and exit code 1."""

from __future__ import annotations

import sys
from collections.abc import Callable

from dvsa.errors import DvsaError


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main`; report user errors as one line on stderr instead of a traceback."""
    try:
        main()
    except DvsaError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
