"""Shared test settings: one torch thread and no network.

The test models are tiny, so thread start-up costs more than it saves: on the
2-core CI machine one thread ran a tiny LOSO ~30x faster than two under load.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
