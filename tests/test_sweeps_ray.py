"""`sgm sweep --engine ray`: each cell a Ray task on a local runtime of 2 CPUs (what CI runs with
the [cluster] extra), skipped with the reason where Ray is not installed or cannot start."""

from __future__ import annotations

import pytest
from test_sweeps import TINY, read_rows, sgm_cli, write_spec

import sgm_core as sgm


@pytest.fixture
def ray_runtime():
    """A local Ray runtime with 2 CPUs, shut down after the test; skipped with Ray's reason when
    Ray is not installed or cannot start here."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e \".[cluster]\")")
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    except Exception as exc:  # noqa: BLE001 - any failure to start means: no Ray here
        pytest.skip(f"Ray cannot start here: {exc}")
    try:
        yield ray
    finally:
        ray.shutdown()


def test_the_ray_engine_runs_every_cell_as_a_task(ray_runtime, tmp_path, capsys) -> None:
    spec, out = write_spec(tmp_path, 'data = "moons"\nloss = ["ncsn", "dsm"]\n' + TINY), tmp_path / "out"
    code, _, err = sgm_cli(["sweep", spec, "--out", out, "--engine", "ray", "--workers", "2"], capsys)
    assert code == 0, err
    rows = read_rows(out)
    assert [r["loss"] for r in rows] == ["ncsn", "dsm"] and all(r["error"] == "" for r in rows)
    for row in rows:
        assert sgm.load(out / row["run_dir"]).config.loss.name == row["loss"]
    assert ray_runtime.is_initialized(), "a runtime the caller started is left running"

    code, _, err = sgm_cli(["sweep", write_spec(tmp_path, 'data = "moons"\n' + TINY + "gpus = 1\n", "gpu.toml"),
                            "--out", tmp_path / "gpu", "--engine", "ray"], capsys)
    if ray_runtime.cluster_resources().get("GPU", 0) < 1:
        assert code == 2 and "asks gpus = 1 per cell but the Ray cluster has 0 GPUs" in err
