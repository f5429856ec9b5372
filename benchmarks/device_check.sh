#!/usr/bin/env bash
# The checks a lent GPU is for, as one run of the device tool (15 minutes of device time in all):
# the suite's CUDA paths (tests/test_devices.py) and the GPU table (benchmarks/gpu.py, ~4 min at
# --seconds 1 on 16 cores). The device image has torch with CUDA but not POT (ot-fm) or plyfile:
# carry them as wheels. Once, here, in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     -d .whl pot==0.9.7.post1 plyfile==1.1.5
# Then: run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=560); the logs and
# the table come back under $OUT (copy the table into RESULTS.md). The GUI rows (gui_fps.py at 1M
# particles) need PySide6, whose wheels are over the 64 MiB a call carries.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
OUT="${OUT:-/tmp/device-check}"
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PWD:/tmp/site"
fi
nvidia-smi -L 2>&1 | tee "$OUT/machine.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$OUT/machine.txt"
timeout 200 python3 -m pytest tests/test_devices.py -p no:randomly -p no:cacheprovider -q -rf 2>&1 | tee "$OUT/devices.log"
timeout 330 python3 benchmarks/gpu.py --seconds 1 --out "$OUT/RESULTS_gpu.md" 2>&1 | tee "$OUT/gpu.log"
