"""``msmmt synth``: write a synthetic micro-expression set (demo, or composite-like)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from msmmt.cli.app import STATE, app, fail

DEMO = {"subjects": 8, "clips_per_subject": 6, "size": 256}


def _demo(out: Path, seed: int, clean: bool, options: dict) -> str:
    from msmmt.data.synthetic import generate

    opts = {k: DEMO[k] if v is None else v for k, v in options.items()}
    sheet = generate(out, seed=seed, clean=clean, progress=STATE.verbosity >= 0, **opts)
    n = opts["subjects"] * opts["clips_per_subject"]
    return (
        f"wrote {n} clips ({opts['subjects']} subject{'s' * (opts['subjects'] > 1)}, "
        f"{opts['size']} px, seed {seed}) to {out}; coding sheet {sheet}"
    )


def _composite(out: Path, seed: int, workers: int, release: bool) -> str:
    from msmmt.data.readers import read_dataset
    from msmmt.data.synthetic_composite import RELEASE_FOLDER, generate_composite
    from msmmt.data.synthetic_plan import PRESETS
    from msmmt.preprocess.release import export_release

    progress = STATE.verbosity >= 0
    generate_composite(out, PRESETS["composite-like"], seed, workers, progress)
    samples = read_dataset("composite", out)
    text = (
        f"wrote {len(samples)} clips ({len({s.subject for s in samples})} subjects, seed {seed}) "
        f"to {out}; read them with --dataset composite"
    )
    if release:
        start = time.perf_counter()
        export_release(samples, out / RELEASE_FOLDER, out / "cache", workers=workers, progress=progress)
        text += (
            f"; release form (apex crops, 28 px flow images) in {out / RELEASE_FOLDER} after "
            f"{time.perf_counter() - start:.1f} s of preprocessing: --dataset composite-release"
        )
    return text


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (empty, or a previous synthetic set).")],
    preset: Annotated[
        Literal["demo", "composite-like"],
        typer.Option(
            help="demo: balanced clips in the CASME II layout; composite-like: 442 clips of 68 "
            "subjects shaped like the MEGC2019 composite, in its CASME2/SAMM/SMIC layout."
        ),
    ] = "demo",
    subjects: Annotated[int | None, typer.Option(min=1, metavar="N", help="demo: subjects [8].")] = None,
    clips_per_subject: Annotated[int | None, typer.Option(min=1, metavar="N", help="demo: clips per subject [6].")] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, metavar="N", help="Random seed (default: the global --seed, else 0).")
    ] = None,
    size: Annotated[int | None, typer.Option(min=160, metavar="N", help="demo: side of the frames, pixels [256].")] = None,
    clean: Annotated[
        bool, typer.Option("--clean", help="demo: no head jitter, flicker or sensor noise.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="composite-like: processes rendering subjects.")] = 1,
    release: Annotated[
        bool,
        typer.Option(
            "--release",
            help="composite-like: also write the composite release's form (224 px apex crop + "
            "28 px u/v/strain image per clip, made by msmmt's preprocessing) to OUT/release.",
        ),
    ] = False,
) -> None:
    """Synthesise clips of three classes (positive, negative, surprise) from one face photo.

    demo writes OUT/subNN/EPxx_01/img1.jpg... and OUT/CASME2-coding-synthetic.xlsx (read
    with --dataset synthetic); composite-like writes OUT/CASME2, OUT/SAMM and OUT/SMIC
    (read with --dataset composite).
    """
    seed = seed if seed is not None else (STATE.seed if STATE.seed is not None else 0)
    demo_options = {"subjects": subjects, "clips_per_subject": clips_per_subject, "size": size}
    if preset != "demo":
        given = [f"--{k.replace('_', '-')}" for k, v in demo_options.items() if v is not None]
        if given or clean:
            raise fail(f"{', '.join(given + ['--clean'] * clean)}: only for --preset demo")
    elif release:
        raise fail("--release: only for --preset composite-like")
    start = time.perf_counter()
    try:
        if preset == "demo":
            text = _demo(out, seed, clean, demo_options)
        else:
            text = _composite(out, seed, workers, release)
    except (FileExistsError, ValueError) as err:
        raise fail(str(err)) from None
    typer.echo(f"{text} ({time.perf_counter() - start:.1f} s in all)")
