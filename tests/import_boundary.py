"""Run code in a fresh interpreter and check that it loaded neither torch nor the training code
(the decoder, export and pack paths promise this; README, "Python API")."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = 'm == "torch" or m.startswith("torch.") or m.startswith("gipp_codec.fit")'


def assert_loads_no_training(code: str) -> None:
    """Run ``code`` (statements, dedented) in a subprocess from the repository root; fail if it
    raised or if torch or ``gipp_codec.fit`` is in ``sys.modules`` afterwards."""
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import sys
        bad = sorted(m for m in sys.modules if {FORBIDDEN})
        print(bad)
        sys.exit(1 if bad else 0)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, "loaded forbidden modules or failed: " + r.stdout + r.stderr[-2000:]
