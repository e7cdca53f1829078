"""What the evaluations measure, with no model code (docs/design.md, "Layers"): COCO caption scores
(``coco``, ``coco_results``), the truth judge of the shapes world (``truth``), the image-sentence ranking
figures of Table 1 (``ranking``), the one cosine nearest-neighbour search (``neighbours``) and the
nearest-neighbour caption baseline built on it (``baselines``)."""
