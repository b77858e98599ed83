"""One place that bounds the CPU threads of this process: OpenCV, PyTorch and the BLAS /
OpenMP pools of NumPy, SciPy and scikit-learn (through ``threadpoolctl``).

Floating-point sums depend on how work is split between threads, so a result is only
reproducible at a fixed thread count: a LOSO fold of the logistic-regression baseline, for one,
predicts differently with one and two BLAS threads. ``msmmt --threads N`` and every Ray task
call :func:`limit_threads`.
"""

from __future__ import annotations

import os
import sys

__all__ = ["limit_threads"]


def limit_threads(n: int) -> None:
    """Run this process's OpenCV, PyTorch and BLAS / OpenMP pools on ``n`` threads.

    PyTorch, when not imported yet, is bounded through ``OMP_NUM_THREADS`` (importing it
    here would cost seconds in every fresh worker); the BLAS pools already loaded are
    limited now, and ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` bound those loaded later.
    """
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(n)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    threadpool_limits(limits=n)
