"""The Search tab's index: queries ranked exactly as dvsa.align.retrieval ranks the split (both directions),
the on-disk cache read back, rebuilt when the model file changes, and an unreadable cache file rebuilt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dvsa.align.retrieval import retrieve_split, score_matrix
from dvsa.data.images import load_rgb
from dvsa.demo import handlers
from dvsa.demo.index import load_or_build
from dvsa.demo.models import DemoModels, DemoPaths, load_models
from dvsa.errors import InputError
from tests.demo.conftest import save_alignment


@pytest.fixture
def models(paths: DemoPaths) -> DemoModels:
    return load_models(paths, "test")[0]


def test_a_typed_sentence_ranks_the_images_as_retrieval_does(models: DemoModels) -> None:
    r = retrieve_split(models.alignment, models.labels, models.store, "test", models.alignment_params.score, 100)
    scores = score_matrix(r.v, r.region_mask, r.s, r.word_mask, models.alignment_params.score, 100)  # (K, L)
    k = len(r.image_ix)
    for l, words in enumerate(r.sentences.words):
        sentence = " ".join(models.labels.ix_to_word[int(w)] for w in words if w > 0)
        hits = handlers.search_images(models, sentence, k).hits
        assert [h.row for h in hits] == r.image_ix[np.argsort(-scores[:, l], kind="stable")].tolist()
        np.testing.assert_allclose([h.score for h in hits], np.sort(scores[:, l])[::-1], rtol=1e-5, atol=1e-5)
        own = int(r.image_ix[r.sentences.sentence_image[l]])
        assert [h.row for h in hits].index(own) + 1 == r.ranks.search[l]


def test_an_image_ranks_the_sentences_as_retrieval_does(models: DemoModels) -> None:
    r = retrieve_split(models.alignment, models.labels, models.store, "test", models.alignment_params.score, 100)
    n_sentences = len(r.sentences.words)
    for k, row in enumerate(r.image_ix.tolist()):
        hits = handlers.search_sentences(models, load_rgb(models.image_file(row)), n_sentences)
        first_own = next(i for i, h in enumerate(hits) if h.own) + 1
        assert first_own == r.ranks.annotation[k]
        assert sum(h.own for h in hits) == int((r.sentences.sentence_image == k).sum())


def test_unknown_words_are_left_out_and_a_query_of_none_is_an_error(models: DemoModels) -> None:
    known = handlers.search_images(models, "a red circle", 3)
    with_unknown = handlers.search_images(models, "a red zebra circle!", 3)
    assert with_unknown.unknown == ["zebra"] and known.unknown == []
    assert [h.row for h in with_unknown.hits] == [h.row for h in known.hits]
    with pytest.raises(InputError, match=r"no word of the alignment model's vocabulary \(zebra, okapi\)"):
        handlers.search_images(models, "Zebra okapi", 3)


def _index(paths: DemoPaths, models: DemoModels) -> tuple[object, bool]:
    return load_or_build(models.alignment, "max", models.labels, models.store, "test",
                         (paths.alignment, paths.labels, paths.regions), paths.cache_dir)


def test_the_cache_is_read_back_and_rebuilt_when_the_model_file_changes(
    paths: DemoPaths, tmp_path: Path
) -> None:
    models, built = load_models(paths, "test")
    assert built and len(list(paths.cache_dir.glob("test-*.pt"))) == 1
    again, built = load_models(paths, "test")
    assert not built
    assert torch.equal(again.index.v, models.index.v) and torch.equal(again.index.s, models.index.s)
    changed = DemoPaths(**{**paths.__dict__, "alignment": tmp_path / "alignment.pt"})
    save_alignment(changed.alignment, models.labels.ix_to_word, seed=2)  # another model file, same format
    other, built = load_models(changed, "test")
    assert built and not torch.equal(other.index.v, models.index.v)
    assert len(list(paths.cache_dir.glob("test-*.pt"))) == 1  # the other model's cache replaced it


def test_an_unreadable_cache_file_is_rebuilt(paths: DemoPaths) -> None:
    models, _ = load_models(paths, "test")
    (cached,) = paths.cache_dir.glob("test-*.pt")
    cached.write_bytes(b"not a torch file")
    index, built = _index(paths, models)
    assert built and torch.equal(index.v, models.index.v)  # type: ignore[attr-defined]
