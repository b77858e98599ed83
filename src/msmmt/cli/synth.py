"""``msmmt synth``: write a synthetic micro-expression set in the CASME II layout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from msmmt.cli.app import STATE, app, fail


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (empty, or a previous synthetic set).")],
    subjects: Annotated[int, typer.Option(min=1, help="Number of synthetic subjects.")] = 8,
    clips_per_subject: Annotated[int, typer.Option(min=1, help="Clips per subject.")] = 6,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Random seed (default: the global --seed, else 0).")
    ] = None,
    size: Annotated[int, typer.Option(min=160, help="Side of the square frames, in pixels.")] = 256,
    clean: Annotated[
        bool, typer.Option("--clean", help="No head jitter, flicker or sensor noise.")
    ] = False,
) -> None:
    """Synthesise clips of three classes (positive, negative, surprise) from one face photo.

    Writes OUT/subNN/EPxx_01/img1.jpg... and OUT/CASME2-coding-synthetic.xlsx; read it
    back with the `synthetic` (CASME II) reader.
    """
    from msmmt.data.synthetic import generate

    seed = seed if seed is not None else (STATE.seed if STATE.seed is not None else 0)
    start = time.perf_counter()
    try:
        sheet = generate(
            out,
            subjects=subjects,
            clips_per_subject=clips_per_subject,
            seed=seed,
            size=size,
            clean=clean,
            progress=STATE.verbosity >= 0,
        )
    except (FileExistsError, ValueError) as err:
        raise fail(str(err)) from None
    n_frames = sum(1 for _ in Path(out).glob("sub*/*/img*.jpg"))
    typer.echo(
        f"wrote {subjects * clips_per_subject} clips ({subjects} subject{'s' * (subjects > 1)}, {n_frames} frames, "
        f"{size} px, seed {seed}) to {out} in {time.perf_counter() - start:.1f} s; coding sheet {sheet}"
    )
