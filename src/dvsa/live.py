"""dvclive for the training curves of a stage (logs/<stage>/), so that `dvc plots show` draws them."""

from __future__ import annotations

import os

from dvclive import Live
from scmrepo.exceptions import SCMError

from dvsa.errors import DvsaError


def open_live(directory: str | os.PathLike[str]) -> Live:
    """A Live logging into `directory`, with no DVC experiment, dvc.yaml or report of its own.

    dvclive needs a git repository with at least one commit; without one it is a DvsaError.
    """
    try:
        return Live(str(directory), resume=False, save_dvc_exp=False, dvcyaml=None, report=None)
    except SCMError as e:
        raise DvsaError(
            f"{directory}: dvclive cannot log here ({e}); commit once (git add -A && git commit) and rerun"
        ) from None
