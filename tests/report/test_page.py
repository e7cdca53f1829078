from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dvsa.caption.evaluation import CaptionEvaluation
from dvsa.metrics.coco import METRICS
from dvsa.report.page import write_report
from tests.browser import dump_dom, find_chromium

EVIL = '<script>alert("x")</script> & <b>bold</b>'


def dataset(root: Path, n: int) -> dict[str, Any]:
    (root / "imgs" / "sub").mkdir(parents=True)
    images = []
    for i in range(n):
        Image.new("RGB", (60 + i, 40), (40 * i % 255, 100, 200)).save(root / "imgs" / "sub" / f"pic{i}.png")
        images.append({"filepath": "sub", "filename": f"pic{i}.png", "split": "test", "sentences": []})
    return {"dataset": "tiny", "image_root": str(root / "imgs"), "images": images}


def evaluation(n: int) -> CaptionEvaluation:
    scores = {m: 0.5 for m in METRICS}
    scores["SPICE"] = "unavailable"
    return CaptionEvaluation(
        rows=np.arange(n),
        image_ids=list(range(100, 100 + n)),
        captions=[EVIL if i == 0 else f"generated caption {i}" for i in range(n)],
        baseline=[f"baseline caption {i}" for i in range(n)],
        references=[[f"reference {i}.{j}" for j in range(5)] for i in range(n)],
        metrics={
            "split": "test",
            "n_images": n,
            "decoding": {"method": "beam", "beam_size": 3, "max_length": 16},
            "model": {**scores, "perplexity": 3.25},
            "nn_baseline": dict(scores),
            "margin": {m: 0.0 for m in METRICS if m != "SPICE"},
            "unavailable": {"SPICE": "downloads models"},
        },
    )


@pytest.fixture
def report(tmp_path: Path) -> Path:
    data = dataset(tmp_path, 4)
    figures = tmp_path / "reports" / "alignment"
    figures.mkdir(parents=True)
    Image.new("RGB", (50, 30), (255, 0, 0)).save(figures / "01_pic2.png")
    shown = write_report(tmp_path / "reports" / "index.html", evaluation(4), data, 3, figures)
    assert shown == 3
    return tmp_path / "reports" / "index.html"


