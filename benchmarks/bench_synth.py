"""Time ``msmmt synth``'s generator: the default 8 subjects x 6 clips at 256 px, and 160 px.

Reports the wall time of :func:`msmmt.data.synthetic.generate` (the template's dlib
landmarks are found once beforehand and timed separately), frames written and the
per-frame cost. Run: ``.venv/bin/python benchmarks/bench_synth.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record  # noqa: E402

from msmmt.data.synthetic import generate, template_face  # noqa: E402


def main() -> None:
    start = time.perf_counter()
    template_face()
    template_s = time.perf_counter() - start
    rows = []
    for subjects, clips, size in [(8, 6, 256), (8, 6, 160)]:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            generate(tmp, subjects=subjects, clips_per_subject=clips, seed=0, size=size)
            seconds = time.perf_counter() - start
            frames = sum(1 for _ in Path(tmp).glob("sub*/*/img*.jpg"))
        rows.append(
            {
                "set": f"{subjects}x{clips}",
                "size": size,
                "frames": frames,
                "seconds": seconds,
                "ms_per_frame": 1000 * seconds / frames,
                "template_landmarks_s": template_s,
            }
        )
    record("synth", rows)


if __name__ == "__main__":
    main()
