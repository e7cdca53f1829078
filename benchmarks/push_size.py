"""The size of a team's `dvc push` of the pipeline (docs/remote.md), read from dvc.lock: no output need be present.

`dvc push` sends the cached outputs (data/, models/, reports/) that dvc.lock records; metrics/ and logs/ are
`cache: false` and travel through git. `--run-cache` adds one small run record per stage that DVC may restore
from it: DVC keeps none for a stage with an uncached output that is not a metric or a plot. Sizes are summed
per output, so a file that two outputs share counts twice (a push sends it once), and a directory's listing
(one small .dir file each) is not counted.
Usage: python benchmarks/push_size.py [REPO] (default: the current folder).
"""

from __future__ import annotations

import sys

from dvc.repo import Repo


def main() -> None:
    repo = Repo(sys.argv[1] if len(sys.argv) > 1 else ".")
    pushed = files = in_git = 0
    run_cached = []
    print(f"{'stage':<27} {'pushed bytes':>14} {'files':>6} {'in git bytes':>13}  run-cache")
    for stage in repo.index.stages:
        cached = [o for o in stage.outs if o.use_cache]
        plain = [o for o in stage.outs if not o.use_cache]
        size = sum(o.meta.size or 0 for o in cached)
        count = sum(o.meta.nfiles or 1 for o in cached)
        git = sum(o.meta.size or 0 for o in plain)
        restorable = all(o.use_cache or o.is_metric or o.is_plot for o in stage.outs)
        run_cached += [stage.name] if restorable else []
        pushed, files, in_git = pushed + size, files + count, in_git + git
        print(f"{stage.name:<27} {size:>14,} {count:>6} {git:>13,}  {'yes' if restorable else 'no'}")
    print(f"{'total':<27} {pushed:>14,} {files:>6} {in_git:>13,}  {len(run_cached)} of {len(repo.index.stages)}")
    print(f"dvc push sends {pushed / 2**20:.1f} MiB in {files} files; "
          f"--run-cache adds the records of {', '.join(run_cached) or 'no stage'}")


if __name__ == "__main__":
    main()