def test_captions_are_escaped(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page


def test_images_with_an_alignment_figure_come_first_and_link_it(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    ids = re.findall(r'data-image-id="(\d+)"', page)
    assert ids == ["102", "100", "101"]  # pic2 has a figure; 3 images shown
    assert page.count('src="alignment/01_pic2.png"') == 1
    assert len(list((report.parent / "captioning").glob("*.jpg"))) == 3


@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (Debian: apt-get install -y chromium)")
def test_headless_chromium_shows_images_captions_and_metrics(report: Path) -> None:
    dom = dump_dom(report)
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None
    total = re.search(r'data-images-total="(\d+)"', body.group(1))
    loaded = re.search(r'data-images-loaded="(\d+)"', body.group(1))
    assert total and loaded, "the page's load script did not run"
    assert int(total.group(1)) == 4  # 3 thumbnails + 1 alignment figure
    assert int(loaded.group(1)) == 4  # every image decoded
    for text in ("generated caption 1", "baseline caption 2", "reference 1.4", "perplexity 3.250", "CIDEr"):
        assert text in dom, text
    assert "&lt;script&gt;alert" in dom  # shown as text, never run


def test_a_missing_thumbnail_is_seen_by_the_browser_check(report: Path) -> None:
    if find_chromium() is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium)")
    next((report.parent / "captioning").glob("*.jpg")).unlink()
    dom = dump_dom(report)
    assert 'data-images-loaded="3"' in dom and 'data-images-total="4"' in dom


def test_truth_marks_and_attention_figures(tmp_path: Path) -> None:
    from dvsa.metrics.truth import judge

    data = dataset(tmp_path, 2)
    objects = [{"box": [5, 5, 20, 20], "color": "red", "shape": "circle", "size": "large"}]
    ev = evaluation(2)
    ev.captions = ["a red circle", "a blue star"]
    ev.truth = [judge(c.split(), objects, None) for c in ev.captions]
    ev.baseline_truth = [judge(c.split(), objects, None) for c in ev.baseline]
    ev.metrics["truth"] = {name: {"mention_precision": 0.5, "captions_true": 0.5, "objects_named": 1.0,
                                  "count_precision": None, "relation_precision": 0.25, "n_mentions": 2,
                                  "n_counts": 0, "n_relations": 4} for name in ("model", "nn_baseline")}
    ev.attention = np.zeros((2, 16, 20), np.float32)
    ev.attention[:, :3, 1] = 1.0  # every word looked at region 1
    boxes = np.zeros((2, 20, 4), np.float32)
    boxes[:, 0] = [0, 0, 60, 40]
    boxes[:, 1] = [5, 5, 20, 20]
    write_report(tmp_path / "reports" / "index.html", ev, data, 2, None, boxes)
    page = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")
    assert '<span class="true">red</span>' in page and '<span class="false">star</span>' in page
    assert 'id="truth"' in page and "captions entirely true" in page
    truth = page[page.index('id="truth"') :]
    assert "no claim made" in truth and "0.250 <span" in truth and "of 4</span>" in truth  # a precision's claims
    assert 'id="asked"' not in page  # nothing asked: no table
    ev.metrics["truth_asked"] = {"relation": {**ev.metrics["truth"]["model"], "relation_precision": 0.375,
                                              "n_relations": 8, "captions_true": 0.125}}
    write_report(tmp_path / "reports" / "index.html", ev, data, 2, None, boxes)
    asked = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8").split('id="asked"')[1]
    assert "asked for a relation" in asked and "0.375 <span" in asked and "of 8" in asked and "0.125" in asked
    assert "asked for a count" not in asked and "direction flipped" not in asked
    ev.metrics["direction_pairs"] = {"preferred": 0.625, "landmark": 0.5625, "mirror": 0.8125, "word_frequency": 0.4375, "n_pairs": 16}
    ev.asked = {"relation": ["a red circle left of a blue star", "a blue star above a red circle"]}
    ev.asked_truth = {"relation": [judge(c.split(), objects, None) for c in ev.asked["relation"]]}
    write_report(tmp_path / "reports" / "index.html", ev, data, 2, None, boxes)
    asked = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8").split('id="asked"')[1]
    assert "direction flipped (by word frequencies alone: 0.438)</td><td>0.625 <span" in asked and "of 16" in asked
    assert "flipped one (ignoring the direction: 0.500)</td><td>0.562 <span" in asked
    assert "mirrored (blind to the boxes: 0.500)</td><td>0.812 <span" in asked
    lines = asked.split('<p class="baseline">asked for a relation: ')[1:]  # one per card, marked
    assert len(lines) == 2 and '<span class="false">star</span>' in lines[0] and "✗" in lines[0]
    figures = sorted((tmp_path / "reports" / "captioning").glob("*_attention.png"))
    assert len(figures) == 2 and page.count("_attention.png") == 4  # link + image per card
    assert Image.open(figures[0]).height > 40  # the picture with its caption strip


CIDER = [0.5, 0.1, 2.0, 0.3]  # of images 100..103


@pytest.fixture
def scored_report(tmp_path: Path) -> Path:
    root = tmp_path / "scored"
    data = dataset(root, 4)
    figures = root / "reports" / "alignment"
    figures.mkdir(parents=True)
    Image.new("RGB", (50, 30), (255, 0, 0)).save(figures / "01_pic2.png")
    table = pd.DataFrame({"image_id": range(100, 104), "CIDEr": CIDER, "Bleu_4": [0.25, 0.0, 1.0, 0.125]})
    write_report(root / "reports" / "index.html", evaluation(4), data, 3, figures, per_image=table)
    return root / "reports" / "index.html"


def test_cards_carry_their_scores_and_the_order_links(scored_report: Path, report: Path) -> None:
    page = scored_report.read_text(encoding="utf-8")
    assert re.findall(r'data-image-id="(\d+)" data-position="(\d)" data-cider="([\d.]+)"', page) == [
        ("102", "0", "2"), ("100", "1", "0.5"), ("101", "2", "0.1")
    ]
    assert "CIDEr 0.100 · BLEU-4 0.000" in page and '<a href="#worst-first">CIDEr, worst first</a>' in page
    plain = report.read_text(encoding="utf-8")  # without the per-image table: no scores, no order links
    assert 'data-cider="' not in plain and "worst-first</a>" not in plain


@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (Debian: apt-get install -y chromium)")
def test_headless_chromium_orders_the_images_worst_first(scored_report: Path) -> None:
    def shown(dom: str) -> list[str]:
        return re.findall(r'<figure class="item" data-image-id="(\d+)"', dom)

    dom = dump_dom(scored_report)
    assert 'data-order="default"' in dom and shown(dom) == ["102", "100", "101"]
    dom = dump_dom(scored_report, fragment="worst-first")
    assert 'data-order="worst-first"' in dom
    assert shown(dom) == ["101", "100", "102"]  # CIDEr 0.1, 0.5, 2.0 (103, CIDEr 0.3, is not among the 3 shown)
    assert re.search(r'<a href="#worst-first" class="active">', dom)
