"""reports/index.html: a static page in the spirit of neuraltalk2's vis/ (open it from disk, no server).

A grid of evaluated images, each with the generated caption (on the shapes world its true mentions in green
and its false claims in red, struck through), the nearest-neighbour baseline's caption, the reference
sentences, the regions the caption's words attended to (attention models) and, when the evaluate_alignment
stage drew one for that image (reports/alignment/ ``NN_<image file stem>.png``), its snippet figure; above it
the metrics tables, model vs baseline. Thumbnails and attention figures go to reports/captioning/. All text is HTML-escaped. A small inline script records, once the page has
loaded, how many images decoded (``<body data-images-loaded=.. data-images-total=..>``) so that a headless
browser can check the page. Given the per-image table (dvsa.report.per_image), each card shows its CIDEr and
BLEU-4 and the page can order the shown images by CIDEr, worst first (the link ``#worst-first``, plain script,
``<body data-order=..>`` says which order is shown).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

from dvsa.caption.evaluation import CaptionEvaluation
from dvsa.data.dataset import image_path
from dvsa.data.images import load_rgb
from dvsa.figures.attention import attention_figure
from dvsa.io import atomic_path
from dvsa.metrics.coco import METRICS
from dvsa.metrics.truth import Judgement

if TYPE_CHECKING:
    import pandas as pd

THUMBS = "captioning"  # folder beside index.html
THUMB_SIZE = 256
_FIGURE = re.compile(r"^\d+_(.+)\.png$")

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; }
td, th { border: 1px solid #bbb; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 14px; }
.item { border: 1px solid #ddd; padding: 8px; margin: 0; }
.item img.photo { width: 256px; max-width: 100%; display: block; margin: 0 auto 6px; }
.item img.alignment { max-width: 100%; display: block; margin-top: 6px; }
.generated { font-weight: bold; font-size: 1.05em; margin: 4px 0; }
.baseline { color: #555; margin: 4px 0; }
.refs { color: #444; font-size: 0.9em; margin: 4px 0; padding-left: 1.4em; }
.unavailable { color: #999; }
.true { color: #1a7f37; }
.false { color: #c62828; text-decoration: line-through; }
.legend { font-size: 0.9em; color: #555; }
.scores { font-size: 0.9em; color: #555; margin: 4px 0; }
.order a { margin: 0 4px; }
.order a.active { font-weight: bold; color: #222; text-decoration: none; }
"""

SCRIPT = """
function applyOrder() {
  var grid = document.querySelector(".grid");
  var worst = location.hash === "#worst-first" && document.querySelector(".item[data-cider]") !== null;
  var cards = Array.prototype.slice.call(grid.children);
  cards.sort(function (a, b) {
    var byScore = worst ? Number(a.dataset.cider) - Number(b.dataset.cider) : 0;
    return byScore || Number(a.dataset.position) - Number(b.dataset.position);
  });
  cards.forEach(function (card) { grid.appendChild(card); });
  document.body.setAttribute("data-order", worst ? "worst-first" : "default");
  Array.prototype.forEach.call(document.querySelectorAll(".order a"), function (a) {
    a.classList.toggle("active", (a.getAttribute("href") === "#worst-first") === worst);
  });
}
applyOrder();
window.addEventListener("hashchange", applyOrder);
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  document.body.setAttribute("data-images-total", images.length);
  document.body.setAttribute("data-images-loaded",
    images.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length);
});
"""


def alignment_figures(folder: Path) -> dict[str, str]:
    """{image file stem: figure file name} of the evaluate_alignment figures in `folder` (may not exist)."""
    if not folder.is_dir():
        return {}
    out = {}
    for f in sorted(folder.glob("*.png")):
        m = _FIGURE.match(f.name)
        if m:
            out.setdefault(m.group(1), f.name)
    return out


