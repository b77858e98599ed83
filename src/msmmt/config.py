"""Typed configuration for every stage of msmmt.

A run is described by one :class:`Config`, made of one section per stage
(``data``, ``preprocess``, ``model``, ``loss``, ``train``, ``eval``). Sections are
pydantic models that forbid unknown keys and check types, so a typo in a YAML
preset or a ``--set`` override fails with an error naming the key.

Presets live in ``src/msmmt/configs/*.yaml`` (also reachable as ``configs/`` at the
repository root): ``paper`` (the paper's settings), ``cpu-small`` (a small ViT that
trains on a 2-core CPU) and ``demo`` (the synthetic demo).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from msmmt.core.labels import class_names

__all__ = [
    "AugmentConfig",
    "BaselineConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "PreprocessConfig",
    "PretrainConfig",
    "SpotConfig",
    "TrainConfig",
    "apply_overrides",
    "departures_from_paper",
    "flat_settings",
    "list_presets",
    "load_config",
    "save_config",
]


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Which samples to use and how their labels map to classes."""

    class_set: Literal["composite", "casme2", "samm", "smic"] = "composite"
    """Label set: ``composite`` is MEGC2019's positive / negative / surprise (CDE);
    the others are the single-dataset (SDE) class sets (``docs/METHOD.md``, "Data and protocols")."""
    datasets: list[str] | None = None
    """Keep only samples of these datasets (None keeps all)."""


class PreprocessConfig(_Section):
    """Clip -> (dynamic image, flow/strain image) (``docs/METHOD.md``, "Pipeline overview")."""

    face_size: int = Field(224, ge=32)
    """Side of the aligned square face crop, in pixels."""
    face_margin: float = Field(0.1, ge=0.0, le=1.0)
    """Margin above the aligned landmarks' box (the brows), as a fraction of its height."""
    eye_distance: float = Field(0.24, gt=0.0, lt=1.0)
    """Distance between the inner eye corners after alignment, as a fraction of face_size
    (0.24 fits the 68 landmarks' box, about 3.7 eye distances on each side, with the margin)."""
    face_search_frames: int = Field(5, ge=1)
    """Frames tried, from the first, until dlib finds a face; none found is a DatasetError."""
    face_cascade: list[
        Literal["hog", "hog-upsampled", "hog-equalized", "face-crop", "cnn"]
    ] = Field(default_factory=lambda: ["hog", "hog-upsampled", "hog-equalized", "face-crop", "cnn"])
    """Face detection steps, tried in order on each searched frame until one finds a face
    (see :mod:`msmmt.ops.face`); the step that did is reported in the clip's info."""
    align: bool = True
    magnify: bool = True
    magnify_mode: Literal["onset", "iir"] = "onset"
    """``onset``: amplify each frame's change from the onset, so the onset -> apex
    displacement is magnified 1 + magnify_alpha times whatever the rise time;
    ``iir``: Wu et al.'s IIR temporal band-pass, whose gain falls with the rise time
    (2.3x-3.0x at alpha 10 for an 80-frame rise). See msmmt.ops.magnify."""
    magnify_alpha: float = Field(10.0, ge=0.0)
    magnify_r1: float = Field(0.4, gt=0.0, lt=1.0)
    """Rate of the IIR band-pass's fast low-pass (``iir`` mode only)."""
    magnify_r2: float = Field(0.05, gt=0.0, lt=1.0)
    """Rate of the IIR band-pass's slow low-pass (``iir`` mode only)."""
    magnify_lambda_c: float = Field(8.0, gt=0.0)
    """Spatial cut-off wavelength (px): finer pyramid levels get less than alpha.
    8: the gain is within 8% of 1 + alpha from 16 px wavelengths up; 16: within 10%
    only from 32 px (Laplacian pyramid bands overlap)."""
    magnify_levels: int | None = Field(None, ge=1)
    """Laplacian pyramid levels; None: the full height (down to a 1 px residual)."""
    dynamic_image: Literal["approximate", "ranksvm"] = "approximate"
    image_size: int = Field(224, ge=16)
    """Side of the cached modality images (texture and motion)."""

    @model_validator(mode="after")
    def _check_cascade(self) -> PreprocessConfig:
        if not self.face_cascade or len(set(self.face_cascade)) != len(self.face_cascade):
            raise ValueError("face_cascade must be a non-empty list of steps without repeats")
        return self


