"""One request of each tab -> its result. Each handler reads the loaded models (never writes them) and builds
its result from fresh objects, so requests served at once cannot mix. Bad input is a DvsaError whose one-line
message the page shows."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dvsa.align.evaluation import SentenceAlignment, figure
from dvsa.align.snippets import viterbi
from dvsa.data.images import load_rgb
from dvsa.data.vocab import tokenize
from dvsa.demo.index import top
from dvsa.demo.models import DemoModels
from dvsa.errors import InputError
from dvsa.features import region_mask
from dvsa.figures.attention import attention_figure, attention_runs, region_colors
from dvsa.metrics.truth import judge
from dvsa.regiondesc.figure import region_figure

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


class UploadError(InputError):
    """An uploaded file that is too large, not an image file, or not readable as one."""


def read_upload(path: str | os.PathLike[str] | None, max_bytes: int) -> Image.Image:
    """The uploaded file as RGB, after the size and type checks (a message naming the file otherwise)."""
    if path is None:
        raise UploadError("no image: upload one or pick an example")
    p = Path(path)
    size = p.stat().st_size if p.is_file() else 0
    if size > max_bytes:
        raise UploadError(f"{p.name}: {size / 1e6:.1f} MB, over the upload limit of {max_bytes / 1e6:g} MB")
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        raise UploadError(f"{p.name}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
    try:
        return load_rgb(p)
    except InputError:
        raise UploadError(f"{p.name}: not a readable image (the file's content is no {p.suffix[1:]} image)") from None


def _hex(color: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


@dataclass
class CaptionResult:
    figure: Image.Image  # the image, each attended region outlined in its words' colour
    html: str  # the caption, each word in its region's colour; true / false claims marked on the shapes world
    caption: str


def caption(models: DemoModels, image: Image.Image, beam_size: int = 3, max_length: int = 16) -> CaptionResult:
    """The beam-search caption of `image` (the code path of `dvsa caption`), each word coloured by the region
    it attended to most; on a searched image with true objects, the truth judge's marks (as in the report)."""
    item = models.captioner([image], beam_size, max_length)[0]
    tokens = item.tokens
    if item.attention is None or not tokens:
        drawn, colors = image, [(0, 0, 0)] * len(tokens)
    else:
        drawn = attention_figure(image, item.boxes, tokens, item.attention)
        by_region = region_colors(attention_runs(tokens, item.attention))
        colors = [by_region[int(a.argmax())] for a in item.attention]
    truth = models.truth_of(image)
    marks: list[bool | None] = [None] * len(tokens)
    verdict = ""
    if truth is not None:
        judgement = judge(tokens, *truth)
        marks, verdict = judgement.token_marks(), (" ✓" if judgement.true else " ✗")
    words = []
    for word, color, mark in zip(tokens, colors, marks):
        cls = {True: ' class="true"', False: ' class="false"'}.get(mark, "")  # type: ignore[arg-type]
        words.append(f'<span{cls} style="color:{_hex(color)}">{html.escape(word)}</span>')
    legend = (
        '<p class="legend">Judged against the image\'s true objects: <span class="true">true mentions</span>, '
        '<span class="false">false claims</span>; ✓ an entirely true caption.</p>' if truth is not None else ""
    )
    body = f'<p class="caption" id="dvsa-caption">{" ".join(words)}{verdict}</p>{legend}'
    return CaptionResult(drawn, body, item.caption)


@dataclass
class DescribeResult:
    figure: Image.Image  # the detections, each labelled with its description (Figure 6 style)
    regions: list[dict[str, object]]  # {box, score, description} of each


def describe(
    models: DemoModels, image: Image.Image, min_score: float = 0.5, beam_size: int = 3, max_length: int = 8
) -> DescribeResult:
    """The detections of `image` scored at least `min_score`, described by the region captioner (`dvsa
    describe`), drawn."""
    regions = models.describer(image, min_score, beam_size, max_length)
    drawn = region_figure(image, [r["box"] for r in regions], [str(r["description"]) for r in regions])
    return DescribeResult(drawn, regions)


@dataclass
class SearchHit:
    row: int  # of labels.h5 / regions.h5 / dataset.json
    score: float  # S_kl, eq. (8)
    figure: Image.Image  # the image with the query's MRF snippets (eqs. (10)-(12)) on their regions


@dataclass
class SearchResult:
    hits: list[SearchHit]
    unknown: list[str]  # the query's words not in the model's vocabulary (left out)


@torch.no_grad()
def search_images(models: DemoModels, sentence: str, k: int = 6) -> SearchResult:
    """The `k` images of the split with the highest S_kl for `sentence`, each with the sentence's snippets."""
    tokens = tokenize(sentence)
    known = [w for w in tokens if w in models.word_to_ix]
    unknown = [w for w in tokens if w not in models.word_to_ix]
    if not known:
        said = f" ({', '.join(unknown)})" if unknown else ""
        raise InputError(f"the query has no word of the alignment model's vocabulary{said}")
    words = np.array([[models.word_to_ix[w] for w in known]], dtype=np.int64)  # (1, N)
    s, wmask = models.alignment.embed_sentences(torch.from_numpy(words))  # (1, N, h), (1, N)
    index = models.index
    scores = index.image_scores(s, wmask)  # (K,)
    hits = []
    for position in top(scores, k).tolist():
        row = int(index.image_rows[position])
        m = int(index.region_mask[position].sum())
        unary = (s[0] @ index.v[position, :m].T).numpy().astype(np.float64)  # (N, M) v_i . s_t
        aligned = SentenceAlignment(row, known, unary.argmax(axis=1), viterbi(unary, models.beta), unary)
        drawn = figure(aligned, models.store, load_rgb(models.image_file(row)))
        hits.append(SearchHit(row, float(scores[position]), drawn))
    return SearchResult(hits, unknown)


@dataclass
class SentenceHit:
    sentence: str
    score: float  # S_kl, eq. (8)
    own: bool  # one of the image's own captions (for an image of the searched split)


@torch.no_grad()
def search_sentences(models: DemoModels, image: Image.Image, k: int = 5) -> list[SentenceHit]:
    """The `k` sentences of the split with the highest S_kl for `image` (Table 1's image annotation)."""
    from dvsa.regions.extract import extract_regions

    r = extract_regions(models.captioner.region_cnn, [image])
    mask = region_mask(r.n_regions, r.feats.shape[1])  # (1, R)
    v = models.alignment.embed_images(torch.from_numpy(r.feats), mask)  # (1, R, h) from fc7, no geometry
    index = models.index
    scores = index.sentence_scores(v.cpu(), mask)  # (L,)
    position = models.position_of(image)
    ix_to_word = models.labels.ix_to_word
    return [
        SentenceHit(
            " ".join(ix_to_word[int(w)] for w in index.words[l] if w > 0),
            float(scores[l]),
            position is not None and int(index.sentence_image[l]) == position,
        )
        for l in top(scores, k).tolist()
    ]