def write_report(
    html_path: str | Path,
    ev: CaptionEvaluation,
    dataset: dict[str, Any],
    n_images: int,
    figures_dir: str | Path | None = None,
    boxes: np.ndarray | None = None,
    per_image: pd.DataFrame | None = None,
) -> int:
    """Write `html_path` and its thumbnails folder atomically; return how many images the grid shows.

    `figures_dir` is the alignment figures folder; links to it are relative to `html_path`'s folder.
    `boxes` (N, R, 4), the regions of every dataset row, are needed to draw where the words attended.
    `per_image`, the per-image table of `ev` (rows in `ev`'s order, columns CIDEr and Bleu_4), adds each
    image's scores and the worst-first order.
    """
    html_path = Path(html_path)
    figures = alignment_figures(Path(figures_dir)) if figures_dir is not None else {}
    rel_figures = Path(os.path.relpath(figures_dir, html_path.parent)).as_posix() if figures else ""
    stems = [Path(dataset["images"][int(r)]["filename"]).stem for r in ev.rows]
    order = sorted(range(len(ev.rows)), key=lambda k: (stems[k] not in figures, k))[:n_images]
    cards = []
    with atomic_path(html_path.parent / THUMBS) as thumbs:
        thumbs.mkdir(parents=True)
        for position, k in enumerate(order):
            info = dataset["images"][int(ev.rows[k])]
            image = load_rgb(image_path(dataset["image_root"], info))
            attended = None
            tokens = ev.captions[k].split()
            if ev.attention is not None and boxes is not None and tokens:
                attended = f"{k:05d}_attention.png"
                attention_figure(image, boxes[int(ev.rows[k])], tokens, ev.attention[k]).save(thumbs / attended)
            image.thumbnail((THUMB_SIZE, THUMB_SIZE))
            name = f"{k:05d}.jpg"
            image.save(thumbs / name, quality=90)
            figure = f"{rel_figures}/{figures[stems[k]]}" if stems[k] in figures else None
            attended_path = f"{THUMBS}/{attended}" if attended else None
            scores = None
            if per_image is not None:
                scores = float(per_image["CIDEr"].iloc[k]), float(per_image["Bleu_4"].iloc[k])
            cards.append(_card(ev, k, position, f"{THUMBS}/{name}", info["filename"], figure, attended_path, scores))
        page = _page(ev, dataset.get("dataset", ""), cards, per_image is not None)
        with atomic_path(html_path) as tmp:
            tmp.write_text(page, encoding="utf-8")
    return len(cards)


def marked(caption: str, judgement: Judgement | None) -> str:
    """The caption as HTML, words of true mentions in a ``true`` span and of false claims in a ``false`` one."""
    if judgement is None:
        return html.escape(caption)
    words = []
    for word, mark in zip(judgement.tokens, judgement.token_marks()):
        cls = {True: "true", False: "false"}.get(mark)  # type: ignore[arg-type]
        words.append(f'<span class="{cls}">{html.escape(word)}</span>' if cls else html.escape(word))
    return " ".join(words)


def _figure_link(path: str | None, cls: str, alt: str) -> str:
    """A labelled, linked figure (the label is `alt`)."""
    if not path:
        return ""
    src = html.escape(quote(path))
    return f'<p class="legend">{html.escape(alt)}:</p><a href="{src}"><img class="{cls}" src="{src}" alt="{html.escape(alt)}"></a>'


