"""Running the `sgm` CLI in-process from a test, shared by the CLI and sweep tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
import torch

from sgm_core.cli import main


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Import it into a test module: tiny batches on one torch thread (thread hand-offs cost more
    than they save on a busy 2-core machine), restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(args: Sequence[object], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; argparse usage errors exit through SystemExit, the rest return.
    Returns (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
