"""The MSMMT network: timm ViT backbones with attention-guided patch weighting, fusion, losses."""

from msmmt.model.build import build_model
from msmmt.model.ensemble import SeedEnsemble
from msmmt.model.msmmt import MSMMT, MSMMTFeatures, MSMMTOutput

__all__ = ["MSMMT", "MSMMTFeatures", "MSMMTOutput", "SeedEnsemble", "build_model"]
