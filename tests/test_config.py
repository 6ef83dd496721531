"""Settings refuse values that would fail later, on a request, instead of at start-up."""

from __future__ import annotations

import re
from datetime import timedelta
from ipaddress import ip_address, ip_network

import pytest
from pydantic import ValidationError

from app.config import Settings, format_duration, parse_duration
from app.fetching.addresses import why_refused
from app.mirror.sources import CosBucket
from app.polling.queues import CiQueue
from app.providers.model import Provider

_HOLDS_IPV4_MAPPED = (
    "it holds ::ffff:0:0/96, all of IPv4 in IPv4-mapped form, which it would not admit:"
    " name IPv4 networks in their IPv4 form"
)


def _only_alone(reason: str, alone: str) -> str:
    return f"{reason}, which may be admitted only alone ({alone})"


_ALONE_169 = _only_alone("169.254.169.254 is a cloud metadata address", "169.254.169.254/32")


@pytest.mark.parametrize("age", ["0s", "31d", "1000000d"])
def test_a_cursor_max_age_out_of_range_is_refused_at_start_up(age: str) -> None:
    with pytest.raises(ValidationError, match="cursor_max_age"):
        Settings(_env_file=None, cursor_max_age=age)  # type: ignore[call-arg]


def test_a_cursor_max_age_within_range_is_taken() -> None:
    settings = Settings(_env_file=None, cursor_max_age="30d")  # type: ignore[call-arg]

    assert settings.cursor_max_age.days == 30


def test_more_jobs_per_delivery_than_a_postgresql_transaction_may_lock_is_refused() -> None:
    postgresql = "postgresql+psycopg://stemhook@127.0.0.1/stemhook"
    with pytest.raises(ValidationError, match="at most 256 on PostgreSQL"):
        Settings(_env_file=None, database_url=postgresql, max_jobs_per_delivery=257)  # type: ignore[call-arg]

    on_postgresql = Settings(_env_file=None, database_url=postgresql, max_jobs_per_delivery=256)  # type: ignore[call-arg]
    on_sqlite = Settings(_env_file=None, max_jobs_per_delivery=10_000)  # type: ignore[call-arg]
    assert (on_postgresql.max_jobs_per_delivery, on_sqlite.max_jobs_per_delivery) == (256, 10_000)


def test_fetch_allow_networks_are_parsed_from_comma_separated_cidrs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEMHOOK_FETCH_ALLOW_NETWORKS", "127.0.0.2/32, fd12::/16,,10.1.2.3 ")

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    expected = ("127.0.0.2/32", "fd12::/16", "10.1.2.3/32")
    assert settings.fetch_allow_networks == tuple(ip_network(cidr) for cidr in expected)
    assert Settings(_env_file=None, fetch_allow_networks="").fetch_allow_networks == ()  # type: ignore[call-arg]


_NOT_NETWORKS = [
    (value, f"not a network such as 10.0.0.0/8 or fd12:3456:789a::/48: {named}")
    for value, named in [
        ("127.0.0.1/8", "127.0.0.1/8 has host bits set"),
        ("10.0.0.0/8, 10.0.0.0/33", "'10.0.0.0/33' does not appear"),
        ("10.0.0.0/8;fd12::/16", "'10.0.0.0/8;fd12::/16' does not appear"),
        ("localhost", "'localhost' does not appear"),
    ]
]
_UNSAFE_NETWORKS = [
    (value, f"{value.split(',')[-1].strip()!r} may not be admitted: {reason}")
    for value, reason in [
        ("0.0.0.0/0", "it admits every IPv4 address, switching the guard off"),
        ("::/0", "it admits every IPv6 address, switching the guard off"),
        ("::ffff:0:0/96", "it admits every IPv4 address, switching the guard off"),
        ("::/1", _HOLDS_IPV4_MAPPED),
        ("::/8", _HOLDS_IPV4_MAPPED),
        ("::/80", _HOLDS_IPV4_MAPPED),
        ("::fffe:0:0/95", _HOLDS_IPV4_MAPPED),
        ("169.254.0.0/16", _ALONE_169),
        ("169.254.169.254/31", _ALONE_169),
        (
            "168.0.0.0/8",
            _only_alone("168.63.129.16 is a cloud metadata address", "168.63.129.16/32"),
        ),
        ("::ffff:169.254.0.0/112", _ALONE_169),
        (
            "fd00::/8",
            _only_alone("fd00:ec2::254 is a cloud metadata address", "fd00:ec2::254/128"),
        ),
        (
            "64:ff9b::/96",
            _only_alone(
                "64:ff9b::a9fe:a9fe embeds 169.254.169.254 (NAT64), a cloud metadata address",
                "64:ff9b::a9fe:a9fe/128",
            ),
        ),
        (
            "fe80::%eth0/64",
            "matching ignores its zone id (%eth0), so it would be admitted on every link",
        ),
        (
            "10.0.0.0/8, fe80::1%2",
            "matching ignores its zone id (%2), so it would be admitted on every link",
        ),
    ]
]


