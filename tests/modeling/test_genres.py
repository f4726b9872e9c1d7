"""Genre bank: the 21 genres, their definitions, the embedding cache and the genre mask."""

from __future__ import annotations

import pytest
import torch
from sseg.kernels import AGResidual, ag_residual_reference
from torch import nn

from sseg._compat import import_open_clip
from sseg.errors import InputError
from sseg.modeling import genres
from sseg.modeling.genres import GENRES, genre_embeddings, genre_mask, genre_texts

IMDB_22 = {
    "Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama",
    "Family", "Fantasy", "Film-Noir", "History", "Horror", "Music", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Sport", "Thriller", "War", "Western",
}  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    return import_open_clip().get_tokenizer("ViT-B-32")


class FakeClip(nn.Module):
    """Tiny CLIP stand-in: a text tower (embedding + projection) that counts its calls."""

    def __init__(self, seed: int = 0, dim: int = 8):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.token_embedding = nn.Embedding(49408, dim)
        self.text_projection = nn.Parameter(torch.randn(dim, dim, generator=gen))
        self.visual = nn.Linear(2, 2)  # image tower: must not affect the text fingerprint
        with torch.no_grad():
            self.token_embedding.weight.copy_(torch.randn(49408, dim, generator=gen))
        self.calls = 0

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.token_embedding(tokens).mean(1) @ self.text_projection


def test_twenty_one_unique_imdb_genres_without_documentary():
    assert len(GENRES) == 21 == len(set(GENRES))
    assert set(GENRES) == IMDB_22 - {"Documentary"}
    assert genre_texts("name") == list(GENRES)


def test_definitions_are_distinct_sentences_that_fit_clip_context(tokenizer):
    defs = genre_texts("definition")
    assert len(defs) == 21 == len(set(defs))
    for name, text in zip(GENRES, defs, strict=True):
        assert text != name and len(text.split()) >= 12
        n_tokens = len(tokenizer.encode(text)) + 2  # + start/end tokens
        assert n_tokens <= 77, f"{name}: {n_tokens} tokens"
    with pytest.raises(ValueError, match="mode"):
        genre_texts("synopsis")


def test_embeddings_are_unit_norm_and_cached(tmp_path, tokenizer):
    model = FakeClip()
    first = genre_embeddings(model, tokenizer, cache_dir=tmp_path)
    assert first.shape == (21, 8) and model.calls == 1
    torch.testing.assert_close(first.norm(dim=1), torch.ones(21))
    assert len(list(tmp_path.glob("*.safetensors"))) == 1

    again = genre_embeddings(model, tokenizer, cache_dir=tmp_path)
    assert model.calls == 1  # cache hit: the encoder is not run again
    torch.testing.assert_close(again, first)
    # a fresh but identical model (same weights, same id) also hits the cache
    twin = FakeClip()
    genre_embeddings(twin, tokenizer, cache_dir=tmp_path)
    assert twin.calls == 0


def test_cache_is_invalidated_by_texts_mode_weights_and_model_id(tmp_path, tokenizer, monkeypatch):
    model = FakeClip()
    base = genre_embeddings(model, tokenizer, cache_dir=tmp_path)

    names = genre_embeddings(model, tokenizer, mode="name", cache_dir=tmp_path)
    assert model.calls == 2 and not torch.allclose(names, base)

    monkeypatch.setitem(genres.GENRE_DEFINITIONS, "Action", "Action film: car chases at night.")
    changed = genre_embeddings(model, tokenizer, cache_dir=tmp_path)
    assert model.calls == 3 and not torch.allclose(changed[0], base[0])
    monkeypatch.undo()

    genre_embeddings(model, tokenizer, cache_dir=tmp_path, model_id="another-model")
    assert model.calls == 4

    with torch.no_grad():
        model.text_projection[0, 0] += 1.0  # fine-tuned text tower
    genre_embeddings(model, tokenizer, cache_dir=tmp_path)
    assert model.calls == 5

    with torch.no_grad():
        model.text_projection[0, 0] -= 1.0
        model.visual.weight.add_(1.0)  # image tower changes do not matter
    genre_embeddings(model, tokenizer, cache_dir=tmp_path)
    assert model.calls == 5


def test_cache_dir_from_environment_and_corrupt_cache(tmp_path, tokenizer, monkeypatch):
    monkeypatch.setenv("SSEG_CACHE_DIR", str(tmp_path / "env-cache"))
    model = FakeClip()
    emb = genre_embeddings(model, tokenizer)
    (cached,) = (tmp_path / "env-cache").glob("genre-embeddings-definition-*.safetensors")
    cached.write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable genre cache"):
        again = genre_embeddings(model, tokenizer)
    assert model.calls == 2
    torch.testing.assert_close(again, emb)
    genre_embeddings(model, tokenizer)  # rewritten: a hit again
    assert model.calls == 2


def test_genre_mask_names_aliases_and_errors():
    mask = genre_mask(["comedy", "Science Fiction", "film noir", "Documentary", " ROMANCE "])
    assert mask.dtype == torch.bool and mask.shape == (21,)
    assert {GENRES[i] for i in mask.nonzero().flatten().tolist()} == {
        "Comedy",
        "Sci-Fi",
        "Film-Noir",
        "Romance",
    }
    assert not genre_mask([]).any()
    assert not genre_mask(["Documentary", "News"]).any()
    with pytest.raises(InputError, match=r"meta\.json: unknown genre 'Cartoonz'"):
        genre_mask(["Drama", "Cartoonz"], source="meta.json")


def test_genre_mask_restricts_the_residual_to_listed_genres():
    bank = torch.nn.functional.normalize(torch.randn(21, 16), dim=1)
    layer = AGResidual(bank, phi="softmax", temperature=0.5)
    with torch.no_grad():
        layer.weight.normal_(0, 0.2)
    v = torch.randn(5, 16)
    mask = genre_mask(["Horror", "Mystery"])
    rows = bank[mask]
    expected = ag_residual_reference(v, rows, rows @ layer.weight, "softmax", 0.5)
    torch.testing.assert_close(layer(v, genre_mask=mask), expected)
    assert not torch.allclose(layer(v, genre_mask=mask), layer(v))
