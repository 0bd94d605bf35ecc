"""Multimodal routing: image/audio/file content skips a text-only small tier with reason "multimodal"."""

from __future__ import annotations

import asyncio

import pytest

from cascade_core import Cascade, ConfigurationError, InvalidRequestError, Message, Request, ThresholdRule
from cascade_core.engine.content import MediaPart
from cascade_core.testing import ScriptedModel

IMAGE = MediaPart("image", "image/png", raw={"type": "image", "base64": "AAAA", "mime_type": "image/png"})


def _request(*parts):
    return Request.from_messages([Message("user", "What is in this picture?", parts=parts)])


def _models(large_accepts=("image", "file")):
    small = ScriptedModel("a cat", confidence=0.99, name="small")
    large = ScriptedModel("a cat on a mat", name="large")
    if large_accepts is not None:
        large.input_modalities = frozenset(large_accepts)
    return small, large


def test_image_request_skips_text_only_small_tier_without_calling_it():
    small, large = _models()
    result = Cascade([small, large], rules=ThresholdRule("margin", 0.1)).invoke(_request(IMAGE))
    assert result.tier == 1 and result.text == "a cat on a mat"
    (decision,) = result.decisions
    assert decision.defer and decision.signal == "multimodal" and decision.score is None
    assert "not ['image']" in decision.reason
    assert small.calls == [] and [r.tier for r in result.runs] == [1]
    assert large.calls[0].messages[0].parts == (IMAGE,)  # the content reached the large tier whole


def test_multimodal_stream_and_async_take_the_same_route():
    small, large = _models()
    cascade = Cascade([small, large])
    chunks = list(cascade.stream(_request(IMAGE)))
    assert "".join(c.text for c in chunks) == "a cat on a mat" and chunks[-1].result.decision.signal == "multimodal"
    result = asyncio.run(cascade.ainvoke(_request(IMAGE)))
    assert result.tier == 1 and small.calls == []


def test_text_requests_still_use_the_small_tier():
    small, large = _models()
    result = Cascade([small, large], rules=ThresholdRule("margin", 0.1)).invoke("Capital of France?")
    assert result.tier == 0 and len(small.calls) == 1


def test_a_small_tier_that_accepts_images_is_judged_normally():
    small, large = _models()
    small.input_modalities = {"image"}
    result = Cascade([small, large], rules=ThresholdRule("margin", 0.1)).invoke(_request(IMAGE))
    assert result.tier == 0 and result.decision.signal == "margin"


def test_first_accepting_tier_of_three_answers():
    small, large = _models()
    middle = ScriptedModel("a tabby cat", confidence=0.99, name="middle")
    middle.input_modalities = {"image"}
    result = Cascade([small, middle, large], rules=ThresholdRule("margin", 0.1)).invoke(_request(IMAGE))
    assert result.tier == 1 and [d.signal for d in result.decisions] == ["multimodal", "margin"]


def test_no_tier_accepting_the_content_is_a_clear_error_before_any_call():
    small, large = _models(large_accepts=("image",))
    with pytest.raises(InvalidRequestError, match=r"\['audio'\] content but no tier .* accepts"):
        Cascade([small, large]).invoke(_request(MediaPart("audio", "audio/wav")))
    assert small.calls == [] and large.calls == []
    small, large = _models(large_accepts=None)  # a model that declares nothing takes text only
    with pytest.raises(InvalidRequestError, match="tier 1 \\(large\\): \\['text'\\]"):
        Cascade([small, large]).invoke(_request(IMAGE))


def test_bad_declarations_and_parts_are_rejected():
    small, large = _models(large_accepts=("image", "smell"))
    with pytest.raises(ConfigurationError, match="unknown kinds \\['smell'\\]"):
        Cascade([small, large])
    with pytest.raises(InvalidRequestError, match="media part kind"):
        MediaPart("video")
    with pytest.raises(InvalidRequestError, match="must be cascade_core.engine.content.MediaPart"):
        Message("user", "hi", parts=({"type": "image"},))
