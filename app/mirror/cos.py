"""Signed GETs of the result files Tencent CI and Media Lab leave in the user's own COS bucket,
of CI's answer about one of its jobs (DescribeMediaJob, which the pollers ask), and of a page of
a CI queue's jobs (DescribeMediaJobs, which the queue listers ask).

Pure: no I/O, and the clock is an argument; the guarded fetcher sends what `signed_get`,
`signed_job_query` and `signed_job_list` answer.

The bucket, region, object key and job id come from a callback anyone may post, so the bucket and
region are held to COS's own naming rules before they become a host name: nothing else may turn
`{bucket}.cos.{region}.myqcloud.com` (or `.ci.`) into another host. The key only ever becomes the
path, and the job id one path segment of letters and digits.

The signature is COS's "Request Signature" for the XML API (q-sign-algorithm=sha1), computed as
Tencent's documentation describes it and as cos-python-sdk-v5 (`CosS3Auth`) computes it;
tests/mirror/test_cos.py checks it against both.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

# BucketName-APPID: 1-50 lowercase letters, digits and hyphens, neither first nor last, then the
# account's numeric APPID; at most 63 characters in all, one DNS label.
_BUCKET = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?-[0-9]{1,12}")
# ap-guangzhou, na-siliconvalley, eu-frankfurt, ap-beijing-1, ap-shanghai-fsi, ...
_REGION = re.compile(r"[a-z]{2}-[a-z]{2,20}(?:-[a-z]{2,10})?(?:-[0-9]{1,2})?")
# CI's job and queue ids: a letter and 32 hex digits ("j8d121820f5e411ec926ef19d53ba9c6f"); held
# to plain letters, digits, _ and - so that an id never becomes more than one path segment.
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# The SDK back-dates the start of a signature's validity by a minute, so that a clock running
# slightly ahead of COS's does not make a fresh signature "not yet valid"; so do we.
CLOCK_SKEW_S = 60


@dataclass(frozen=True, slots=True)
class CosKeys:
    """The SecretId and SecretKey requests to the user's buckets are signed with."""

    secret_id: str
    secret_key: str = field(repr=False)


def object_url(bucket: str, region: str, key: str) -> str:
    """The virtual-hosted URL of `key` in `bucket`, as the SDK builds it (one leading `/` of the
    key dropped); ValueError for a bucket, region or key that COS would not have."""
    return f"https://{_host(bucket, region)}{_url_path(_object_path(key))}"


def signed_get(
    bucket: str,
    region: str,
    key: str,
    *,
    secret_id: str,
    secret_key: str,
    now: int,
    expires_s: int = 600,
) -> tuple[str, dict[str, str]]:
    """The URL of `key` and the headers to GET it with at unix time `now`: the Host the signature
    covers and the Authorization, valid from a minute before `now` to `expires_s` after it."""
    return _signed(
        _host(bucket, region),
        _object_path(key),
        secret_id=secret_id,
        secret_key=secret_key,
        now=now,
        expires_s=expires_s,
    )


def signed_job_query(
    bucket: str, region: str, job_id: str, *, secret_id: str, secret_key: str, now: int
) -> tuple[str, dict[str, str]]:
    """The URL and headers of CI's DescribeMediaJob of `job_id` (`GET /jobs/<jobId>` on the
    bucket's CI host), signed as `signed_get` signs; ValueError for a bucket, region or job id
    CI would not have."""
    return _signed(
        _ci_host(bucket, region),
        f"/jobs/{check_ci_id(job_id)}",
        secret_id=secret_id,
        secret_key=secret_key,
        now=now,
        expires_s=600,
    )


def signed_job_list(
    bucket: str,
    region: str,
    params: Mapping[str, str],
    *,
    secret_id: str,
    secret_key: str,
    now: int,
) -> tuple[str, dict[str, str]]:
    """The URL and headers of CI's DescribeMediaJobs (`GET /jobs?<params>` on the bucket's CI
    host), every query parameter signed, as `signed_get` signs; ValueError for a bucket or
    region CI would not have."""
    return _signed(
        _ci_host(bucket, region),
        "/jobs",
        secret_id=secret_id,
        secret_key=secret_key,
        now=now,
        expires_s=600,
        params=params,
    )


def check_ci_id(identifier: str, what: str = "job id") -> str:
    """`identifier`, or ValueError unless it can be a CI job or queue id (one path segment or
    query value of letters, digits, _ and -)."""
    if not _JOB_ID.fullmatch(identifier):
        raise ValueError(f"not a CI {what} (letters, digits, _ and -): {identifier[:80]!r}")
    return identifier


def _ci_host(bucket: str, region: str) -> str:
    return f"{check_bucket(bucket)}.ci.{check_region(region)}.myqcloud.com"


