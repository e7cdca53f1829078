from __future__ import annotations

import numpy as np
import pytest
import torch

from dvsa.caption.config import CaptionerParams
from dvsa.caption.mirror import Mirror
from dvsa.data.config import ShapesParams
from dvsa.data.shapes import make_scene
from dvsa.data.vocab import tokenize
from dvsa.errors import ParamsError
from dvsa.metrics.truth import judge

WORDS = ["a", "red", "circle", "left", "right", "of", "above", "below", "over", "under", "beneath", "is", "the"]
IX_TO_WORD = {i + 1: w for i, w in enumerate(WORDS)}
INDEX = {w: i for i, w in IX_TO_WORD.items()}
SIZE = 128


def geometry_feats(boxes: list[list[float]], n_pad: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (1, R, 3 + 6): a 3-d fc7, then x0, y0, x1, y1 (relative), area, score; the whole image first."""
    rows = [[0.0, 0.0, 1.0, 1.0], *boxes]
    feats = torch.zeros(1, len(rows) + n_pad, 9)
    for r, (x0, y0, x1, y1) in enumerate(rows):
        feats[0, r] = torch.tensor([r, 2.0 * r, 3.0 * r, x0, y0, x1, y1, (x1 - x0) * (y1 - y0), 0.9])
    mask = torch.arange(len(rows) + n_pad)[None] < len(rows)
    return feats, mask


def test_mirrored_boxes_swap_their_sides_and_keep_the_rest() -> None:
    feats, mask = geometry_feats([[0.1, 0.2, 0.3, 0.5]])
    both = Mirror.boxes(feats, mask, torch.tensor([[True, True]]))
    assert torch.allclose(both[0, 1, 3:7], torch.tensor([0.7, 0.5, 0.9, 0.8]))
    assert torch.equal(both[0, 0], feats[0, 0])  # the whole image is its own mirror image
    assert torch.equal(both[..., :3], feats[..., :3]) and torch.equal(both[..., 7:], feats[..., 7:])  # fc7, area, score
    assert torch.equal(both[0, 2], feats[0, 2])  # padding stays zero
    across = Mirror.boxes(feats, mask, torch.tensor([[True, False]]))
    assert torch.allclose(across[0, 1, 3:7], torch.tensor([0.7, 0.2, 0.9, 0.5]))
    assert torch.equal(Mirror.boxes(feats, mask, torch.tensor([[False, False]])), feats)
    assert torch.allclose(Mirror.boxes(both, mask, torch.tensor([[True, True]])), feats)


def test_mirrored_captions_swap_the_direction_words_of_flipped_images_only() -> None:
    mirror = Mirror(IX_TO_WORD, 0.5)
    caps = torch.tensor([[INDEX[w] for w in s.split()] + [0] * (8 - len(s.split())) for s in (
        "a red circle left of a circle", "a circle above the circle", "a circle beneath a circle",
        "a red circle right of a circle",
    )])  # image 0: the first two captions, image 1: the last two
    flips = torch.tensor([[True, True], [False, True]])
    out = [" ".join(IX_TO_WORD[int(t)] for t in row if t) for row in mirror.captions(caps, flips, seq_per_img=2)]
    assert out == [
        "a red circle right of a circle", "a circle below the circle", "a circle above a circle",
        "a red circle right of a circle",
    ]
    assert torch.equal(mirror.captions(caps, flips, 2)[:, -1], caps[:, -1])  # END padding stays
    assert torch.equal(Mirror({1: "left", 2: "of"}, 0.5).captions(torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.bool), 1),
                       torch.tensor([[1, 2]]))  # "right" not in the vocabulary: "left" stays


def test_a_mirrored_scene_is_described_by_its_mirrored_captions() -> None:
    """The world's own captions, mirrored with the boxes, stay true of the mirrored scene (and are false of the
    scene as it was, where they make a direction claim the mirror changes)."""
    vocab = sorted({w for i in range(60) for c in make_scene(7, i, ShapesParams()).captions for w in tokenize(c)})
    ix_to_word = {i + 1: w for i, w in enumerate(vocab)}
    index = {w: i for i, w in ix_to_word.items()}
    mirror = Mirror(ix_to_word, 0.5)
    checked = changed = 0
    for i in range(60):
        scene = make_scene(7, i, ShapesParams())
        objects = [o.to_json() for o in scene.objects]
        feats, mask = geometry_feats([[v / SIZE for v in o["box"]] for o in objects], n_pad=0)
        for flips in ([True, False], [False, True], [True, True]):
            boxes = Mirror.boxes(feats, mask, torch.tensor([flips]))[0, 1:, 3:7] * SIZE
            mirrored = [{**o, "box": [round(float(v)) for v in b]} for o, b in zip(objects, boxes)]
            for raw in scene.captions:
                tokens = tokenize(raw)
                swapped = mirror.captions(torch.tensor([[index[w] for w in tokens]]), torch.tensor([flips]), 1)
                words = [ix_to_word[int(t)] for t in swapped[0]]
                assert judge(words, mirrored, scene.background).true, (raw, flips, words)
                checked += 1
                changed += words != tokens and not judge(words, objects, scene.background).true
    assert checked > 500 and changed > 50


def test_draws_are_the_iterations_and_follow_the_probability() -> None:
    mirror = Mirror(IX_TO_WORD, 0.5)
    a = mirror.draw(1000, seed=3, iteration=10)
    assert a.shape == (1000, 2) and torch.equal(a, mirror.draw(1000, 3, 10)) and not torch.equal(a, mirror.draw(1000, 3, 11))
    assert 0.45 < float(a.float().mean()) < 0.55 and 0.2 < float((a[:, 0] & a[:, 1]).float().mean()) < 0.3
    assert not Mirror(IX_TO_WORD, 0.0).draw(50, 3, 10).any() and Mirror(IX_TO_WORD, 1.0).draw(50, 3, 10).all()


def test_mirroring_needs_the_boxes() -> None:
    with pytest.raises(ParamsError, match="captioner.mirror_prob"):
        CaptionerParams(mirror_prob=0.5, region_geometry=False)


def test_the_cross_entropy_loss_is_that_of_the_mirrored_scenes() -> None:
    from dvsa.caption.train import caption_loss, make_protos
    from dvsa.data.loader import CaptionBatch

    params = CaptionerParams(rnn_size=8, input_encoding_size=8, att_size=8, seq_per_img=2, drop_prob_lm=0.0)
    protos = make_protos(params, len(WORDS), 9, None)
    feats, mask = geometry_feats([[0.1, 0.2, 0.3, 0.5], [0.6, 0.1, 0.9, 0.4]])
    caps = np.array([[INDEX[w] for w in s.split()] + [0] * (7 - len(s.split())) for s in (
        "a red circle left of a circle", "a circle above the circle")])
    batch = CaptionBatch(np.array([0]), caps, (caps > 0).sum(1))

    def source(rows: np.ndarray, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return feats, mask

    mirror = Mirror(IX_TO_WORD, 1.0)
    flipped = mirror.draw(1, params.seed, 3)
    assert flipped.all()
    mirrored = CaptionBatch(batch.image_ix, mirror.captions(torch.from_numpy(caps), flipped, 2).numpy(), batch.lengths)

    def mirrored_source(rows: np.ndarray, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return Mirror.boxes(feats, mask, flipped), mask

    got = caption_loss(protos, source, batch, params, 3, mirror=mirror).value
    assert got == pytest.approx(caption_loss(protos, mirrored_source, mirrored, params, 3).value, abs=1e-6)
    assert got != pytest.approx(caption_loss(protos, source, batch, params, 3).value, abs=1e-4)
