"""The captioning report, reports/index.html (``page``), and its per-image table (``per_image``)."""