class ModelConfig(_Section):
    """The MSMMT network (``docs/METHOD.md``, "Multi-scale patches" to "Fusion and heads")."""

    backbone: str = "vit_base_patch16_224"
    """Any timm ViT name; ``embed_dim``/``depth``/``num_heads``/``patch_size`` override it."""
    pretrained: str | None = None
    """None (random init), ``"timm"`` (the hub weights of ``backbone``, needs internet)
    or a path to a local safetensors / .pth / .npz file."""
    img_size: int = Field(224, ge=16)
    """Base size m of the first scale."""
    patch_size: int | None = Field(None, ge=1)
    embed_dim: int | None = Field(None, ge=8)
    depth: int | None = Field(None, ge=2)
    num_heads: int | None = Field(None, ge=1)
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0)
    stem: Literal["patch", "conv"] = "patch"
    """``patch``: the ViT's p x p patch embedding (the paper); ``conv``: log2(p) stride-2
    3 x 3 convolutions (Xiao et al. 2021; docs/METHOD.md, "Convolutional stem"), same
    grid; needs a power-of-2 patch size and no pretrained weights."""
    scales: list[int] = Field(default_factory=lambda: [1, 2, 4])
    """Down-sampling factors of the scales (m, m/2, m/4 for [1, 2, 4])."""
    modalities: list[Literal["texture", "motion"]] = Field(
        default_factory=lambda: ["texture", "motion"]
    )
    share_backbone: Literal["modality", "all", "scale"] = "modality"
    """``modality``: one backbone per modality shared by its scales; ``all``: one
    backbone for everything; ``scale``: one per (modality, scale)."""
    patch_weighting: Literal["none", "paper", "post-norm", "attention"] = Field(
        "post-norm", json_schema_extra={"legacy_bool": True}
    )
    """How the attention-guided patch weights g (eqs 12-14) act on the last block
    (docs/METHOD.md, "Patch weighting"; ``g_0 = 1`` for the class token):

    * ``paper``: eq 15 literally, ``x_j -> g_j x_j`` before the pre-norm last block.
      Inert: the class token reads the patches only through
      ``LN(g x) = gamma (g x - g mu) / sqrt(g^2 sigma^2 + eps) + beta = LN(x)`` (g > 0,
      up to eps), so logits, loss and gradients equal ``none``'s (measured max
      |dlogit| 2.7e-7 on cpu-small, 2.2e-7 on ViT-B); kept to reproduce the paper;
    * ``post-norm``: keys and values from ``g_j LN_1(x_j)``, i.e.
      ``k_j = W_k g_j LN_1(x_j) + b_k`` (likewise ``v_j``); small g pulls a patch's
      key and value towards the biases;
    * ``attention``: the class token's attention logits get ``+ log g_j``, so
      ``p_j ∝ g_j exp(q·k_j / sqrt(d))``; ``g_j -> 0`` removes patch j exactly;
    * ``none``: a plain ViT (no rollout computed).

    Old configs' ``true`` means this default, ``false`` means ``none``.

    Default ``post-norm``, from benchmarks/bench_{ablation_patch_weighting,faithfulness,
    patch_weighting}.py on synthetic data (demo preset, one seed; README "Fidelity
    notes"). Accuracy does not decide: LOSO UF1 over 12 subjects is 0.944 (``none``),
    0.945 (``paper``), 0.931 (``post-norm``), 0.930 (``attention``), every difference to
    ``none`` inside its paired subject-bootstrap 95% interval (about +-0.05). The
    choice rests on what the weights do: ``post-norm`` is the closest effective reading
    of eq 15; its trained model depends most on them (max |dlogit| 0.29 when switched
    off, 0.05 for ``attention``); and its weights are the most faithful: on 48 held-out
    clips, masking the 1-16 top-weighted patches drops the predicted probability more
    than masking random patches by 0.078 [0.048, 0.112] (seed 0) and 0.039 [0.006,
    0.074] (seed 1), against 0.024 [0.011, 0.038] and 0.010 [-0.009, 0.029] for
    ``attention`` and 0.053 [0.028, 0.080] and 0.011 [-0.012, 0.039] for the post-hoc
    rollout of ``none``; the top motion patch lies in the moving quarter of the face for
    85-92% of clips in every variant (chance 25%)."""
    rollout_residual: bool = False
    """Add the identity to each G_l before renormalising (attention rollout)."""
    detach_weights: bool = True
    """Stop gradients through the patch weights g (as RAMS-Trans does)."""
    fusion_hidden: int = Field(512, ge=1)
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    proj_dim: int = Field(128, ge=1)
    num_classes: int = Field(3, ge=2)
    pixel_blend: float = Field(0.0, ge=0.0, lt=1.0)
    """Weight w of the pixel head in the class probabilities,
    ``p = (1 - w) softmax(vit) + w softmax(pixel)`` (docs/METHOD.md, "Pixel head"): a
    logistic regression on the motion image's pixels (the ``logreg`` baseline's estimator,
    with ``baseline.C`` / ``class_weight`` / ``max_iter``) fitted on the training clips after
    the ViT. 0 (default): no pixel head; needs the motion modality."""
    pixel_size: int = Field(28, ge=4)
    """Side S the motion image is resampled to (bicubic) for the pixel head (3 S^2 features)."""
    tta_flip: bool = False
    """Test-time mirroring: in eval mode the ViT's class probabilities are the mean of those of
    the clip and of its mirror image (both images flipped, the flow's u negated;
    docs/METHOD.md, "Test-time mirroring"), ``logits = log mean(softmax(l(x)),
    softmax(l(mirror x)))``; twice the ViT's inference cost. The pixel head sees the clip only
    (it is not trained on mirrored clips). False (default): the clip only."""
    members: int = Field(1, ge=1, le=16)
    """K networks trained apart with seeds ``seed + 1000 k`` (k = 0..K-1; member 0 is the
    single network of the same seed) whose softmax probabilities are averaged, a seed
    ensemble (docs/METHOD.md, "Seed ensemble"); K times the training time. 1 (default):
    one network."""

    @field_validator("patch_weighting", mode="before")
    @classmethod
    def _legacy_patch_weighting(cls, value: Any) -> Any:
        """Configs written before the variants existed said true / false."""
        if isinstance(value, bool):
            return cls.model_fields["patch_weighting"].default if value else "none"
        return value

    @model_validator(mode="after")
    def _check_scales(self) -> ModelConfig:
        if not self.scales or any(s < 1 for s in self.scales):
            raise ValueError("scales must be a non-empty list of factors >= 1")
        if len(set(self.scales)) != len(self.scales):
            raise ValueError("scales must not repeat")
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError("modalities must be a non-empty list without repeats")
        if self.pixel_blend > 0 and "motion" not in self.modalities:
            raise ValueError("pixel_blend > 0 needs the motion modality (the pixel head reads it)")
        if self.stem == "conv" and self.pretrained is not None:
            raise ValueError("stem: conv has no pretrained weights; set pretrained: null")
        if self.stem == "conv" and self.patch_size is not None:
            p = self.patch_size
            if p < 2 or p & (p - 1):
                raise ValueError(f"stem: conv needs a power-of-2 patch_size, got {p}")
        return self


