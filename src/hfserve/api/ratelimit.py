"""Rate limits at the HTTP edge, thin: the limiter (``security/ratelimit.py``) decides; this
asks it before each inference request, answers 429 with ``Retry-After`` and OpenAI's
``x-ratelimit-*`` headers, adds those headers to what passes, and charges the tokens the
request used (``hfserve.usage``) once its response is done, streams at their end."""

from __future__ import annotations

import logging

from hfserve.api.family_errors import error_for
from hfserve.api.guard import inference_caller
from hfserve.errors import LimitsUnavailable, RateLimited
from hfserve.security.ratelimit import Limiter, Limits
from hfserve.usage import metering

log = logging.getLogger("hfserve.api")


class RateLimit:
    def __init__(self, app, limiter: Limiter) -> None:
        self.app, self.limiter = app, limiter

    async def __call__(self, scope, receive, send):
        caller = inference_caller(scope)
        if caller is None:
            return await self.app(scope, receive, send)
        state = scope["state"]
        checks = self.limiter.checks(caller.id, Limits(caller.rpm, caller.tpm),
                                     state.get("model_name"))
        if not checks:
            return await self.app(scope, receive, send)
        try:
            decision = await self.limiter.admit(checks)
        except Exception as exc:            # the store is down: refuse rather than not meter
            log.error("rate limit store failed: %s", exc)
            error = LimitsUnavailable("rate limits cannot be checked now; retry shortly")
            return await error_for(scope, error)(scope, receive, send)
        assert decision is not None
        if not decision.allowed:
            wait = decision.retry_after_header
            exc = RateLimited(f"rate limit reached; retry in {wait}s",
                              headers={**decision.headers, "Retry-After": wait})
            return await error_for(scope, exc)(scope, receive, send)
        extra = [(k.encode(), v.encode()) for k, v in decision.headers.items()]

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        with metering() as meter:
            try:
                await self.app(scope, receive, with_headers)
            finally:
                if meter.tokens:
                    try:
                        await self.limiter.charge(checks, meter.tokens)
                    except Exception as exc:
                        log.error("rate limit store failed to charge %d tokens: %s",
                                  meter.tokens, exc)
