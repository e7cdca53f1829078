"""The labels x regions join: row i of labels.h5 and of regions.h5 are the same image (``check_rows``), and the
one feature-source type every model reads its images through (``FeatureSource``: ``CachedFeatures`` of
regions.h5 with or without region geometry, ``OneRegion``, ``dvsa.caption.cnn.PixelFeatures``), with the one
feature-dimension check (``check_feature_dim``). docs/design.md, "Layers": above dvsa.regions and dvsa.data,
below the models; ``dvsa.features.fingerprint`` (the trainers' data fingerprint) is imported on its own."""

from dvsa.features.one_region import OneRegion
from dvsa.features.rows import SKIPPED, check_rows, label_image_ids, without_skipped
from dvsa.features.source import (
    GEOMETRY_DIM,
    CachedFeatures,
    FeatureSource,
    check_feature_dim,
    feature_dim,
    feature_stats,
    region_geometry,
    region_mask,
    with_geometry,
)

__all__ = [
    "GEOMETRY_DIM",
    "SKIPPED",
    "CachedFeatures",
    "FeatureSource",
    "OneRegion",
    "check_feature_dim",
    "check_rows",
    "feature_dim",
    "feature_stats",
    "label_image_ids",
    "region_geometry",
    "region_mask",
    "with_geometry",
    "without_skipped",
]
