"""dvsa: Deep Visual-Semantic Alignments (Karpathy & Fei-Fei, CVPR 2015) as a DVC pipeline."""

__version__ = "0.1.0"
