"""Two git revisions side by side, for the A/B tools (``encode_ab.py``, ``decode_ab.py``):
each revision checked before any work, then checked out as a temporary worktree and removed
afterwards, failures in one ``PROG: error:`` line (``tool_guard.fail``)."""

import subprocess
from pathlib import Path

from tool_guard import fail

ROOT = Path(__file__).resolve().parents[1]


def resolve_revisions(prog: str, revisions: dict) -> dict:
    """{key: short commit} of {key: revision}; exit 1 in one line naming ``--KEY REV`` when a
    revision is not a commit of this repository."""
    commits = {}
    for k, rev in revisions.items():
        found = subprocess.run(["git", "rev-parse", "--short", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=ROOT,
                               capture_output=True, text=True)
        if found.returncode != 0 or not found.stdout.strip():
            fail(prog, f"--{k} {rev}: not a revision of this repository", 1)
        commits[k] = found.stdout.strip()
    return commits


def add_worktrees(prog: str, folder: Path, revisions: dict, trees: dict) -> None:
    """Check each {key: revision} out as the worktree ``folder``/key, recorded in ``trees``
    as it is made (so that ``remove_worktrees`` removes those made before a failure); exit 1
    in one line when git cannot."""
    for k, rev in revisions.items():
        trees[k] = Path(folder) / k
        made = subprocess.run(["git", "worktree", "add", "--detach", "-q", str(trees[k]), rev], cwd=ROOT,
                              capture_output=True, text=True)
        if made.returncode != 0:
            fail(prog, f"cannot check out --{k} {rev}: {' '.join(made.stderr.split()) or 'no message'}", 1)


def remove_worktrees(trees: dict) -> None:
    """Remove the worktrees ``add_worktrees`` made (errors ignored: a tree that was never made)."""
    for tree in trees.values():
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False,
                       capture_output=True)
