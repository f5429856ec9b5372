"""Documented ceilings on every size a file or a flag can ask for.

A few bytes of JSON or one flag can otherwise request gigabytes (`--n 1000000000`, `"width":
30000`, an NPY header claiming 10^12 elements). Every reader and every count is checked against
these before anything is allocated, so a refusal is one sentence and costs no memory. They are
generous for a 2-core laptop tool: a user who reaches one hits a clear message, never a crash.
"""

from __future__ import annotations

MAX_POINTS = 2_000_000  # points in a dataset (file, drawing or session): 24 MB at 3D float32
MAX_SAMPLES = 1_000_000  # `sgm sample --n` and `render --n`: the particle count a GPU animates live
MAX_NET_PARAMS = 20_000_000  # trainable parameters of a network (80 MB of float32 weights)
MAX_WIDTH = 8192  # hidden units per layer
MAX_DEPTH = 64  # hidden layers
MAX_STEPS = 10_000_000  # optimiser or sampler steps in one run (~6 h of training at 500 steps/s)
MAX_BATCH = 1_000_000  # points per optimiser step
MAX_JSON_BYTES = 16 * 2**20  # any JSON file we read (run config, session.json, lesson): checked before parsing
MAX_LOSS_HISTORY = MAX_STEPS  # entries of a saved loss curve (one float64 per step: 80 MB at most)
MAX_SESSION_BYTES = 1 * 2**30  # all members of a session, uncompressed, together
MAX_FRAMES = 10_000  # frames of one rendered animation
MAX_SIDE = 4096  # pixels per side of a rendered frame: 48 MB of RGB at 4096x4096
MAX_GUIDANCE = 100.0  # guidance scales above ~10 already leave the data (Ho & Salimans show w <= 4)
