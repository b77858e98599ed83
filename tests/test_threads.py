"""msmmt --threads bounds every thread pool of the process, the BLAS ones included."""

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def test_limit_threads_bounds_blas_opencv_and_torch():
    # a fresh process: the limit is process-wide and would leak into other tests
    script = (
        "import numpy, cv2, torch\n"
        "from threadpoolctl import threadpool_info\n"
        "from msmmt.core.threads import limit_threads\n"
        "limit_threads(1)\n"
        "pools = {p['user_api']: p['num_threads'] for p in threadpool_info()}\n"
        "print(pools.get('blas'), cv2.getNumThreads(), torch.get_num_threads())\n"
    )
    env = {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["1", "1", "1"], out
