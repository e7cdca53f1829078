"""Entry point wrapper for the DVC stage scripts: a DvsaError becomes one line and exit code 1.

Under torchrun (``python -m dvsa.launch``) every rank runs the script: rank 0 prints its own line, the other
ranks leave theirs in torchrun's error file (TORCHELASTIC_ERROR_FILE), and the launcher prints the first failed
rank's line when it is not rank 0's, so that a failure is one line whichever ranks meet it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

from dvsa.errors import DvsaError

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main`; report user errors as one line on stderr instead of a traceback."""
    under_torchrun = "TORCHELASTIC_ERROR_FILE" in os.environ
    try:
        main()
    except DvsaError as e:
        line = f"error: {e}"
        if under_torchrun:
            with open(os.environ["TORCHELASTIC_ERROR_FILE"], "w", encoding="utf-8") as f:
                json.dump({"message": line, "timestamp": int(time.time())}, f)
        if not under_torchrun or os.environ.get("RANK", "0") == "0":
            print(line, file=sys.stderr)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        if not under_torchrun:  # the launcher says it once for all ranks
            print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
