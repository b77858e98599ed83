"""``msmmt spot``: micro-expression intervals in a long video; ``msmmt synth-video``: a
long synthetic video with its ground truth, to try it on."""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from msmmt.cli.app import STATE, app, fail, load_or_fail, load_predictor

if TYPE_CHECKING:
    import numpy as np

COLUMNS = ("onset", "apex", "offset", "score")


def _classify(model: Path, video: Path, intervals: list) -> list[tuple[str, float]]:
    """Class and its probability of each interval, from a trained model given its marks."""
    from msmmt.core.records import DatasetError

    predictor = load_predictor(model)
    out = []
    for iv in intervals:
        try:
            a = predictor.analyse(video, iv.onset, iv.apex, iv.offset)
        except DatasetError as err:
            raise fail(f"interval {iv.onset}-{iv.offset}: {err}") from None
        out.append((a.label, float(a.probabilities.max())))
    return out


def _write(rows: list[tuple], header: tuple[str, ...], out: Path | None) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if out is None:
        sys.stdout.write(text.getvalue())
        return
    from msmmt.core.io import atomic_write_text

    atomic_write_text(out, text.getvalue())


def _read_truth(truth: Path) -> np.ndarray:
    """The ground-truth intervals of ``--truth``, or a one-line failure (before any spotting)."""
    from msmmt.core.records import DatasetError
    from msmmt.data.long_video import read_truth

    try:
        return read_truth(truth)
    except DatasetError as err:
        raise fail(str(err)) from None


def _truth_score(truth: Path, marks: np.ndarray, intervals: list) -> str:
    from msmmt.evaluation.spotting import score_spotting

    s = score_spotting([(iv.onset, iv.offset) for iv in intervals], marks)
    return (
        f"against {truth} (IoU >= 0.5): TP {s.tp}, FP {s.fp}, FN {s.fn}; "
        f"precision {s.precision:.3f}, recall {s.recall:.3f}, F1 {s.f1:.3f}"
    )


@app.command("spot")
def spot_cmd(
    video: Annotated[Path, typer.Argument(help="A video file or a folder of numbered frames.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="CSV file to write (default: standard output).")
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(min=1.0, help="Frame rate (default: the video's; required for a folder)."),
    ] = None,
    classify: Annotated[
        Path | None,
        typer.Option("--classify", metavar="MODEL", help="Also classify each interval with this checkpoint."),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="CSV of ground-truth onset,offset (a 'kind' column keeps 'micro' rows): "
            "print MEGC precision, recall and F1."
        ),
    ] = None,
) -> None:
    """Spot micro-expressions in a long video: a CSV of onset, apex, offset, score.

    Frame numbers are the video's (0-based) or the folder's own (from the file names);
    score is how far the motion at the apex rises above the video's noise (robust
    z-score). Settings: the `spot` section of the config (--config, --set spot.threshold=25).
    Intervals longer than spot.max_seconds (0.5 s) are left out: those are macro-expressions.
    """
    from msmmt.core.records import DatasetError
    from msmmt.inference.spot import spot

    cfg = load_or_fail()
    if out is not None and out.is_dir():
        raise fail(f"--out {out}: is a folder; give the name of the CSV file to write")
    marks = _read_truth(truth) if truth is not None else None
    start = time.perf_counter()
    try:
        found = spot(video, cfg.spot, fps=fps, preprocess=cfg.preprocess)
    except DatasetError as err:
        raise fail(str(err)) from None
    rows = [(iv.onset, iv.apex, iv.offset, f"{iv.score:.2f}") for iv in found.intervals]
    header = COLUMNS
    if classify is not None:
        classes = _classify(classify, video, found.intervals)
        rows = [(*r, c, f"{p:.3f}") for r, (c, p) in zip(rows, classes, strict=True)]
        header = (*COLUMNS, "class", "probability")
    _write(rows, header, out)
    if STATE.verbosity >= 0:
        typer.echo(
            f"{len(rows)} interval(s) in {found.frames} frames at {found.fps:g} fps "
            f"(face found by {found.face_step}) in {time.perf_counter() - start:.1f} s"
            + (f"; written to {out}" if out else ""),
            err=True,
        )
    if truth is not None:
        typer.echo(_truth_score(truth, marks, found.intervals), err=True)


@app.command("synth-video")
def synth_video(
    out: Annotated[Path, typer.Argument(help="Video file to write (.avi, MJPG).")],
    fps: Annotated[float, typer.Option(min=1.0, help="Frame rate.")] = 30.0,
    seconds: Annotated[float, typer.Option(min=1.0, help="Length in seconds.")] = 60.0,
    size: Annotated[int, typer.Option(min=160, help="Side of the square frames, in pixels.")] = 192,
    seed: Annotated[int | None, typer.Option(min=0, help="Random seed (default: --seed, else 0).")] = None,
    drift: Annotated[
        float, typer.Option(min=0.0, help="Slow drift of the head across the frame over the video, in pixels.")
    ] = 0.0,
) -> None:
    """Write a long synthetic video (micro- and macro-expressions, head motion, blinks)
    and OUT.truth.csv (kind, onset, apex, offset), e.g. to try `msmmt spot --truth`."""
    from msmmt.data.long_video import LongVideoSettings, write_long_video

    if out.suffix.lower() != ".avi":
        raise fail(f"{out}: the video is written as MJPG in an .avi file; name it *.avi")
    seed = seed if seed is not None else (STATE.seed or 0)
    start = time.perf_counter()
    try:
        settings = LongVideoSettings(fps=fps, seconds=seconds, size=size, drift_px=drift)
    except ValueError as err:
        raise fail(str(err)) from None
    truth, events = write_long_video(out, settings, seed)
    micro = sum(e.kind == "micro" for e in events)
    typer.echo(
        f"wrote {out} ({seconds:g} s at {fps:g} fps, {micro} micro-expressions among "
        f"{len(events)} events) and {truth} in {time.perf_counter() - start:.1f} s"
    )
