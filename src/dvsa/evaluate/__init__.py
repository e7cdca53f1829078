"""Evaluation: COCO caption metrics, baselines, reports and figures."""
