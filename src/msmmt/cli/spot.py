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

from msmmt.cli.app import STATE, app, check_writable, fail, load_or_fail, load_predictor

if TYPE_CHECKING:
    import numpy as np

COLUMNS = ("onset", "apex", "offset", "score")


def _classify(predictor, video: Path, intervals: list) -> list[tuple[str, str]]:
    """Class and its probability of each interval, from a trained model given its marks, in
    one pass over the video; an interval that cannot be classified gets empty cells and a
    warning naming it, and the others go on."""
    from tqdm.auto import tqdm

    from msmmt.core.records import DatasetError
    from msmmt.inference.spot import classify_intervals

    found = {}
    analyses = classify_intervals(predictor, video, intervals)
    bar = tqdm(analyses, total=len(intervals), desc="classify", unit="interval", leave=False,
               disable=STATE.verbosity < 0)
    for iv, a in bar:
        if isinstance(a, DatasetError):
            typer.echo(f"warning: interval {iv.onset}-{iv.offset} not classified: {a}", err=True)
            found[iv] = ("", "")
        else:
            found[iv] = (a.label, f"{a.probabilities.max():.3f}")
    return [found[iv] for iv in intervals]


def _write(rows: list[tuple], header: tuple[str, ...], out: Path | None) -> bool:
    """Write the CSV to ``out`` (standard output without it); when ``out`` cannot be
    written, print the CSV to standard output instead, with a one-line error: False."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if out is None:
        sys.stdout.write(text.getvalue())
        return True
    from msmmt.core.io import atomic_write_text

    try:
        atomic_write_text(out, text.getvalue())
    except OSError as err:
        sys.stdout.write(text.getvalue())
        typer.echo(
            f"error: --out {out}: cannot write it ({err.strerror or err}); "
            "the intervals were printed on standard output instead",
            err=True,
        )
        return False
    return True


def _check_out(out: Path | None, video: Path, truth: Path | None) -> None:
    """Refuse, before any work, an ``--out`` that cannot be written or would overwrite the
    video or the --truth file."""
    if out is None:
        return
    if out.is_dir():
        raise fail(f"--out {out}: is a folder; give the name of the CSV file to write")
    for given, option in ((video, "the video"), (truth, "the --truth file")):
        if given is not None and out.exists() and given.exists() and out.samefile(given):
            raise fail(f"--out {out}: is {option}; give another name for the CSV to write")
    check_writable(out)


def _read_truth(truth: Path) -> np.ndarray:
    """The ground-truth intervals of ``--truth``, or a one-line failure (before any spotting):
    unreadable, without any interval, or with an onset after its offset."""
    from msmmt.core.records import DatasetError
    from msmmt.data.long_video import read_truth

    try:
        marks = read_truth(truth)
    except DatasetError as err:
        raise fail(str(err)) from None
    if not len(marks):
        raise fail(
            f"{truth}: no micro-expression interval (the rows of kind 'micro', or every row "
            "without a kind column): nothing to score against"
        )
    for onset, offset in marks:
        if onset > offset:
            raise fail(f"{truth}: interval {onset}-{offset}: the onset is after the offset")
    return marks


def _check_truth_span(truth: Path, marks: np.ndarray, span: tuple[int, int]) -> None:
    """Fail when a ground-truth interval lies outside the video's frames (the truth of
    another video, or frames numbered differently)."""
    first, last = span
    outside = [(int(a), int(b)) for a, b in marks if a < first or b > last]
    if outside:
        a, b = outside[0]
        raise fail(
            f"{truth}: {len(outside)} interval(s) outside the video's frames {first}..{last} "
            f"(first: {a}-{b}): is it the truth of another video, or numbered differently "
            "(a video from 0, a folder by its file names)?"
        )


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
        typer.Option(min=1.0, metavar="X", help="Frame rate (default: the video's; required for a folder)."),
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
    _check_out(out, video, truth)
    marks = _read_truth(truth) if truth is not None else None
    predictor = load_predictor(classify) if classify is not None else None
    start = time.perf_counter()
    try:
        found = spot(
            video, cfg.spot, fps=fps, preprocess=cfg.preprocess, progress=STATE.verbosity >= 0
        )
    except DatasetError as err:
        raise fail(str(err)) from None
    rows = [(iv.onset, iv.apex, iv.offset, f"{iv.score:.2f}") for iv in found.intervals]
    header = COLUMNS
    if predictor is not None:
        classes = _classify(predictor, video, found.intervals)
        rows = [(*r, *c) for r, c in zip(rows, classes, strict=True)]
        header = (*COLUMNS, "class", "probability")
    written = _write(rows, header, out)
    if STATE.verbosity >= 0:
        typer.echo(
            f"{len(rows)} interval(s) in {found.frames} frames at {found.fps:g} fps "
            f"(face found by {found.face_step}) in {time.perf_counter() - start:.1f} s"
            + (f"; written to {out}" if out and written else ""),
            err=True,
        )
    if truth is not None:
        _check_truth_span(truth, marks, found.frame_span)
        typer.echo(_truth_score(truth, marks, found.intervals), err=True)
    if not written:
        raise typer.Exit(2)


@app.command("synth-video")
def synth_video(
    out: Annotated[Path, typer.Argument(help="Video file to write (.avi, MJPG).")],
    fps: Annotated[float, typer.Option(min=1.0, metavar="X", help="Frame rate.")] = 30.0,
    seconds: Annotated[float, typer.Option(min=1.0, metavar="X", help="Length in seconds.")] = 60.0,
    size: Annotated[int, typer.Option(min=160, metavar="N", help="Side of the square frames, in pixels.")] = 192,
    seed: Annotated[int | None, typer.Option(min=0, metavar="N", help="Random seed (default: --seed, else 0).")] = None,
    drift: Annotated[
        float, typer.Option(min=0.0, metavar="X", help="Slow drift of the head across the frame over the video, in pixels.")
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
