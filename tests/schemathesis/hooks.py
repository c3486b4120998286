"""Schemathesis hooks for tests/tests/schemathesis.rs (loaded through
SCHEMATHESIS_HOOKS=hooks with this directory as the working directory).

The command API answers 422 when an Idempotency-Key is reused with a
different request (draft-ietf-httpapi-idempotency-key-header). Generated
keys repeat across test cases, which would turn valid requests into 422s
and hide real validation errors from `positive_data_acceptance`. A valid
key is made unique per request; an invalid one is left alone, so the
negative cases still test the header's validation.
"""

import re
import uuid

import schemathesis

_VALID_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() != "idempotency-key":
            continue
        key = headers[name]
        if isinstance(key, str) and _VALID_KEY.match(key):
            headers[name] = (uuid.uuid4().hex + key)[:255]
