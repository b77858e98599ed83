"""The MSMMT network: timm ViT backbones with attention-guided patch weighting, fusion, losses."""

from msmmt.model.msmmt import MSMMT, MSMMTFeatures, MSMMTOutput, build_model

__all__ = ["MSMMT", "MSMMTFeatures", "MSMMTOutput", "build_model"]