def _signed(
    host: str,
    path: str,
    *,
    secret_id: str,
    secret_key: str,
    now: int,
    expires_s: int,
    params: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str]]:
    params = params or {}
    signature = authorization(
        secret_id=secret_id,
        secret_key=secret_key,
        method="GET",
        path=path,
        headers={"host": host},
        params=params,
        now=now - CLOCK_SKEW_S,
        expires_s=expires_s + CLOCK_SKEW_S,
    )
    # Each value encoded as the signature encodes it, so that CI decodes what was signed.
    query = "&".join(f"{_encode(name)}={_encode(value)}" for name, value in params.items())
    url = f"https://{host}{_url_path(path)}{'?' + query if query else ''}"
    return url, {"Host": host, "Authorization": signature}


def authorization(
    *,
    secret_id: str,
    secret_key: str,
    method: str,
    path: str,
    headers: Mapping[str, str],
    params: Mapping[str, str],
    now: int,
    expires_s: int,
) -> str:
    """The Authorization value of a COS request, valid from `now` to `now + expires_s`.

    `path` is the request path as COS decodes it (`/` and the key, not percent-encoded); every
    header and query parameter given is signed, so the request must carry them unchanged.
    """
    if not path.startswith("/"):
        raise ValueError(f"the path to sign must start with '/': {path!r}")
    if expires_s <= 0:
        raise ValueError(f"a signature must stay valid for some time, not {expires_s} s")
    key_time = f"{now};{now + expires_s}"
    param_list, http_parameters = _canonical(params, "query parameter")
    header_list, http_headers = _canonical(headers, "header")
    http_string = f"{method.lower()}\n{path}\n{http_parameters}\n{http_headers}\n"
    string_to_sign = f"sha1\n{key_time}\n{hashlib.sha1(http_string.encode()).hexdigest()}\n"
    sign_key = _hmac_sha1(secret_key, key_time)
    return (
        f"q-sign-algorithm=sha1&q-ak={secret_id}&q-sign-time={key_time}&q-key-time={key_time}"
        f"&q-header-list={header_list}&q-url-param-list={param_list}"
        f"&q-signature={_hmac_sha1(sign_key, string_to_sign)}"
    )


def check_bucket(bucket: str) -> str:
    """`bucket`, or ValueError unless it is a COS bucket name (BucketName-APPID)."""
    # fullmatch: `$` would let a trailing newline through.
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(
            f"not a COS bucket name (BucketName-APPID: lowercase letters, digits and hyphens,"
            f" then '-' and the numeric APPID): {bucket!r}"
        )
    return bucket


def check_region(region: str) -> str:
    """`region`, or ValueError unless it is a COS region's name."""
    if not _REGION.fullmatch(region):
        raise ValueError(f"not a COS region (like ap-guangzhou or na-siliconvalley): {region!r}")
    return region


def _host(bucket: str, region: str) -> str:
    return f"{check_bucket(bucket)}.cos.{check_region(region)}.myqcloud.com"


def _object_path(key: str) -> str:
    """`/` and the key, with one leading `/` of the key dropped as the SDK drops it (COS keys never
    start with one: `/output/a.mp3` and `output/a.mp3` name the same object)."""
    if key.startswith("/"):
        key = key[1:]
    if not key:
        raise ValueError("the COS object key is empty")
    # HTTP clients (httpx among them) collapse a trailing `.` or `..` segment, so the request would
    # name another object; inner ones survive as `.%2F` (see _url_path).
    if key.rsplit("/", 1)[-1] in (".", ".."):
        raise ValueError(f"a COS object key may not end in a '.' or '..' segment: {key!r}")
    return "/" + key


def _url_path(path: str) -> str:
    # `./` becomes `.%2F` as in the SDK, so that no client removes `.` and `..` segments; COS
    # decodes it back to the key.
    return quote(path, safe="/").replace("./", ".%2F")


def _canonical(fields: Mapping[str, str], kind: str) -> tuple[str, str]:
    """The `;`-joined list of encoded, lower-cased names and the `&`-joined `name=value` pairs,
    both in the order of the encoded names (the SDK's order)."""
    encoded: dict[str, str] = {}
    for name, value in fields.items():
        canonical = _encode(name).lower()
        if canonical in encoded:
            raise ValueError(f"the {kind} {name!r} is given twice (names ignore case)")
        encoded[canonical] = _encode(value)
    names = sorted(encoded)
    return ";".join(names), "&".join(f"{name}={encoded[name]}" for name in names)


def _encode(text: str) -> str:
    # UTF-8 percent-encoding of everything but letters, digits and -_.~ (the documentation's table).
    return quote(text, safe="")


def _hmac_sha1(key: str, message: str) -> str:
    return hmac.new(key.encode(), message.encode(), hashlib.sha1).hexdigest()
