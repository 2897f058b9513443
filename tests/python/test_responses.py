"""The Responses API through the gateway with the official `openai` SDK: create (whole and
streamed), follow-ups with `previous_response_id` pinned to the deployment that served the
first response, retrieve and delete by id, and clear errors for ids the gateway did not
issue."""

from __future__ import annotations

import openai
import pytest

from upstream import Upstream


def _served_by(upstream: Upstream, rid: str) -> str:
    """The upstream model (so the deployment) that created upstream response `rid`."""
    with upstream.lock:
        return str(upstream.responses[rid]["model"])


def _upstream_id(gateway_id: str) -> str:
    return gateway_id.split(".", 1)[1]


def test_create_and_retrieve(client: openai.OpenAI, upstream: Upstream) -> None:
    raw = client.responses.with_raw_response.create(model="responses-pair", input="hello there")
    assert raw.status_code == 200
    response = raw.parse()
    assert response.id.startswith("resp_mg_")
    assert response.output_text == "echo: hello there"
    assert response.usage is not None and response.usage.total_tokens > 0
    deployment = raw.headers["x-modelgate-deployment"]
    assert deployment in ("default/resp-a", "default/resp-b")
    assert _served_by(upstream, _upstream_id(response.id)) == deployment.split("/")[1]

    got = client.responses.retrieve(response.id)
    assert got.id == response.id
    assert got.output_text == "echo: hello there"


def test_follow_ups_keep_session_affinity(client: openai.OpenAI, upstream: Upstream) -> None:
    owners = set()
    for _ in range(4):
        first = client.responses.with_raw_response.create(model="responses-pair", input="start")
        owner = first.headers["x-modelgate-deployment"]
        owners.add(owner)
        previous = first.parse().id
        for i in range(5):
            raw = client.responses.with_raw_response.create(
                model="responses-pair", input=f"turn {i}", previous_response_id=previous
            )
            assert raw.headers["x-modelgate-deployment"] == owner
            response = raw.parse()
            assert response.output_text == f"echo: turn {i}"
            # The upstream got its own id back.
            assert response.previous_response_id == _upstream_id(previous)
            previous = response.id
    assert owners <= {"default/resp-a", "default/resp-b"}


def test_streamed_follow_up(client: openai.OpenAI) -> None:
    first = client.responses.with_raw_response.create(model="responses-pair", input="start")
    owner = first.headers["x-modelgate-deployment"]
    with client.responses.with_streaming_response.create(
        model="responses-pair", input="streamed turn", previous_response_id=first.parse().id, stream=True
    ) as raw:
        assert raw.headers["x-modelgate-deployment"] == owner
    stream = client.responses.create(
        model="responses-pair", input="streamed turn", previous_response_id=first.parse().id, stream=True
    )
    kinds = []
    text = ""
    completed = None
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.created":
            assert event.response.id.startswith("resp_mg_")
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type == "response.completed":
            completed = event.response
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert text.strip() == "echo: streamed turn"
    assert completed is not None and completed.id.startswith("resp_mg_")
    # The streamed response continues the session too.
    follow = client.responses.with_raw_response.create(
        model="responses-pair", input="after the stream", previous_response_id=completed.id
    )
    assert follow.headers["x-modelgate-deployment"] == owner


def test_delete(client: openai.OpenAI) -> None:
    response = client.responses.create(model="responses-pair", input="to delete")
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_ineligible_deployments_are_skipped(client: openai.OpenAI) -> None:
    for _ in range(6):
        raw = client.responses.with_raw_response.create(model="responses-mixed", input="hi")
        assert raw.headers["x-modelgate-deployment"] == "default/resp-c"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="mock-chat", input="hi")
    assert "/v1/responses" in str(err.value)


def test_ids_not_issued_by_the_gateway(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="responses-pair", input="hi", previous_response_id="resp_1_1")
    assert "not a response id issued by this gateway" in str(err.value)
    with pytest.raises(openai.BadRequestError):
        client.responses.retrieve("resp_mg_%%%.x")
    # A well-formed id of a deployment that does not exist.
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve("resp_mg_ZGVmYXVsdC9nb25l.resp_1")
    assert missing.value.body["code"] == "response_not_found"  # type: ignore[index]
    assert "default/gone" in str(missing.value)


def test_a_stream_failing_mid_way_ends_with_the_responses_error_event(client: openai.OpenAI) -> None:
    """The upstream drops the connection after two deltas: the SDK gets the Responses API's
    own `error` event (a `ResponseErrorEvent`, not the chat completions' error chunk),
    numbered after the last event, and no `response.completed`."""
    stream = client.responses.create(model="break-stream", input="one two three four", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.output_text.delta", "response.output_text.delta"], kinds
    assert kinds[-1] == "error", kinds
    assert "response.completed" not in kinds
    error = events[-1]
    assert error.code == "upstream_error"
    assert "mid-stream" in error.message and "default/break-stream" in error.message
    assert error.param is None
    assert error.sequence_number == events[-2].sequence_number + 1


def test_follow_ups_must_name_a_model_that_reaches_the_session(client: openai.OpenAI) -> None:
    first = client.responses.create(model="responses-pair", input="start")
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="upstream-chat", input="next", previous_response_id=first.id)
    assert e.value.body is not None and e.value.body.get("param") == "model"
    message = str(e.value.body.get("message"))
    assert "`upstream-chat`" in message and "`responses-pair`" in message
    # The model that created it continues it.
    follow = client.responses.create(model="responses-pair", input="next", previous_response_id=first.id)
    assert follow.output_text == "echo: next"
