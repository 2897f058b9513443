"""Embeddings and the model list through the gateway with the official `openai` SDK."""

from __future__ import annotations

import math

import openai
import pytest

from conftest import STATUSES

INPUTS = ["the quick brown fox", "jumps over", "the lazy dog"]


def test_embeddings_of_several_inputs(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model="mock-embed", input=INPUTS, encoding_format="float")
    assert raw.headers["x-modelgate-deployment"] == "default/mock-embed"
    result = raw.parse()
    assert result.object == "list"
    assert [d.index for d in result.data] == [0, 1, 2]
    vectors = [d.embedding for d in result.data]
    assert all(len(v) == 8 for v in vectors), "the mock's default dimension is 8"
    for v in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-6)
    assert vectors[0] != vectors[1]
    assert result.usage.prompt_tokens == 9
    # Deterministic: the same input gives the same vector.
    again = client.embeddings.create(model="mock-embed", input=INPUTS[0], encoding_format="float")
    assert again.data[0].embedding == vectors[0]


def test_embeddings_dimensions_and_default_encoding(client: openai.OpenAI) -> None:
    # Without `encoding_format` the SDK asks for base64 and decodes; a list of floats
    # back is accepted as is.
    result = client.embeddings.create(model="mock-embed", input=INPUTS, dimensions=32)
    assert len(result.data) == 3
    assert all(len(d.embedding) == 32 for d in result.data)
    assert all(isinstance(x, float) for x in result.data[0].embedding)


def test_embeddings_through_an_openai_compatible_upstream(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="upstream-embed", input=["a", "bcd"], encoding_format="float")
    assert [d.embedding for d in result.data] == [[1.0, 0.5, -0.5, 0.0], [3.0, 0.5, -0.5, 1.0]]


def test_models_list(client: openai.OpenAI) -> None:
    models = client.models.list()
    ids = [m.id for m in models]
    assert len(ids) == len(set(ids)), "each model listed once"
    expected = {"chat", "mock-chat", "mock-instruct", "mock-embed", "upstream-chat", "flaky"}
    expected |= {f"status-{s}" for s in STATUSES}
    assert expected <= set(ids)
    assert "secret-chat" not in ids, "hidden aliases are routed but not listed"
    for m in models.data:
        assert m.object == "model"
        assert isinstance(m.created, int)
        assert m.owned_by


def test_models_retrieve(client: openai.OpenAI) -> None:
    group = client.models.retrieve("mock-chat")
    assert (group.id, group.object) == ("mock-chat", "model")
    alias = client.models.retrieve("chat")
    assert alias.id == "chat"


def test_models_retrieve_unknown(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("no-such-model")
    assert e.value.status_code == 404
    assert e.value.code == "model_not_found"