@pytest.mark.parametrize(("value", "message"), _NOT_NETWORKS + _UNSAFE_NETWORKS)
@pytest.mark.parametrize("given", ["in the environment", "as a list"])
def test_a_fetch_allow_network_that_is_not_a_safe_network_fails_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str, given: str
) -> None:
    with pytest.raises(ValidationError, match="fetch_allow_networks") as refused:
        _settings_with_networks(value, given, monkeypatch)
    assert message in str(refused.value)


def test_fetch_allow_networks_given_as_a_list_take_strings_and_networks() -> None:
    given = ["127.0.0.2/32", " 10.0.0.0/8 ", "", ip_network("fd12:3456::/32")]

    settings = Settings(_env_file=None, fetch_allow_networks=given)  # type: ignore[call-arg]

    expected = ("127.0.0.2/32", "10.0.0.0/8", "fd12:3456::/32")
    assert settings.fetch_allow_networks == tuple(ip_network(cidr) for cidr in expected)


@pytest.mark.parametrize(
    ("value", "taken"),
    [
        ("169.254.169.254", "169.254.169.254/32"),
        ("168.63.129.16/32", "168.63.129.16/32"),
        ("fd00:ec2::254", "fd00:ec2::254/128"),
        ("64:ff9b::a9fe:a9fe/128", "64:ff9b::a9fe:a9fe/128"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:127.0.0.2", "127.0.0.2/32"),
        ("::ffff:0:0/97", "0.0.0.0/1"),
        ("fd12:3456:789a::/48", "fd12:3456:789a::/48"),
        ("64:ff9b::10.0.0.0/104", "64:ff9b::a00:0/104"),
    ],
)
def test_a_fetch_allow_network_is_taken_as_the_guard_matches_it(value: str, taken: str) -> None:
    settings = Settings(_env_file=None, fetch_allow_networks=value)  # type: ignore[call-arg]

    assert settings.fetch_allow_networks == (ip_network(taken),)


def test_an_ipv4_mapped_network_in_the_setting_admits_the_ipv4_addresses_it_names() -> None:
    settings = Settings(_env_file=None, fetch_allow_networks="::ffff:10.0.0.0/104")  # type: ignore[call-arg]
    admitted = settings.fetch_allow_networks

    assert why_refused(ip_address("10.1.2.3"), admitted=admitted) is None
    assert why_refused(ip_address("::ffff:10.1.2.3"), admitted=admitted) is None
    assert (
        why_refused(ip_address("172.16.0.1"), admitted=admitted)
        == "172.16.0.1 is a private address"
    )


def _settings_with_networks(value: str, given: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose STEMHOOK_FETCH_ALLOW_NETWORKS is `value`, or that value split into a list
    passed as a keyword: the two paths a setting takes."""
    if given == "as a list":
        return Settings(_env_file=None, fetch_allow_networks=value.split(","))  # type: ignore[call-arg]
    monkeypatch.setenv("STEMHOOK_FETCH_ALLOW_NETWORKS", value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_fetch_limits_default_to_2_gib_10_s_60_s_and_an_hour() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert (
        settings.fetch_max_bytes,
        settings.fetch_connect_timeout_s,
        settings.fetch_read_timeout_s,
        settings.fetch_timeout_s,
    ) == (2147483648, 10.0, 60.0, 3600.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STEMHOOK_FETCH_MAX_BYTES", "0"),
        ("STEMHOOK_FETCH_CONNECT_TIMEOUT_S", "0"),
        ("STEMHOOK_FETCH_READ_TIMEOUT_S", "-1"),
        ("STEMHOOK_FETCH_READ_TIMEOUT_S", "601"),
        ("STEMHOOK_FETCH_TIMEOUT_S", "0"),
        ("STEMHOOK_FETCH_TIMEOUT_S", "86401"),
    ],
)
def test_a_fetch_limit_out_of_range_fails_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=name.removeprefix("STEMHOOK_").lower()):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(days=90), "90d"),
        (timedelta(hours=36), "36h"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=3601), "3601s"),
        (timedelta(0), "0s"),
    ],
)
def test_a_duration_is_written_back_in_its_largest_whole_unit(
    duration: timedelta, text: str
) -> None:
    assert format_duration(duration) == text
    assert parse_duration(text) == duration


def test_stored_files_are_kept_unless_a_retention_age_is_set() -> None:
    unset = Settings(_env_file=None)  # type: ignore[call-arg]
    asked = Settings(_env_file=None, purge_files_older_than="90d")  # type: ignore[call-arg]

    assert (unset.purge_files_older_than, asked.purge_files_older_than) == (
        None,
        timedelta(days=90),
    )


def test_cos_buckets_are_parsed_from_comma_separated_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEMHOOK_COS_BUCKETS", " media-1250000000, stems-1250000000@ap-guangzhou,,")

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    expected = (CosBucket("media-1250000000"), CosBucket("stems-1250000000", "ap-guangzhou"))
    assert settings.cos_buckets == expected
    assert settings.mirror_policy.cos_buckets == frozenset(expected)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("Media-1250000000", "not a COS bucket name"),
        ("media", "not a COS bucket name"),
        ("evil.example-1", "not a COS bucket name"),
        ("media-1250000000@", "not a COS region"),
        ("media-1250000000@mars", "not a COS region"),
        ("media-1250000000@ap-guangzhou@x", "not a COS region"),
    ],
)
def test_a_cos_bucket_that_cos_would_not_have_fails_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, entry: str, why: str
) -> None:
    monkeypatch.setenv("STEMHOOK_COS_BUCKETS", f"media-1250000000,{entry}")

    with pytest.raises(ValidationError, match=f"{re.escape(repr(entry))} is not bucket or"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match=why):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_cos_keys_without_the_buckets_they_may_read_fail_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Else a callback naming any bucket the keys can read would have it copied and served."""
    monkeypatch.setenv("STEMHOOK_COS_SECRET_ID", "AKIDexample")
    monkeypatch.setenv("STEMHOOK_COS_SECRET_KEY", "a-secret")

    with pytest.raises(ValidationError, match="STEMHOOK_COS_BUCKETS must name the buckets"):
        Settings(_env_file=None)  # type: ignore[call-arg]

    monkeypatch.setenv("STEMHOOK_COS_BUCKETS", "media-1250000000")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.mirror_policy.cos, settings.cos_buckets) == (
        True,
        (CosBucket("media-1250000000"),),
    )


@pytest.mark.parametrize(
    "name", ["suno_api_key", "media_lab_secret_key", "cos_secret_key", "callback_token"]
)
def test_a_refused_credential_is_named_never_quoted(name: str) -> None:
    """A key read with its file's newline cannot go into a header; refused at start-up, and the
    error names the setting without its value."""
    secret = "abcdefghijklmnop-0123456789-x\n" if name != "callback_token" else "short-secret"
    pairs = {"media_lab_secret_key": "media_lab_secret_id", "cos_secret_key": "cos_secret_id"}
    values: dict[str, object] = {name: secret}
    if name in pairs:
        values[pairs[name]] = "key-id"
    if name == "cos_secret_key":
        values["cos_buckets"] = "media-1250000000"

    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, **values)  # type: ignore[call-arg]

    assert name in str(refused.value)
    assert secret.strip() not in str(refused.value)


