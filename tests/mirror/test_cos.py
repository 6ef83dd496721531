"""COS URLs and request signatures: Tencent's worked examples give the exact signature, the
official SDK (cos-python-sdk-v5) gives the same URL and signature for any key, and no bucket or
region from a callback can name a host outside COS."""

from __future__ import annotations

import socket
import string
from collections.abc import Iterator, Mapping
from unittest import mock
from urllib.parse import urlsplit

import httpx
import pytest
import requests
from hypothesis import assume, given
from hypothesis import strategies as st
from qcloud_cos import CosConfig, CosS3Auth, CosS3Client

from app.mirror.cos import CLOCK_SKEW_S, authorization, object_url, signed_get

SECRET_ID = "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q"
SECRET_KEY = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz"
BUCKET = "test-123456789"
REGION = "ap-chongqing"
HOST = "test-123456789.cos.ap-chongqing.myqcloud.com"
NOW = 1_700_000_000

HOSTILE_KEYS = [
    "output/audio.mp3",
    "/output/audio.mp3",
    "//output/audio.mp3",
    "output/my song (final).mp3",
    "腾讯云/音频 1.mp3",
    "a+b=c&d;e,f:g@h$i!j'k*l",
    "already%2Fencoded%20name%",
    "what?x=1",
    "frag#ment",
    "tab\tnew\nline\r\x00nul",
    "a/./b/../c",
    "./lead",
    "../up",
    "trailing/",
    "emoji 🎵.wav",
    "~user/_under-score.dot",
    "e\u0301 vs \u00e9",
]


@pytest.fixture(scope="module", autouse=True)
def no_network() -> Iterator[None]:
    """Neither the SDK nor this module may open a socket or resolve a name while tested."""

    def tripped(*args: object, **kwargs: object) -> None:
        pytest.fail("a socket was opened or a name resolved")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "__init__", tripped)
        for lookup in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
            patch.setattr(socket, lookup, tripped)
        yield


def sdk_config() -> CosConfig:
    return CosConfig(Region=REGION, SecretId=SECRET_ID, SecretKey=SECRET_KEY)


def sdk_url(key: str) -> str:
    return str(CosS3Client(sdk_config()).get_object_url(BUCKET, key))


def sdk_authorization(
    method: str,
    key: str,
    *,
    headers: Mapping[str, str],
    params: Mapping[str, str],
    now: int,
    expires_s: int,
) -> str:
    """The SDK's Authorization for the request, its clock stopped at `now`: CosS3Auth applied to a
    prepared request, which no session ever sends."""
    request = requests.Request(method, sdk_url(key), headers=dict(headers), params=dict(params))
    auth = CosS3Auth(sdk_config(), key=key, params=dict(params), expire=expires_s)
    with mock.patch("time.time", return_value=float(now)):
        return str(auth(request.prepare()).headers["Authorization"])


# The two worked examples of Tencent's "Request Signature" page (COS XML API), whose English
# edition translates the key in HttpString; the signatures are those of the original one.
def test_the_documented_upload_example() -> None:
    signed = authorization(
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
        method="PUT",
        path="/exampleobject(腾讯云)",
        headers={
            "Date": "Thu, 16 May 2019 06:45:51 GMT",
            "Host": "examplebucket-1250000000.cos.ap-beijing.myqcloud.com",
            "Content-Type": "text/plain",
            "Content-Length": "13",
            "Content-MD5": "mQ/fVh815F3k6TAUm8m0eg==",
            "x-cos-acl": "private",
            "x-cos-grant-read": 'uin="100000000011"',
        },
        params={},
        now=1557989151,
        expires_s=7200,
    )
    assert signed == (
        "q-sign-algorithm=sha1&q-ak=AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q"
        "&q-sign-time=1557989151;1557996351&q-key-time=1557989151;1557996351"
        "&q-header-list=content-length;content-md5;content-type;date;host;x-cos-acl;x-cos-grant-read"
        "&q-url-param-list=&q-signature=3b8851a11a569213c17ba8fa7dcf2abec6935172"
    )


def test_the_documented_download_example() -> None:
    signed = authorization(
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
        method="GET",
        path="/exampleobject(腾讯云)",
        headers={
            "Date": "Thu, 16 May 2019 06:55:53 GMT",
            "Host": "examplebucket-1250000000.cos.ap-beijing.myqcloud.com",
        },
        params={
            "response-content-type": "application/octet-stream",
            "response-cache-control": "max-age=600",
        },
        now=1557989753,
        expires_s=7200,
    )
    assert signed == (
        "q-sign-algorithm=sha1&q-ak=AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q"
        "&q-sign-time=1557989753;1557996953&q-key-time=1557989753;1557996953"
        "&q-header-list=date;host&q-url-param-list=response-cache-control;response-content-type"
        "&q-signature=01681b8c9d798a678e43b685a9f1bba0f6c0e012"
    )


