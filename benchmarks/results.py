"""Where every benchmark's table goes: printed, then appended to RESULTS.md (newest last)."""

from pathlib import Path

HEADER = "# Benchmark results\n\nAppended by the scripts in this folder; newest last.\n"


def append_results(text: str, out: str | Path) -> None:
    print(text)
    out = Path(out)
    if not out.exists():
        out.write_text(HEADER)
    with out.open("a") as f:
        f.write(text)