_QUEUE = "p893bcda225bf4945a378da6662e81a89"


def _with_cos_keys(monkeypatch: pytest.MonkeyPatch, buckets: str) -> None:
    monkeypatch.setenv("STEMHOOK_COS_SECRET_ID", "AKIDexample")
    monkeypatch.setenv("STEMHOOK_COS_SECRET_KEY", "a-secret")
    monkeypatch.setenv("STEMHOOK_COS_BUCKETS", buckets)


def test_ci_queues_name_a_queue_its_bucket_and_region_and_the_tag_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with_cos_keys(monkeypatch, "media-1250000000,tts-1250000000@ap-beijing")
    monkeypatch.setenv(
        "STEMHOOK_CI_QUEUES",
        f" {_QUEUE}@media-1250000000@ap-guangzhou, q2@tts-1250000000@ap-beijing/Tts,,",
    )

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.ci_queues == (
        CiQueue(_QUEUE, "media-1250000000", "ap-guangzhou", "VoiceSeparate"),
        CiQueue("q2", "tts-1250000000", "ap-beijing", "Tts"),
    )
    assert [queue.name for queue in settings.ci_queues] == [
        f"{_QUEUE}@media-1250000000@ap-guangzhou/VoiceSeparate",
        "q2@tts-1250000000@ap-beijing/Tts",
    ]


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (_QUEUE, "three parts joined by '@' are needed"),
        (f"{_QUEUE}@media-1250000000", "three parts joined by '@' are needed"),
        (f"{_QUEUE}@media-1250000000@ap-guangzhou@x", "three parts joined by '@' are needed"),
        ("q/../x@media-1250000000@ap-guangzhou", "three parts joined by '@' are needed"),
        ("q?a=1@media-1250000000@ap-guangzhou", "not a CI queue id"),
        ("@media-1250000000@ap-guangzhou", "not a CI queue id"),
        (f"{_QUEUE}@evil.example@ap-guangzhou", "not a COS bucket name"),
        (f"{_QUEUE}@media-1250000000@mars", "not a COS region"),
        (f"{_QUEUE}@media-1250000000@ap-guangzhou/", "not a CI job tag"),
        (f"{_QUEUE}@media-1250000000@ap-guangzhou/Tts&size=1", "not a CI job tag"),
    ],
)
def test_a_ci_queue_that_ci_would_not_have_fails_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, entry: str, why: str
) -> None:
    _with_cos_keys(monkeypatch, "media-1250000000")
    monkeypatch.setenv("STEMHOOK_CI_QUEUES", entry)

    with pytest.raises(ValidationError, match=f"{re.escape(repr(entry))} is not queueId@bucket"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match=re.escape(why)):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_ci_queue_longer_than_its_listings_name_may_hold_fails_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket, region = f"{'b' * 50}-123456789012", f"ap-{'a' * 20}-{'b' * 10}-12"
    _with_cos_keys(monkeypatch, bucket)
    tag = "T" + "a" * (255 - len(f"{'q' * 128}@{bucket}@{region}/T"))
    longest = f"{'q' * 128}@{bucket}@{region}/{tag}"
    assert len(longest) == 255
    monkeypatch.setenv("STEMHOOK_CI_QUEUES", longest)
    assert Settings(_env_file=None).ci_queues[0].name == longest  # type: ignore[call-arg]

    monkeypatch.setenv("STEMHOOK_CI_QUEUES", f"{longest}a")
    with pytest.raises(ValidationError, match="is 256 characters long .* more than the 255"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_ci_queue_is_listed_only_with_the_cos_keys_in_a_bucket_they_may_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEMHOOK_CI_QUEUES", f"{_QUEUE}@media-1250000000@ap-guangzhou")
    with pytest.raises(ValidationError, match="STEMHOOK_CI_QUEUES needs the COS keys"):
        Settings(_env_file=None)  # type: ignore[call-arg]

    _with_cos_keys(monkeypatch, "media-1250000000@ap-beijing,other-1250000000")
    with pytest.raises(ValidationError, match="in a bucket STEMHOOK_COS_BUCKETS does not name"):
        Settings(_env_file=None)  # type: ignore[call-arg]

    _with_cos_keys(monkeypatch, "media-1250000000@ap-guangzhou")
    assert len(Settings(_env_file=None).ci_queues) == 1  # type: ignore[call-arg]


def test_confirm_by_poll_names_providers_each_polled_with_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEMHOOK_CONFIRM_BY_POLL", "tencent-ci, suno,tencent-media-lab")
    with pytest.raises(
        ValidationError, match="names tencent-ci, whose jobs cannot be polled without the COS keys"
    ):
        Settings(_env_file=None)  # type: ignore[call-arg]

    _with_cos_keys(monkeypatch, "media-1250000000")
    monkeypatch.setenv("STEMHOOK_SUNO_API_KEY", "suno-api-key-0123")
    with pytest.raises(ValidationError, match="STEMHOOK_MEDIA_LAB_SECRET_ID and"):
        Settings(_env_file=None)  # type: ignore[call-arg]

    monkeypatch.setenv("STEMHOOK_MEDIA_LAB_SECRET_ID", "AKIDmedialab0123")
    monkeypatch.setenv("STEMHOOK_MEDIA_LAB_SECRET_KEY", "media-lab-secret-0123")
    assert Settings(_env_file=None).confirmed_providers == frozenset(Provider)  # type: ignore[call-arg]


def test_confirm_by_poll_refuses_suno_while_its_callbacks_must_be_signed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEMHOOK_CONFIRM_BY_POLL", "suno")
    monkeypatch.setenv("STEMHOOK_SUNO_API_KEY", "suno-api-key-0123")
    monkeypatch.setenv("STEMHOOK_SUNO_HMAC_KEY", "suno-hmac-key")

    with pytest.raises(ValidationError, match="names suno while STEMHOOK_SUNO_HMAC_KEY is set"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_confirm_by_poll_refuses_a_name_that_is_no_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEMHOOK_CONFIRM_BY_POLL", "tencent")

    with pytest.raises(ValidationError, match="'tencent' is not a provider"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("STEMHOOK_CONFIRM_BY_POLL", "")
    assert Settings(_env_file=None).confirmed_providers == frozenset()  # type: ignore[call-arg]
