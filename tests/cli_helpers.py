"""Running the `sgm` CLI in-process from a test, shared by the CLI and sweep tests."""

from __future__ import annotations

from collections.abc import Sequence

from sgm_core.cli import main


def run_cli(args: Sequence[object], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; argparse usage errors exit through SystemExit, the rest return.
    Returns (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
