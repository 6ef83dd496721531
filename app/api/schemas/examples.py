"""The answers the OpenAPI document shows, all about one real job.

The job is the VoiceSeparate TaskFinish Tencent CI documents (app/api/examples/tencent-ci/
seed000_case1_voice_separate.xml), normalized as its test fixture expects, received one second
after it finished as delivery 1; the vocals are stored, the accompaniment waits to be fetched.
Delivery 1042 is a callback cut short in transit. Every example is checked against its schema by
tests/test_openapi.py.
"""

from __future__ import annotations

from pydantic.config import JsonDict

RECEIVED_AT = "2022-07-01T02:12:33.418207Z"
JOB_KEY: JsonDict = {
    "provider": "tencent-ci",
    "job_id": "j40644e92f8e311ecb90d0b03267ce0e5",
}
_AUDIO_STREAM: JsonDict = {
    "codec": "mp3",
    "sample_rate": 44100,
    "channels": 2,
    "bitrate_kbps": 128.0,
    "duration_s": 13.688163,
}

JOB: JsonDict = {
    **JOB_KEY,
    "kind": "voice_separate",
    "state": "succeeded",
    "provider_state": "Success",
    "error": None,
    "custom_id": None,
    "user_data": "This is my VoiceSeparate job.",
    "created_at": "2022-07-01T02:12:26Z",
    "started_at": "2022-07-01T02:12:27Z",
    "finished_at": "2022-07-01T02:12:32Z",
    "input": {
        "bucket": "test-123456789",
        "region": "ap-chongqing",
        "object": "input/demo.mp3",
        "url": None,
    },
    "outputs": [
        {
            "role": "vocals",
            "url": None,
            "bucket": "test-123456789",
            "region": "ap-chongqing",
            "object": "output/audio.mp3",
            "content_id": None,
            "destination": None,
            "file_name": None,
            "md5": "3b883c0462ba845acdf3eb7e30db1a1c",
            "file": {
                "status": "stored",
                "bytes": 219263,
                "sha256": "5f1c1b5ed1b4e4fd0e5c1bd0a8ad6a1aa5a1d2a7f4f3bd1c1d9e0a4b7c2e8f31",
                "md5": "3b883c0462ba845acdf3eb7e30db1a1c",
                "md5_verified": True,
                "content_type": "audio/mpeg",
                "stored_at": "2022-07-01T02:12:34.120388Z",
                "attempts": 1,
                "error": None,
                "href": f"/v1/jobs/{JOB_KEY['provider']}/{JOB_KEY['job_id']}/files/0",
            },
        },
        {
            "role": "accompaniment",
            "url": None,
            "bucket": "test-123456789",
            "region": "ap-chongqing",
            "object": "output/backgroud.mp3",
            "content_id": None,
            "destination": None,
            "file_name": None,
            "md5": "62de6bb513d6105eeeb1a6ab0077cb5a",
            "file": {
                "status": "pending",
                "bytes": None,
                "sha256": None,
                "md5": None,
                "md5_verified": None,
                "content_type": None,
                "stored_at": None,
                "attempts": 0,
                "error": None,
                "href": None,
            },
        },
    ],
    "media_info": {
        "format_name": "mp3",
        "duration_s": 13.688163,
        "bitrate_kbps": 128.147,
        "size_bytes": 219263,
        "audio_streams": [_AUDIO_STREAM, _AUDIO_STREAM],
    },
    "tts": None,
    "workflow": None,
    "tasks": None,
    "template_id": "t1f6ac18da8bdc403fa27ac4ffnd7a6sa1",
    "template_name": "videoseparate_12654",
    "queue_id": "p2242ab62c7c94486915508540933a2c6",
    "deliveries": 1,
    "first_received_at": RECEIVED_AT,
    "last_received_at": RECEIVED_AT,
    "watch": {
        "status": "idle",
        "polls": 0,
        "last_polled_at": None,
        "next_poll_at": None,
        "last_error": None,
    },
}
JOB_DETAIL: JsonDict = {**JOB, "raw": None}
EVENTS: JsonDict = {
    "items": [{"from": None, "to": "succeeded", "at": RECEIVED_AT, "delivery_id": 1}],
}

DELIVERY: JsonDict = {
    "id": 1,
    "received_at": RECEIVED_AT,
    "endpoint": "tencent-ci",
    "provider": "tencent-ci",
    "outcome": "accepted",
    "error": None,
    "content_type": "application/xml",
    "client_addr": "203.0.113.7",
    "body_size": 2601,
    "replay_of": None,
}
JOB_DELIVERY: JsonDict = {**DELIVERY, "duplicate": False}
_CUT_SHORT = "<Response><JobsDetail>"
DELIVERY_DETAIL: JsonDict = {
    **DELIVERY,
    "id": 1042,
    "received_at": "2022-07-01T02:14:05.027113Z",
    "outcome": "rejected",
    "error": "malformed XML: no element found: line 1, column 22",
    "body_size": len(_CUT_SHORT),
    "headers": {
        "host": "hooks.example.com",
        "content-type": "application/xml",
        "content-length": str(len(_CUT_SHORT)),
    },
    "body": {"encoding": "text", "content": _CUT_SHORT},
    "jobs": [],
    "replays": [],
}

RECEIPT: JsonDict = {
    "status": "received",
    "delivery_id": 1,
    "outcome": "accepted",
    "duplicate": False,
    "jobs": [{**JOB_KEY, "state": "succeeded", "duplicate": False}],
}
# Replaying what was accepted changes nothing: the replay is a duplicate.
REPLAY: JsonDict = {
    "delivery_id": 1043,
    "replay_of": 1,
    "outcome": "duplicate",
    "error": None,
    "jobs": [{**JOB_KEY, "state": "succeeded", "duplicate": True}],
}

STATS: JsonDict = {
    "since": "2022-06-30T02:15:00Z",
    "until": "2022-07-01T02:15:00Z",
    "jobs": [{"provider": "tencent-ci", "state": "succeeded", "count": 1}],
    "files": {"pending": 1, "stored": 1, "failed": 0, "skipped": 0, "stored_bytes": 219263},
    "deliveries": [{"outcome": "accepted", "count": 1}, {"outcome": "rejected", "count": 1}],
}
