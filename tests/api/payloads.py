"""Small callback bodies built in code, for tests about ordering and merging."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson


def ci_json(
    job_id: str,
    state: str,
    *,
    end: str | None = None,
    user_data: str | None = None,
    outputs: tuple[str, ...] = (),
    code: str = "Success",
    message: str = "",
) -> bytes:
    operation: dict[str, Any] = {"TemplateId": "t1"}
    if user_data is not None:
        operation["UserData"] = user_data
    if outputs:
        operation["Output"] = {
            "Bucket": "b-1",
            "Region": "ap-chongqing",
            **dict(zip(("AuObject", "Object"), outputs, strict=False)),
        }
    detail: dict[str, Any] = {
        "JobId": job_id,
        "State": state,
        "Tag": "VoiceSeparate",
        "Code": code,
        "Message": message,
        "CreationTime": "2024-01-01T10:00:00+0800",
        "EndTime": end or "-",
        "Operation": operation,
    }
    return orjson.dumps({"EventName": "TaskFinish", "JobsDetail": detail})


def suno_json(
    task_id: str, code: int = 200, msg: str = "ok", *, stems: dict[str, str] | None = None
) -> bytes:
    """A Suno vocal-removal callback; `stems` (e.g. {"vocal_url": ...}) name its files."""
    info = (
        stems
        or {"instrumental_url": "https://f.example/i.mp3", "vocal_url": "https://f.example/v.mp3"}
        if code == 200
        else None
    )
    return orjson.dumps(
        {"code": code, "msg": msg, "data": {"task_id": task_id, "vocal_removal_info": info}}
    )


def suno_signed(key: str, task_id: str, timestamp: int) -> dict[str, str]:
    """The headers with which a Suno sender signs a callback of `task_id` at `timestamp`."""
    digest = hmac.digest(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256)
    return {
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Signature": base64.b64encode(digest).decode(),
    }


def media_lab_list(job_ids: list[str], state: int = 3) -> bytes:
    """A Media Lab listJobsResponse listing these jobs, all in one state."""
    jobs = [
        {"id": job_id, "state": state, "timing": {"createdAt": "0"}, "inputs": [], "outputs": []}
        for job_id in job_ids
    ]
    return orjson.dumps({"listJobsResponse": {"jobs": jobs}})


def ci_json_of_size(job_id: str, size: int) -> bytes:
    """A CI callback of exactly `size` bytes, its UserData padded."""
    bare = len(ci_json(job_id, "Success", user_data=""))
    return ci_json(job_id, "Success", user_data="x" * (size - bare))
