from hypothesis import given
from hypothesis import strategies as st

from app.api.schemas.receipts import ReceiptOut, receipt_json
from app.ingest.intake import JobReceipt, Outcome, Receipt
from app.providers.model import Provider, State

_job_receipts = st.builds(
    JobReceipt,
    provider=st.sampled_from(Provider),
    job_id=st.text(),
    state=st.sampled_from(State),
    duplicate=st.booleans(),
)
_receipts = st.builds(
    Receipt,
    delivery_id=st.integers(min_value=1, max_value=2**63 - 1),
    outcome=st.sampled_from(Outcome),
    provider=st.none() | st.sampled_from(Provider),
    jobs=st.lists(_job_receipts, max_size=4).map(tuple),
    error=st.none() | st.text(),
)


@given(_receipts)
def test_the_written_answer_is_the_documented_model_byte_for_byte(receipt: Receipt) -> None:
    assert receipt_json(receipt) == ReceiptOut.of(receipt).model_dump_json().encode()