SIGNED_REQUESTS = [
    ("GET", "output/audio.mp3", {}, {}),
    ("GET", "/output/audio.mp3", {}, {"Range": "bytes=0-1023"}),
    ("HEAD", "腾讯云/音频 1.mp3", {}, {"If-None-Match": '"d41d8cd98f00b204e9800998ecf8427e"'}),
    ("GET", "a+b=c&d;e", {"versionId": "MTg0NDUxNTc1NjIzMTQ1MDAwODg"}, {}),
    (
        "GET",
        "what?x=1#frag",
        {"response-content-disposition": 'attachment; filename="a b.mp3"', "acl": ""},
        {"x-cos-traffic-limit": "819200"},
    ),
    ("GET", "already%2Fencoded", {"Prefix": "音频/", "max-keys": "10"}, {}),
    ("GET", "a/./b/../c", {"参数": "值 +/?"}, {"x-cos-meta-Note": "a=b&c d"}),
    (
        "PUT",
        "upload/new.wav",
        {},
        {"Content-Length": "0", "Content-Type": "audio/wav", "x-cos-acl": "private"},
    ),
    ("DELETE", "old/file.mp3", {}, {"Content-Length": "0"}),
    (
        "POST",
        "x",
        {"uploads": ""},
        {"Content-Length": "0", "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="},
    ),
]


@pytest.mark.parametrize(("method", "key", "params", "headers"), SIGNED_REQUESTS)
@pytest.mark.parametrize(("now", "expires_s"), [(NOW, 600), (1557989753, 7200), (0, 1)])
def test_authorization_is_the_sdks(
    method: str,
    key: str,
    params: dict[str, str],
    headers: dict[str, str],
    now: int,
    expires_s: int,
) -> None:
    path = "/" + key.removeprefix("/")
    # The SDK signs Host from the URL and back-dates the start by its skew allowance.
    ours = authorization(
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
        method=method,
        path=path,
        headers={**headers, "host": HOST},
        params=params,
        now=now - CLOCK_SKEW_S,
        expires_s=expires_s + CLOCK_SKEW_S,
    )
    theirs = sdk_authorization(
        method, key, headers=headers, params=params, now=now, expires_s=expires_s
    )
    assert ours == theirs


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_a_signed_get_is_the_sdks(key: str) -> None:
    url, headers = signed_get(
        BUCKET, REGION, key, secret_id=SECRET_ID, secret_key=SECRET_KEY, now=NOW
    )
    assert url == sdk_url(key) == object_url(BUCKET, REGION, key)
    assert headers == {
        "Host": HOST,
        "Authorization": sdk_authorization(
            "GET", key, headers={}, params={}, now=NOW, expires_s=600
        ),
    }


def test_a_signed_get_signs_host_alone_for_ten_minutes_from_a_minute_ago() -> None:
    _, headers = signed_get(
        BUCKET, REGION, "a.mp3", secret_id=SECRET_ID, secret_key=SECRET_KEY, now=NOW
    )
    window = f"{NOW - 60};{NOW + 600}"
    assert f"&q-sign-time={window}&q-key-time={window}&" in headers["Authorization"]
    assert "&q-header-list=host&q-url-param-list=&" in headers["Authorization"]


@given(key=st.text(min_size=1))
def test_any_key_is_signed_and_addressed_as_the_sdk_does(key: str) -> None:
    stripped = key.removeprefix("/")
    assume(stripped and stripped.rsplit("/", 1)[-1] not in (".", ".."))
    url, headers = signed_get(
        BUCKET, REGION, key, secret_id=SECRET_ID, secret_key=SECRET_KEY, now=NOW
    )
    assert url == sdk_url(key)
    assert headers["Authorization"] == sdk_authorization(
        "GET", key, headers={}, params={}, now=NOW, expires_s=600
    )
    # The fetcher's client sends the path as it is: no segment collapsed, nothing re-encoded.
    sent = httpx.URL(url)
    assert sent.host == HOST
    assert sent.raw_path.decode() == urlsplit(url).path


FIELD_TEXT = st.text(string.ascii_letters + string.digits + " -_.~!*'()/?=&;:+,%\"@", min_size=1)


@given(
    params=st.dictionaries(st.text(min_size=1), st.text(), max_size=4),
    headers=st.dictionaries(st.sampled_from(["Range", "Content-Type", "x-cos-meta-a"]), FIELD_TEXT),
)
def test_any_params_and_header_values_are_signed_as_the_sdk_does(
    params: dict[str, str], headers: dict[str, str]
) -> None:
    assume(len({name.lower() for name in params}) == len(params))
    assume(all(value == value.strip() for value in headers.values()))
    ours = authorization(
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
        method="GET",
        path="/k",
        headers={**headers, "host": HOST},
        params=params,
        now=NOW - CLOCK_SKEW_S,
        expires_s=600 + CLOCK_SKEW_S,
    )
    assert ours == sdk_authorization(
        "GET", "k", headers=headers, params=params, now=NOW, expires_s=600
    )


