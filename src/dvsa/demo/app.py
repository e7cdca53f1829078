"""The page: three tabs (Caption, Describe, Search) over the loaded models, in Gradio. Offline by
construction: system fonts (no Google Fonts), Gradio's own bundled front end (no CDN), no analytics (set by
``dvsa.demo.command`` before Gradio is imported), no share link. A handler's DvsaError is shown on the page."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import gradio as gr

from dvsa.demo import handlers
from dvsa.demo.models import DemoModels
from dvsa.errors import DvsaError

CSS = """
.caption { font-size: 1.4em; }
.true { text-decoration: underline 2px #1a7f37; }
.false { text-decoration: line-through 2px #c62828; }
.legend { color: #555; font-size: 0.9em; }
"""
N_EXAMPLES = 24


def theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts (no font is fetched from anywhere)."""
    fonts = [gr.themes.Font("system-ui"), gr.themes.Font("Helvetica"), gr.themes.Font("sans-serif")]
    mono = [gr.themes.Font("ui-monospace"), gr.themes.Font("monospace")]
    return gr.themes.Default(font=fonts, font_mono=mono)


def shown(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with a DvsaError turned into Gradio's error message on the page (one line, no traceback)."""

    def wrapped(*args: Any) -> Any:
        try:
            return fn(*args)
        except DvsaError as e:
            raise gr.Error(str(e), print_exception=False) from None

    wrapped.__name__ = fn.__name__
    return wrapped


def build_app(models: DemoModels, max_bytes: int) -> gr.Blocks:
    """The Blocks of the three tabs; `max_bytes` is the upload limit the handlers check."""
    examples = [[str(p)] for p in models.examples()[:N_EXAMPLES]]
    split = models.index.split

    @shown
    def caption(path: str | None) -> tuple[Any, str]:
        result = handlers.caption(models, handlers.read_upload(path, max_bytes))
        return result.figure, result.html

    @shown
    def describe(path: str | None, min_score: float) -> tuple[Any, str]:
        result = handlers.describe(models, handlers.read_upload(path, max_bytes), min_score)
        rows = "".join(
            f"<tr><td>{k + 1}</td><td>{html.escape(str(r['description']))}</td><td>{r['score']:.2f}</td>"
            f"<td>{', '.join(f'{c:g}' for c in r['box'])}</td></tr>"  # type: ignore[union-attr]
            for k, r in enumerate(result.regions)
        )
        table = (
            f'<table id="dvsa-regions"><tr><th>#</th><th>description</th><th>score</th><th>box</th></tr>{rows}</table>'
            if rows else '<p id="dvsa-regions">no detection scored that high</p>'
        )
        return result.figure, table

    @shown
    def search(sentence: str, k: float) -> tuple[list[tuple[Any, str]], str]:
        result = handlers.search_images(models, sentence, int(k))
        gallery = [
            (hit.figure, f"#{rank + 1} · S = {hit.score:.2f} · {models.image_file(hit.row).name}")
            for rank, hit in enumerate(result.hits)
        ]
        note = f"Not in the vocabulary, left out: {', '.join(result.unknown)}" if result.unknown else ""
        return gallery, note

    @shown
    def sentences(path: str | None, k: float) -> str:
        hits = handlers.search_sentences(models, handlers.read_upload(path, max_bytes), int(k))
        items = "".join(
            f"<li>{html.escape(h.sentence)} <small>(S = {h.score:.2f}{' · its own caption' if h.own else ''})"
            "</small></li>"
            for h in hits
        )
        return f'<ol id="dvsa-sentences">{items}</ol>'

    upload = {"file_types": ["image"], "type": "filepath", "height": 120}
    with gr.Blocks(title="dvsa demo") as app:
        gr.Markdown(
            "# Deep visual-semantic alignments\nThe trained models of this checkout "
            "(Karpathy & Fei-Fei, CVPR 2015; neuraltalk2's captioner)."
        )
        with gr.Tab("Caption"):
            with gr.Row():
                with gr.Column(scale=1):
                    cap_in = gr.File(label="image", elem_id="caption-upload", **upload)
                    cap_btn = gr.Button("Caption", variant="primary", elem_id="caption-button")
                    gr.Examples(examples, cap_in, label=f"{split} images", examples_per_page=12)
                with gr.Column(scale=2):
                    cap_html = gr.HTML(elem_id="caption-text")
                    cap_fig = gr.Image(label="where each word looked", type="pil", format="jpeg", interactive=False)
            for trigger in (cap_in.upload, cap_btn.click):
                trigger(caption, cap_in, [cap_fig, cap_html])
        with gr.Tab("Describe"):
            with gr.Row():
                with gr.Column(scale=1):
                    des_in = gr.File(label="image", elem_id="describe-upload", **upload)
                    des_min = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="minimum detection score")
                    des_btn = gr.Button("Describe", variant="primary", elem_id="describe-button")
                    gr.Examples(examples, des_in, label=f"{split} images", examples_per_page=12)
                with gr.Column(scale=2):
                    des_fig = gr.Image(
                        label="regions and their descriptions", type="pil", format="jpeg", interactive=False
                    )
                    des_html = gr.HTML()
            for trigger in (des_in.upload, des_btn.click):
                trigger(describe, [des_in, des_min], [des_fig, des_html])
        with gr.Tab("Search"):
            gr.Markdown(f"Sentence → the {split} images with the highest eq. (8) score, each with the sentence's "
                        "MRF snippets on their regions (eqs. (10)-(12)).")
            with gr.Row():
                query = gr.Textbox(label="sentence", placeholder="a red circle left of a blue square",
                                   elem_id="search-query", scale=4)
                top_k = gr.Slider(1, 12, value=6, step=1, label="images", scale=1)
                search_btn = gr.Button("Search", variant="primary", elem_id="search-button", scale=1)
            note = gr.Markdown()
            gallery = gr.Gallery(label="images", columns=3, height="auto", format="jpeg", elem_id="search-results")
            for trigger in (query.submit, search_btn.click):
                trigger(search, [query, top_k], [gallery, note])
            gr.Markdown(f"Image → the {split} sentences with the highest eq. (8) score.")
            with gr.Row():
                with gr.Column(scale=1):
                    img_in = gr.File(label="image", elem_id="sentences-upload", **upload)
                    sent_k = gr.Slider(1, 20, value=5, step=1, label="sentences")
                    img_btn = gr.Button("Best sentences", variant="primary")
                    gr.Examples(examples, img_in, label=f"{split} images", examples_per_page=12)
                with gr.Column(scale=2):
                    sent_html = gr.HTML()
            for trigger in (img_in.upload, img_btn.click):
                trigger(sentences, [img_in, sent_k], sent_html)
    return app
