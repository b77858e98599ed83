"""``msmmt train``, ``msmmt predict``, ``msmmt explain``: one model, trained and used.

``train`` fits one model on every subject of a preprocessed set (fixed epochs, no
held-out data) and writes a checkpoint folder. ``predict`` and ``explain`` run a
checkpoint on a new clip (a frame folder or a video), preprocessed exactly as the
training clips were, with the preprocessing settings saved in the checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from msmmt.cli.app import (
    CONFIG_ARG,
    DATA_OPT,
    DATASET_OPT,
    STATE,
    app,
    check_folder,
    check_pretrained,
    check_writable,
    fail,
    load_or_fail,
    load_predictor,
    output_dir,
)

_ONSET = typer.Option("--onset", help="Onset frame number (default: the first frame).")
_APEX = typer.Option(
    "--apex", help="Apex frame number (default: estimated from the facial motion)."
)
_OFFSET = typer.Option("--offset", help="Offset frame number (default: the last frame).")
_MODEL = typer.Argument(help="Checkpoint folder written by `msmmt train`.")
_CLIP = typer.Argument(help="A folder of frames or a video file.")


@app.command()
def train(
    config: Annotated[str | None, CONFIG_ARG] = None,
    data: Annotated[Path, DATA_OPT] = ...,
    dataset: Annotated[str, DATASET_OPT] = "precomputed",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Checkpoint folder to write (default runs/model)."),
    ] = None,
) -> None:
    """Train one model on all subjects of a preprocessed set and save it.

    Trains for train.epochs epochs (no validation split: every clip is used), then
    writes OUT/model.safetensors, config.json, extra.json (class names, preprocessing
    settings, training summary) and history.csv.
    """
    from msmmt.config import ConfigError
    from msmmt.core.records import DatasetError
    from msmmt.engine.export import save_trained
    from msmmt.engine.trainer import fit
    from msmmt.preprocess.cache import training_set

    cfg = load_or_fail(config)
    check_pretrained(cfg)
    if not data.exists():
        raise fail(f"{data}: no such file or folder")
    model_dir = output_dir(out, "runs/model")
    try:
        cfg, samples = training_set(cfg, data, dataset)
        subjects = len({s.subject for s in samples})
        if STATE.verbosity >= 0:
            typer.echo(f"training on {len(samples)} clips of {subjects} subjects -> {model_dir}")
        result = fit(cfg, samples, out_dir=model_dir, progress=STATE.verbosity >= 0)
        source = {"data": str(data.resolve()), "dataset": dataset}
        save_trained(result, cfg, samples, model_dir, source)
    except (DatasetError, ConfigError, ValueError) as err:  # ValueError: unusable weights file
        raise fail(str(err)) from None
    last = result.history[-1]
    typer.echo(
        f"saved {model_dir} (epoch {last['epoch']}: loss {last['train_loss']:.3f}, "
        f"training accuracy {last['train_acc']:.3f})"
    )


def _predictor(model_dir: Path, clip: Path):
    """The checkpoint's predictor, once ``clip`` is known to exist (one-line failures)."""
    if not model_dir.exists():
        raise fail(f"{model_dir}: no such checkpoint folder")
    if not clip.exists():
        raise fail(f"{clip}: no such clip (expected a folder of frames or a video file)")
    return load_predictor(model_dir)


def _analyse(predictor, clip: Path, onset: int | None, apex: int | None, offset: int | None):
    """Preprocess the clip as in training and run the model (a one-line failure for a bad clip)."""
    from msmmt.core.records import DatasetError

    try:
        return predictor.analyse(clip, onset, apex, offset)
    except DatasetError as err:
        raise fail(str(err)) from None