@pytest.mark.parametrize(
    ("bucket", "region", "host"),
    [
        ("test-123456789", "ap-chongqing", "test-123456789.cos.ap-chongqing.myqcloud.com"),
        ("examplebucket-1250000000", "ap-guangzhou", None),
        ("1-newproject-1250000000", "na-siliconvalley", None),
        ("a-1", "eu-frankfurt", None),
        ("b" * 50 + "-125000000000", "ap-beijing-1", None),
        ("my-bucket-1250000000", "ap-shanghai-fsi", None),
    ],
)
def test_a_valid_bucket_and_region_make_the_cos_host(
    bucket: str, region: str, host: str | None
) -> None:
    url = object_url(bucket, region, "output/audio.mp3")
    assert urlsplit(url).hostname == (host or f"{bucket}.cos.{region}.myqcloud.com")
    assert url == f"https://{bucket}.cos.{region}.myqcloud.com/output/audio.mp3"


@pytest.mark.parametrize(
    "bucket",
    [
        "evil.com/x?",
        "a@b",
        "a@b-1250000000",
        "evil.com#-1250000000",
        "examplebucket-1250000000.evil.com",
        "examplebucket-1250000000:443",
        "examplebucket-1250000000/",
        "examplebucket-1250000000\n",
        "examplebucket-1250000000 ",
        "Examplebucket-1250000000",
        "examplebucket",
        "examplebucket-",
        "-examplebucket-1250000000",
        "examplebucket--1250000000",
        "example_bucket-1250000000",
        "ｅxamplebucket-1250000000",
        "examplebucket-１２５",
        "b" * 51 + "-1250000000",
        "examplebucket-1250000000000",
        "",
    ],
)
def test_a_hostile_bucket_is_refused(bucket: str) -> None:
    with pytest.raises(ValueError, match="not a COS bucket name"):
        object_url(bucket, REGION, "output/audio.mp3")
    with pytest.raises(ValueError, match="not a COS bucket name"):
        signed_get(bucket, REGION, "a", secret_id=SECRET_ID, secret_key=SECRET_KEY, now=NOW)


@pytest.mark.parametrize(
    "region",
    [
        "ap-guangzhou.evil.com",
        "a.-guangzhou",
        "ap-guang.zhou",
        "evil.com/",
        "ap-guangzhou/x",
        "ap-guangzhou:80",
        "ap-guangzhou#",
        "a@b",
        "ap-guangzhou\n",
        "AP-GUANGZHOU",
        "ap_guangzhou",
        "cos.ap-guangzhou",
        "guangzhou",
        "ap-",
        "",
    ],
)
def test_a_hostile_region_is_refused(region: str) -> None:
    with pytest.raises(ValueError, match="not a COS region"):
        object_url(BUCKET, region, "output/audio.mp3")


# Mostly near misses of the valid forms, made of the characters that would change the host.
NEAR_CHARACTERS = "[a-z0-9.:/@#?\\\\ \\n_A-]"
NEAR_BUCKETS = st.from_regex(rf"{NEAR_CHARACTERS}{{1,6}}-[0-9.:/@]{{1,4}}", fullmatch=True)
NEAR_REGIONS = st.from_regex(
    rf"{NEAR_CHARACTERS}{{1,3}}-{NEAR_CHARACTERS}{{1,6}}(-{NEAR_CHARACTERS}{{1,3}})?",
    fullmatch=True,
)


@given(bucket=NEAR_BUCKETS | st.text(), region=NEAR_REGIONS | st.text())
def test_no_bucket_or_region_leaves_cos(bucket: str, region: str) -> None:
    try:
        url = object_url(bucket, region, "a")
    except ValueError:
        return
    host = httpx.URL(url).host
    assert host == f"{bucket}.cos.{region}.myqcloud.com"
    assert host.count(".") == 4


@pytest.mark.parametrize("key", ["", "/", ".", "..", "/..", "a/.", "a/..", "a/b/.."])
def test_a_key_that_would_not_reach_its_object_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        object_url(BUCKET, REGION, key)


def test_the_signature_is_refused_an_empty_validity_or_a_relative_path() -> None:
    def sign(path: str, expires_s: int) -> str:
        return authorization(
            secret_id="id",
            secret_key="key",
            method="GET",
            path=path,
            headers={},
            params={},
            now=NOW,
            expires_s=expires_s,
        )

    with pytest.raises(ValueError, match="valid for some time"):
        sign("/a", 0)
    with pytest.raises(ValueError, match="must start with '/'"):
        sign("a", 60)


def test_a_field_named_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="given twice"):
        authorization(
            secret_id="id",
            secret_key="key",
            method="GET",
            path="/a",
            headers={"Host": "a", "host": "b"},
            params={},
            now=NOW,
            expires_s=60,
        )