def _card(
    ev: CaptionEvaluation,
    k: int,
    position: int,
    thumb: str,
    filename: str,
    figure: str | None,
    attended: str | None,
    scores: tuple[float, float] | None,
) -> str:
    """One image's card; `position` is its place in the default order, `scores` its (CIDEr, BLEU-4)."""
    e = html.escape
    refs = "".join(f"<li>{e(r)}</li>" for r in ev.references[k])
    truth = ev.truth[k] if ev.truth is not None else None
    baseline_truth = ev.baseline_truth[k] if ev.baseline_truth is not None else None
    verdict = "" if truth is None else (" ✓" if truth.true else " ✗")
    cider = "" if scores is None else f' data-cider="{scores[0]:.6g}"'
    score_line = "" if scores is None else f'<p class="scores">CIDEr {scores[0]:.3f} · BLEU-4 {scores[1]:.3f}</p>'
    return (
        f'<figure class="item" data-image-id="{e(str(ev.image_ids[k]))}" data-position="{position}"{cider}>'
        f'<img class="photo" src="{e(quote(thumb))}" alt="{e(filename)}">'
        f'<figcaption><p class="generated">{marked(ev.captions[k], truth)}{verdict}</p>{score_line}'
        f'<p class="baseline">nearest neighbour: {marked(ev.baseline[k], baseline_truth)}</p>{_asked_lines(ev, k)}'
        f'<ol class="refs">{refs}</ol></figcaption>'
        f'{_figure_link(attended, "alignment", "where the generated words looked (attention)")}'
        f'{_figure_link(figure, "alignment", "alignment of a reference sentence (evaluate_alignment)")}</figure>'
    )


def _asked_lines(ev: CaptionEvaluation, k: int) -> str:
    """Image k's captions asked for a count and for a relation, marked as the caption is."""
    lines = []
    for kind, captions in ev.asked.items():
        judgement = ev.asked_truth[kind][k] if kind in ev.asked_truth else None
        verdict = "" if judgement is None else (" ✓" if judgement.true else " ✗")
        lines.append(f'<p class="baseline">asked for a {html.escape(kind)}: {marked(captions[k], judgement)}{verdict}</p>')
    return "".join(lines)


TRUTH_ROWS = (  # key, label, the key of how many claims the precision is over (None: every caption / object)
    ("mention_precision", "colour+shape mentions that are true", "n_mentions"),
    ("captions_true", "captions entirely true", None),
    ("objects_named", "true objects named (by colour+shape)", None),
    ("count_precision", "counts that are true", "n_counts"),
    ("relation_precision", "left/right/above/below relations that are true", "n_relations"),
)


def _truth_cell(truth: dict[str, Any], key: str, claims: str | None) -> str:
    """A precision with the number of claims it is over; "no claim made" where there is none."""
    n = truth.get(claims) if claims else None
    if n == 0:
        return '<td class="unavailable">no claim made</td>'
    if isinstance(n, int) and isinstance(truth[key], float):
        return f'<td>{truth[key]:.3f} <span class="legend">of {n}</span></td>'
    return _cell(truth[key], "no such claim")


def _truth_table(m: dict[str, Any]) -> str:
    if "truth" not in m:
        return ""
    model, baseline = m["truth"]["model"], m["truth"]["nn_baseline"]
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td>{_truth_cell(model, key, n)}{_truth_cell(baseline, key, n)}</tr>"
        for key, label, n in TRUTH_ROWS
    )
    return f"""<h2>Truth of the captions</h2>
<p class="legend">Judged against the image's objects by the world's grammar: <span class="true">true mentions</span>,
<span class="false">false claims</span>; ✓ marks a caption that is entirely true.</p>
<table id="truth"><tr><th>measure</th><th>model</th><th>nearest neighbour</th></tr>
{rows}
</table>"""


ASKED_ROWS = (  # claim kind, label, its precision and claims keys in the truth summary
    ("count", "asked for a count: counts that are true", "count_precision", "n_counts"),
    ("relation", "asked for a relation: relations that are true", "relation_precision", "n_relations"),
)