@app.command()
def predict(
    model: Annotated[Path, _MODEL],
    clip: Annotated[Path, _CLIP],
    onset: Annotated[int | None, _ONSET] = None,
    apex: Annotated[int | None, _APEX] = None,
    offset: Annotated[int | None, _OFFSET] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Classify one clip with a trained model.

    The clip is preprocessed with the checkpoint's settings (face alignment,
    magnification, dynamic image, TV-L1 flow and strain). Frame numbers are the
    clip's own (as in its file names); without them, onset and offset are the first
    and last frames and the apex is estimated from the facial motion (the peak of the
    grey change against the first frame in the brow, nose and mouth regions), and the
    output says so.
    """
    predictor = _predictor(model, clip)
    a = _analyse(predictor, clip, onset, apex, offset)
    names, sample, proba = predictor.class_names, a.sample, a.probabilities
    best = int(proba.argmax())
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "clip": str(clip),
                    "prediction": names[best],
                    "probabilities": {n: float(p) for n, p in zip(names, proba, strict=True)},
                    "onset": sample.onset,
                    "apex": sample.apex,
                    "offset": sample.offset,
                    "assumed": sample.extra.get("assumed"),
                    "warning": sample.extra.get("warning"),
                },
                indent=2,
            )
        )
        return
    typer.echo(f"clip: {clip}")
    typer.echo(f"frames: {a.marks}")
    typer.echo(f"prediction: {names[best]}")
    width = max(len(n) for n in names)
    typer.echo(f"\n{'class':<{width}}  probability")
    for i, (name, p) in enumerate(zip(names, proba, strict=True)):
        typer.echo(f"{name:<{width}}  {p:11.3f}{'  <-' if i == best else ''}")


@app.command()
def explain(
    model: Annotated[Path, _MODEL],
    clip: Annotated[Path, _CLIP],
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE|DIR",
            help="Figure to write, in the format of its suffix (.png, .pdf, .svg, ...); or a "
            "folder (an existing one, or a path ending in /) to write CLIP-NAME_explain.png into.",
        ),
    ] = None,
    onset: Annotated[int | None, _ONSET] = None,
    apex: Annotated[int | None, _APEX] = None,
    offset: Annotated[int | None, _OFFSET] = None,
) -> None:
    """Draw the patch weights that drove a prediction over the aligned face.

    One row per modality (texture = dynamic image, motion = flow/strain image): the
    modality image, then the attention-guided patch weights g of eq 14 at each scale
    as a heat map over the aligned apex face, on an absolute 0..1 scale, saying
    whether the model's patch-weighting variant applied them. Default output: CLIP-NAME_explain.png
    in the global --out folder or the current one.
    """
    from msmmt.inference.explain import USE, draw_patch_weights

    folder, figure = _figure_target(out)
    predictor = _predictor(model, clip)
    variant = predictor.config.model.patch_weighting
    if variant == "none":
        raise fail(f"{model}: model.patch_weighting is none: the model computes no patch weights")
    a = _analyse(predictor, clip, onset, apex, offset)
    figure = figure or folder / f"{a.sample.clip}_explain.png"
    label = f"{a.label} ({a.probabilities.max():.2f})"
    try:
        draw_patch_weights(
            a.images.face,
            {"texture": a.images.texture, "motion": a.images.motion},
            {k: v[0].float().numpy() for k, v in a.output.patch_weights.items()},
            patch_size=predictor.patch_size,
            img_size=predictor.config.model.img_size,
            path=figure,
            title=f"{clip.name}: {label}\n{a.marks}",
            variant=variant,
        )
    except OSError as err:
        why = err.strerror or err
        raise fail(f"cannot write {figure} ({why}); the prediction was {label}") from None
    typer.echo(f"prediction: {label}; patch weights ({variant}: {USE[variant]}) drawn in {figure}")


def _figure_target(out: str | None) -> tuple[Path, Path | None]:
    """The folder to write the default figure name into and the figure file ``--out``
    names (None: the default name). Fails on a suffix matplotlib cannot save, before any work."""
    from matplotlib.backend_bases import FigureCanvasBase

    if out is None:
        return check_writable(output_dir(None, "."), folder=True), None
    path = Path(out)
    if out.endswith(("/", os.sep)) or path.is_dir():
        return check_writable(check_folder(path), folder=True), None
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        what = f"suffix {path.suffix}" if path.suffix else "no suffix"
        raise fail(
            f"--out {out}: {what}; expected an image suffix ({', '.join(formats)}) "
            "or a folder (an existing one, or a path ending in /)"
        )
    return path.parent, check_writable(path)
