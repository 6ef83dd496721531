"""What a caller may say of a job it registers (PUT /v1/jobs/{provider}/{job_id}/expect)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.polling.expect import Registration

NoNul = r"^[^\x00]*$"
Seconds = Annotated[int, Field(ge=1, le=365 * 86400)]


class ExpectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    custom_id: Annotated[str | None, Field(max_length=255, pattern=NoNul)] = None
    user_data: Annotated[str | None, Field(max_length=4096, pattern=NoNul)] = None
    bucket: Annotated[str | None, Field(max_length=255, pattern=NoNul)] = Field(
        default=None,
        description="Tencent CI: the bucket the job runs in (its poll goes to"
        " {bucket}.ci.{region}.myqcloud.com); a callback of the job fills it too",
    )
    region: Annotated[str | None, Field(max_length=64, pattern=NoNul)] = Field(
        default=None, description="Tencent CI: the bucket's region"
    )
    poll_after_s: Seconds | None = Field(
        default=None,
        description="first poll this long after registering, unless a final state arrives"
        " first (default: STEMHOOK_POLL_AFTER)",
    )
    give_up_after_s: Seconds | None = Field(
        default=None,
        description="no poll after this long (default: STEMHOOK_POLL_GIVE_UP_AFTER)",
    )

    def registration(self) -> Registration:
        return Registration(
            custom_id=self.custom_id,
            user_data=self.user_data,
            bucket=self.bucket,
            region=self.region,
            poll_after=_seconds(self.poll_after_s),
            give_up_after=_seconds(self.give_up_after_s),
        )


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)