def _asked_table(m: dict[str, Any]) -> str:
    """The truth of the captions asked for a count or a relation (dvsa.caption.evaluation.ask)."""
    asked = m.get("truth_asked")
    if not asked:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td>{_truth_cell(asked[kind], key, n)}"
        f"{_cell(asked[kind]['captions_true'])}</tr>"
        for kind, label, key, n in ASKED_ROWS
        if kind in asked
    )
    pairs = m.get("direction_pairs")
    if pairs:
        frequency = pairs.get("word_frequency")
        known = "" if frequency is None else f" (by word frequencies alone: {frequency:.3f})"
        rows += (f"<tr><td>relation references preferred to their direction flipped{known}</td>"
                 f"{_truth_cell(pairs, 'preferred', 'n_pairs')}<td></td></tr>")
        if pairs.get("landmark") is not None:
            rows += ("<tr><td>their landmark more likely after the true direction than after the flipped one "
                     f"(ignoring the direction: 0.500)</td>{_truth_cell(pairs, 'landmark', 'n_pairs')}<td></td></tr>")
        if pairs.get("mirror") is not None:
            rows += ("<tr><td>their direction word losing ground to its flip when the image's boxes are mirrored "
                     f"(blind to the boxes: 0.500)</td>{_truth_cell(pairs, 'mirror', 'n_pairs')}<td></td></tr>")
    return f"""<p class="legend">Asked: each image's most likely caption that holds a count word or a relation
word (constrained beam search), judged alike; and each true relation reference against the same sentence with its
direction flipped (teacher forced, no decoding). They say whether the captioner knows what it does not say
unasked; captions_per_image.csv has the asked captions.</p>
<table id="asked"><tr><th>measure</th><th>model</th><th>captions entirely true</th></tr>
{rows}
</table>"""


def _cell(value: Any, reason: str = "") -> str:
    if isinstance(value, float):
        return f"<td>{value:.3f}</td>"
    if value is None:
        return f'<td class="unavailable" title="{html.escape(reason)}">–</td>'

    return f'<td class="unavailable" title="{html.escape(reason)}">{html.escape(str(value))}</td>'


def _order_control(n_shown: int) -> str:
    """The links that order the grid: the default order, or by per-image CIDEr, worst first (see SCRIPT)."""
    return (
        '<p class="order">Order: <a href="#">images with an alignment figure first</a> · '
        '<a href="#worst-first">CIDEr, worst first</a> '
        f'<span class="legend">(of the {n_shown} shown; every image of the split is in '
        "data/eval/captions_per_image.csv)</span></p>"
    )


def _page(ev: CaptionEvaluation, dataset_name: str, cards: list[str], sortable: bool) -> str:
    e = html.escape
    m = ev.metrics
    reasons = m.get("unavailable", {})
    rows = []
    for metric in METRICS:
        margin = m["margin"].get(metric)
        rows.append(
            f"<tr><td>{e(metric)}</td>{_cell(m['model'][metric], reasons.get(metric, ''))}"
            f"{_cell(m['nn_baseline'][metric], reasons.get(metric, ''))}"
            f"{_cell(margin) if margin is not None else '<td></td>'}</tr>"
        )
    d = m["decoding"]
    decoding = d["method"] + "".join(f", {k.replace('_', ' ')} {d[k]}" for k in ("beam_size", "temperature") if k in d)
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>dvsa: captions on the {e(m['split'])} split</title><style>{STYLE}</style></head>
<body>
<h1>Captions on the {e(m['split'])} split of {e(dataset_name)}</h1>
<p>{m['n_images']} images, decoding: {e(decoding)}, length cap {d['max_length']}.
Test perplexity {m['model']['perplexity']:.3f}.</p>
<h2>Metrics</h2>
<table id="metrics">
<tr><th>metric</th><th>model</th><th>nearest neighbour</th><th>margin</th></tr>
{chr(10).join(rows)}
</table>
{_truth_table(m)}
{_asked_table(m)}
<h2>Images ({len(cards)} of {m['n_images']})</h2>
{_order_control(len(cards)) if sortable else ''}
<div class="grid">
{chr(10).join(cards)}
</div>
<script>{SCRIPT}</script>
</body>
</html>
"""
