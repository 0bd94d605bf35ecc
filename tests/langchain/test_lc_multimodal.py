"""ChatCascade with image / PDF / audio content: the text-only small tier is skipped ("multimodal")
and the large tier receives the content blocks as they were given."""

from __future__ import annotations

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import HumanMessage
from lc_fakes import large_chat_openai, small_model

from cascade_core import InvalidRequestError
from langchain_cascade import ChatCascade

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _parts(body):
    return [p for m in body["messages"] if isinstance(m.get("content"), list) for p in m["content"]]


@pytest.mark.parametrize(
    ("block", "wire_type"),
    [({"type": "image", "base64": PNG_B64, "mime_type": "image/png"}, "image_url"),
     ({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}, "image_url"),
     ({"type": "file", "base64": "JVBERi0xLjEK", "mime_type": "application/pdf", "filename": "a.pdf"}, "file"),
     ({"type": "audio", "base64": "UklGRgAAAAA=", "mime_type": "audio/wav"}, "input_audio")],
)
def test_media_skips_the_small_tier_and_reaches_the_large_one(small_server, large_server, block, wire_type):
    llm = ChatCascade(small=small_model(small_server), large=large_chat_openai(large_server), threshold=0.1)
    small_before, large_before = len(small_server.requests), len(large_server.requests)
    msg = llm.invoke([HumanMessage(content=[{"type": "text", "text": "What is this?"}, block])])
    meta = msg.response_metadata["cascade"]
    assert meta["tier"] == 1 and meta["signal"] == "multimodal" and meta["score"] is None
    assert len(small_server.requests) == small_before  # no small call at all
    assert len(large_server.requests) == large_before + 1
    parts = _parts(large_server.requests[-1])
    assert [p["type"] for p in parts] == ["text", wire_type] and parts[0]["text"] == "What is this?"


def test_text_questions_still_go_to_the_small_tier(small_server, large_server):
    llm = ChatCascade(small=small_model(small_server), large=large_chat_openai(large_server), threshold=0.1)
    assert llm.invoke("Hello there").response_metadata["cascade"]["tier"] == 0


def test_large_tier_whose_profile_rules_out_images_is_a_clear_error(small_server):
    large = GenericFakeChatModel(messages=iter(["never"]), profile={"image_inputs": False})
    llm = ChatCascade(small=small_model(small_server), large=large)
    before = len(small_server.requests)
    with pytest.raises(InvalidRequestError, match=r"\['image'\] content but no tier"):
        llm.invoke([HumanMessage(content=[{"type": "image", "base64": PNG_B64, "mime_type": "image/png"}])])
    assert len(small_server.requests) == before


def test_unknown_content_part_is_named(small_server, large_server):
    llm = ChatCascade(small=small_model(small_server), large=large_chat_openai(large_server))
    with pytest.raises(InvalidRequestError, match="'video' content part"):
        llm.invoke([HumanMessage(content=[{"type": "video", "url": "https://example.com/v.mp4"}])])
