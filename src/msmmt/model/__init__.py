"""The MSMMT network: timm ViT backbones with attention-guided patch weighting, fusion, losses."""