class LossConfig(_Section):
    """L = (1 - alpha) L_con + alpha L_ce (``docs/METHOD.md``, "Training objective")."""

    alpha: float = Field(0.1, ge=0.0, le=1.0)
    tau: float = Field(0.1, gt=0.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    class_weights: bool = False
    """Weight the CE term by inverse class frequency of the training set."""
    same_class_negatives: bool = True
    """False: clips of the same class are not used as negatives in L_con."""


class AugmentConfig(_Section):
    """Applied identically to both images of a clip; a flip negates the flow's u."""

    rotation: float = Field(10.0, ge=0.0)
    """Maximum absolute rotation in degrees."""
    flip: bool = True
    scale: tuple[float, float] = (0.9, 1.1)
    mixup: float = Field(0.0, ge=0.0)
    """Mixup (Zhang et al. 2018): each batch becomes ``lam x_i + (1 - lam) x_perm(i)`` with
    ``lam ~ Beta(a, a)``, ``a`` this value, the same ``lam`` and pairing for both
    modalities, and the loss ``lam L(y_i) + (1 - lam) L(y_perm(i))``; 0 = off."""
    cutmix: float = Field(0.0, ge=0.0)
    """CutMix (Yun et al. 2019): paste one box of the paired clip (the same box in both
    modalities; area ``1 - lam``, ``lam ~ Beta(a, a)``), loss as for mixup; 0 = off. With
    both on, each batch uses one of the two at random."""
    erase: float = Field(0.0, ge=0.0, le=1.0)
    """Random erasing (Zhong et al. 2020): with this probability per clip, one box (area
    ``U[0.02, 1/3]`` of the image, aspect ratio log-uniform in ``[0.3, 3.3]``, position uniform)
    of both images is set to each channel's median, for the motion image about its no-motion
    value; the same box in both modalities; 0 = off."""
    translate: float = Field(0.0, ge=0.0, le=0.25)
    """Maximum shift of both images, as a fraction of the side, drawn uniformly in
    ``[-translate, translate]`` per axis (the residual misalignment of faces aligned on their
    landmarks); 0 = off (docs/METHOD.md, "Training")."""
    elastic: float = Field(0.0, ge=0.0, le=0.1)
    """Elastic warp (Simard et al. 2003, on a coarse grid): a smooth random displacement field,
    the same for both images, through a 4 x 4 grid of control points whose displacements are
    independent N(0, (elastic * side)^2) per axis, interpolated bicubically; 0 = off
    (docs/METHOD.md, "Training")."""


class PretrainConfig(_Section):
    """Label-free masked-autoencoder pretraining of the backbones on the training clips'
    images before supervised training (docs/METHOD.md, "Label-free pretraining")."""

    epochs: int = Field(0, ge=0)
    """Pretraining epochs over the training clips (with ``train.augment``'s geometric
    augmentation, ``train.batch_size``, AdamW, warm-up and cosine decay); 0 = off."""
    mask_ratio: float = Field(0.75, gt=0.0, lt=1.0)
    """Share of each image's patches hidden from the encoder."""
    lr: float = Field(1e-3, gt=0.0)
    warmup_epochs: int = Field(2, ge=0)
    decoder_dim: int = Field(64, ge=8)
    decoder_depth: int = Field(1, ge=1)
    decoder_heads: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _check_heads(self) -> PretrainConfig:
        if self.decoder_dim % self.decoder_heads:
            raise ValueError(
                f"decoder_dim {self.decoder_dim} is not divisible by decoder_heads {self.decoder_heads}"
            )
        return self


class TrainConfig(_Section):
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(5e-5, gt=0.0)
    weight_decay: float = Field(0.05, ge=0.0)
    warmup_epochs: int = Field(0, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    grad_clip: float | None = Field(None, gt=0.0)
    amp: bool = True
    """Mixed precision on CUDA (ignored on CPU)."""
    balanced_sampling: bool = False
    deterministic: bool = False
    num_workers: int = Field(0, ge=0)
    ema_decay: float | None = Field(None, gt=0.0, lt=1.0)
    """Keep an exponential moving average of the weights (timm ``ModelEmaV3``, decay
    warmed up as ``min(d, 1 - (1 + t)^(-2/3))`` at step t) and validate / predict with it;
    None = off (docs/METHOD.md, "Training")."""
    patience: int = Field(5, ge=1)
    """Early stopping: epochs without a better validation UF1 before training stops
    (used only with a validation set, see ``eval.early_stopping``)."""
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)


class EvalConfig(_Section):
    protocol: Literal["loso", "kfold"] = "loso"
    k: int = Field(5, ge=2)
    """Number of subject-grouped folds for ``kfold``."""
    early_stopping: bool = False
    """Stop on a validation split made of other (training) subjects, never the test one."""
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    """Share of the training subjects of each fold held out for early stopping."""


class BaselineConfig(_Section):
    """A reference model run in place of MSMMT under the same folds and report
    (``docs/METHOD.md``, "Baselines"). ``kind: none`` trains MSMMT.

    The pixel baselines see only the motion (u, v, strain) image of each clip, resized to
    ``image_size`` and flattened; features are standardised with statistics of the
    training fold only.
    """

    kind: Literal["none", "svm", "logreg", "ststnet"] = "none"
    """``svm``: RBF support vector machine; ``logreg``: multinomial logistic regression;
    ``ststnet``: the three-stream shallow CNN of Liong et al. (2019)."""
    image_size: int = Field(28, ge=4)
    """Side the motion image is resized to (STSTNet's input is 28 x 28 x 3)."""
    C: float = Field(1.0, gt=0.0)
    """Inverse regularisation strength of the SVM and the logistic regression."""
    gamma: Literal["scale", "auto"] | float = "scale"
    """RBF width of the SVM (scikit-learn's convention: ``scale`` = 1 / (D var(X)))."""
    class_weight: Literal["balanced"] | None = "balanced"
    """``balanced`` weights each class by N / (C n_c) of the training fold (SVM, logreg)."""
    max_iter: int = Field(5000, ge=1)
    """Iterations of the logistic regression's solver."""
    epochs: int = Field(800, ge=1)
    """STSTNet training epochs (the paper's 800); the last epoch's weights are tested."""
    batch_size: int = Field(256, ge=1)
    lr: float = Field(5e-5, gt=0.0)
    """STSTNet's Adam learning rate (the paper's 5e-5)."""

    def describe(self) -> str:
        """One sentence naming the baseline and its settings, for reports."""
        side = f"{self.image_size}x{self.image_size}x3"
        if self.kind == "svm":
            return (f"RBF SVM on the {side} motion-image pixels (C={self.C:g}, gamma={self.gamma}, "
                    f"class_weight={self.class_weight}), scaler fitted on each training fold")
        if self.kind == "logreg":
            return (f"logistic regression on the {side} motion-image pixels (C={self.C:g}, "
                    f"class_weight={self.class_weight}), scaler fitted on each training fold")
        if self.kind == "ststnet":
            return (f"STSTNet (Liong et al. 2019) on the {side} motion images, Adam lr {self.lr:g}, "
                    f"batch {self.batch_size}, {self.epochs} epochs, last epoch tested")
        return "MSMMT"


class SpotConfig(_Section):
    """Micro-expression spotting in long videos (``msmmt spot``, :mod:`msmmt.ops.spotting`)."""

    face_px: int = Field(64, ge=24)
    """Side of the grey face crop the motion is computed on (bounds the time per frame)."""
    k_seconds: float = Field(0.15, gt=0.0)
    """Distance k of the two neighbours each frame is compared with, in seconds."""
    signal_fps: float | None = Field(60.0, gt=0.0)
    """The spotting signal is computed on every s-th frame, ``s = round(fps / signal_fps)``
    (at least 1; None: every frame); onsets and offsets are still found at the full rate.
    Bounds the time of high-speed videos."""
    threshold: float = Field(20.0, gt=0.0)
    """Least robust z-score of the spotting signal at a spotted apex."""
    smooth_seconds: float = Field(0.05, ge=0.0)
    """Moving-average width applied to the signal before peak picking."""
    window_seconds: float = Field(0.4, gt=0.0)
    """Half-width of the search for onset and offset around a peak (neutral frames at its ends)."""
    fraction: float = Field(0.15, gt=0.0, lt=1.0)
    """Onset / offset: where the deviation crosses this fraction of its rise."""
    max_seconds: float | None = Field(0.5, gt=0.0)
    """Longer intervals are not micro-expressions and are dropped (None keeps all)."""
    head_motion: bool = True
    """Remove the head's affine motion from the flow (False: an ablation)."""
    track_seconds: float | None = Field(0.5, gt=0.0)
    """The face is found again every this many seconds (:func:`msmmt.ops.face.follow_face`)
    and the face box moved with it, linearly in between, so a head that drifts across the
    frame (or a cut) keeps its face in the box; None: the box stays where the first
    frame's face was."""

    @model_validator(mode="after")
    def _check_window(self) -> SpotConfig:
        if self.window_seconds < self.k_seconds:
            raise ValueError("window_seconds must be at least k_seconds")
        return self


class Config(_Section):
    """A whole run. ``seed`` and ``device`` apply to every stage.

    Settings of different sections that must agree are checked here:
    ``model.num_classes`` equals the size of ``data.class_set``, and
    ``preprocess.image_size`` (the cached images) is at least ``model.img_size`` (the
    model's base size m). A larger cached image is area-averaged down to m when it is
    loaded, which loses nothing the model could use; a smaller one would be interpolated
    up, adding no information while the finest scale's patches see only blur, and is
    almost always an override of one size without the other.
    """

    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    spot: SpotConfig = Field(default_factory=SpotConfig)

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        """Configs saved before ``eval.patience`` moved to ``train.patience`` still load."""
        old = data.get("eval") if isinstance(data, dict) else None
        if isinstance(old, dict) and "patience" in old:
            data = {**data, "eval": {k: v for k, v in old.items() if k != "patience"}}
            train = data.get("train") or {}
            if isinstance(train, dict):
                data["train"] = {"patience": old["patience"], **train}
        return data

    @model_validator(mode="after")
    def _check_agreement(self) -> Config:
        names = class_names(self.data.class_set)
        if self.model.num_classes != len(names):
            raise ValueError(
                f"model.num_classes is {self.model.num_classes} but data.class_set "
                f"{self.data.class_set!r} has {len(names)} classes {list(names)}; "
                f"set model.num_classes={len(names)}"
            )
        if self.preprocess.image_size < self.model.img_size:
            raise ValueError(
                f"preprocess.image_size {self.preprocess.image_size} is smaller than "
                f"model.img_size {self.model.img_size}: the cached images would be "
                "enlarged; make preprocess.image_size at least model.img_size"
            )
        return self


def _presets_dir() -> Path:
    return Path(str(resources.files("msmmt") / "configs"))


def list_presets() -> list[str]:
    """Names of the built-in YAML presets."""
    return sorted(p.stem for p in _presets_dir().glob("*.yaml"))


def format_errors(err: ValidationError, source: str) -> str:
    """One line per invalid key of ``err``: ``source: key: message`` (``unknown key`` for a key
    the config does not have)."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "value_error" and "error" in e.get("ctx", {}):
            msg = str(e["ctx"]["error"])  # our validators' messages, without pydantic's prefix
        lines.append(f"{source}: {key}: {msg}" if key else f"{source}: {msg}")
    return "\n".join(lines)


def _validate(raw: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_errors(err, source)) from None


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml", ".json"} or path.exists():
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, not a config file")
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    preset = _presets_dir() / f"{name_or_path}.yaml"
    if not preset.is_file():
        raise ConfigError(
            f"{name_or_path}: neither a config file nor a preset "
            f"(presets: {', '.join(list_presets())})"
        )
    return preset


def _at(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _yaml_problem(err: yaml.YAMLError, text: str) -> str:
    """PyYAML's report in one line, with 1-based line and column (not its source excerpt)."""
    if isinstance(err, yaml.reader.ReaderError):
        before = text[: err.position]
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        return f"line {line}, column {column}: {str(err).splitlines()[0]}"
    if not isinstance(err, yaml.MarkedYAMLError):
        return " ".join(str(err).split())
    problem = f"{_at(err.problem_mark)}: {err.problem}" if err.problem_mark else str(err.problem)
    if err.context:
        since = f" from {_at(err.context_mark)}" if err.context_mark else ""
        problem += f" ({err.context}{since})"
    return problem


def _read_yaml(path: Path) -> Any:
    """The parsed content of a UTF-8 YAML (or JSON) file; ConfigError saying what is wrong."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "a config is a YAML file"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err, text)}") from None


def _parse_value(text: str) -> Any:
    """Parse an override value as YAML (``0.2`` -> float, ``[1,2]`` -> list, ``null``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _takes_bool(parts: list[str]) -> bool:
    """Whether the Config field at ``parts`` accepts a boolean (True for unknown keys:
    validation names those; a field marked ``legacy_bool`` maps old booleans itself)."""
    node: Any = Config
    field = None
    for part in parts:
        field = node.model_fields.get(part) if isinstance(node, type) else None
        if field is None:
            return True
        node = field.annotation
    legacy = isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("legacy_bool")
    return bool(legacy) or node is bool or bool in get_args(node)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides to a raw config dict (copied).

    A boolean (``true``/``false``/``yes``...) for a field that is not one is refused:
    pydantic would otherwise read ``train.epochs=true`` as 1.
    """
    out = json.loads(json.dumps(raw))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. model.alpha=0.2")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):
            raise ConfigError(f"--set {item}: the key (or a part of it) is empty; expected KEY=VALUE")
        parsed = _parse_value(value)
        if isinstance(parsed, bool) and not _takes_bool(parts):
            raise ConfigError(f"--set {item}: {key.strip()} does not take true/false")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item}: {part} is not a section")
            node = child
        node[parts[-1]] = parsed
    return out


def load_config(name_or_path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a preset name or YAML/JSON file, apply ``--set`` overrides and validate.

    ``None`` gives the defaults (the paper's settings).
    """
    raw: dict[str, Any] = {}
    source = "defaults"
    if name_or_path is not None:
        path = _resolve(name_or_path)
        source = str(path)
        loaded = _read_yaml(path)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        raw = loaded
    if overrides:
        raw = apply_overrides(raw, overrides)
        source = f"{source} with --set overrides"
    return _validate(raw, source)


def save_config(config: Config, path: str | Path) -> Path:
    """Write ``config`` as YAML next to a run's outputs (atomically)."""
    from msmmt.core.io import atomic_write_text

    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    return atomic_write_text(path, text)


def flat_settings(config: Config) -> dict[str, Any]:
    """``{"loss.alpha": 0.1, "model.scales": [1, 2, 4], ...}``: every key of ``config``."""

    def flat(d: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    return flat(config.model_dump(mode="json"), "")


_NOT_METHOD = ("seed", "device", "data.", "eval.", "train.amp", "train.deterministic",
               "train.num_workers", "train.patience")
"""Keys that say what is evaluated, where and how reproducibly, not what the method is
(the data and protocol are stated beside every result on their own)."""

_FROM_BACKBONE = {"model.patch_size", "model.embed_dim", "model.depth", "model.num_heads"}


def _show(key: str, value: Any) -> str:
    if value is None:
        return "backbone default" if key in _FROM_BACKBONE else "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def departures_from_paper(config: Config) -> list[str]:
    """How ``config`` departs from the ``paper`` preset in the settings of the method.

    One line per differing key, e.g. ``loss.alpha 0.5 (paper 0.1)``: preprocessing,
    architecture and initial weights, loss, optimisation, schedule and augmentation.
    Seed, device, data selection, the evaluation protocol and run-time switches
    (mixed precision, deterministic kernels, loader workers, early-stopping patience)
    are not compared. An empty list means the paper's method as the preset states it.
    """
    paper, ours = flat_settings(load_config("paper")), flat_settings(config)
    keys = [k for k in ours if not k.startswith(_NOT_METHOD) and ours[k] != paper.get(k)]
    return [f"{k} {_show(k, ours[k])} (paper {_show(k, paper.get(k))})" for k in keys]
