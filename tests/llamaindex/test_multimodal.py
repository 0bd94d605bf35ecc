"""CascadeLLM with ImageBlock / DocumentBlock / AudioBlock: the text-only small tier is skipped
("multimodal") and LlamaIndex's OpenAI LLM (large tier, on a fake server) receives the blocks."""

from __future__ import annotations

import base64

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    VideoBlock,
)

from cascade_core import InvalidRequestError

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.1\n1 0 obj<</Type/Catalog>>endobj trailer<</Root 1 0 R>>\n%%EOF\n"


def _wire_parts(body):
    return [p for m in body["messages"] if isinstance(m.get("content"), list) for p in m["content"]]


@pytest.mark.parametrize(
    ("block", "wire_type"),
    [(ImageBlock(image=PNG, image_mimetype="image/png"), "image_url"),
     (DocumentBlock(data=PDF, document_mimetype="application/pdf", title="a.pdf"), "file"),
     (AudioBlock(audio=b"RIFF\x00\x00\x00\x00WAVE", format="wav"), "input_audio")],
)
def test_media_blocks_skip_the_small_tier(llm, small_server, large_server, block, wire_type):
    message = ChatMessage(role="user", blocks=[TextBlock(text="What is this?"), block])
    response = llm.chat([message])
    decision = response.additional_kwargs["cascade"]
    assert decision["tier"] == 1 and decision["signal"] == "multimodal"
    assert small_server.requests == []
    assert [p["type"] for p in _wire_parts(large_server.requests[-1])] == ["text", wire_type]


async def test_streamed_image_question_goes_to_the_large_tier(llm, small_server, large_server):
    message = ChatMessage(role="user", blocks=[TextBlock(text="Describe it"), ImageBlock(image=PNG, image_mimetype="image/png")])
    gen = await llm.astream_chat([message])
    responses = [r async for r in gen]
    assert responses[-1].message.content == "Large answer." and small_server.requests == []
    assert responses[-1].additional_kwargs["cascade"]["signal"] == "multimodal"


def test_video_block_is_refused_by_name(llm):
    message = ChatMessage(role="user", blocks=[VideoBlock(url="https://example.com/v.mp4")])
    with pytest.raises(InvalidRequestError, match="VideoBlock"):
        llm.chat([message])
