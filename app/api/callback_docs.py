"""The callback bodies as OpenAPI declares them, with real provider payloads as examples.

The endpoints read the raw body themselves, to keep it byte for byte whatever it holds, so FastAPI
sees no body parameter to describe: it is declared here instead. Its schemas accept anything,
because the parsers decide what is refused (and a refused body is still stored). The payloads
are copies of test fixtures, kept identical by tests/test_openapi.py, and are read once, when
the callbacks module is imported: a few kilobytes of package data.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files
from pathlib import PurePath
from typing import Any

import orjson

from app.providers.model import Provider

_FOLDER = files("app.api") / "examples"
_SCHEMAS: dict[str, dict[str, str]] = {
    "application/xml": {"type": "string", "description": "an XML document, sent as it is"},
    "application/json": {"description": "any JSON document"},
}

# The files under examples/<provider>/ with the summaries the docs show; the first of each
# family also illustrates POST /callbacks.
EXAMPLES: dict[Provider, tuple[tuple[str, str], ...]] = {
    Provider.TENCENT_CI: (
        ("seed000_case1_voice_separate.xml", "VoiceSeparate TaskFinish (XML)"),
        ("seed000_case3_voice_separate_workflow.json", "VoiceSeparate in a workflow (JSON)"),
        ("seed001_case1_tts.xml", "Tts TaskFinish (XML)"),
        ("workflow_finish_success.xml", "WorkflowFinish (XML)"),
    ),
    Provider.MEDIA_LAB: (
        ("callback_five_stems.json", "Callback Job, five stems"),
        ("get_job_response.json", "A polled getJobResponse, posted in"),
    ),
    Provider.SUNO: (
        ("seed_separate_vocal.json", "separate_vocal succeeded"),
        ("split_stem_all_stems.json", "split_stem succeeded, every stem"),
        ("failed_451.json", "Failed with code 451"),
    ),
}


def family_body(provider: Provider) -> dict[str, Any]:
    """`openapi_extra` for POST /callbacks/{provider}: every example of the family."""
    return _request_body((provider, name, summary) for name, summary in EXAMPLES[provider])


def any_family_body() -> dict[str, Any]:
    """`openapi_extra` for POST /callbacks: the first example of each family."""
    return _request_body(
        (provider, name, f"{provider}: {summary}")
        for provider, ((name, summary), *_others) in EXAMPLES.items()
    )


def _request_body(examples: Iterable[tuple[Provider, str, str]]) -> dict[str, Any]:
    content: dict[str, dict[str, Any]] = {}
    for provider, name, summary in examples:
        text = (_FOLDER / provider / name).read_text(encoding="utf-8")
        media_type = "application/xml" if name.endswith(".xml") else "application/json"
        value = text if media_type == "application/xml" else orjson.loads(text)
        media = content.setdefault(media_type, {"schema": _SCHEMAS[media_type], "examples": {}})
        media["examples"][PurePath(name).stem] = {"summary": summary, "value": value}
    return {
        "requestBody": {
            "required": True,
            "description": "The callback as the provider sends it. The content type is only a"
            " hint: the body is sniffed (`<` is XML, `{` or `[` is JSON).",
            "content": content,
        }
    }
