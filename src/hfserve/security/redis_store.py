"""Rate limit buckets in Redis, shared by every server that uses the same database. Each
operation is one Lua script, atomic in Redis, on Redis's own clock (servers on several
machines agree), with the same arithmetic as ``ratelimit.refilled`` and ``settle``."""

from __future__ import annotations

from collections.abc import Sequence

from hfserve.security.ratelimit import Check, Outcome

# KEYS: buckets; ARGV: capacity, rate, cost, need per bucket. Returns {allowed, levels...}
# (levels as strings: Redis turns Lua numbers into integers).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels, ok = {}, true
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 4
  local cap, rate = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local need = tonumber(ARGV[b + 4])
  local state = redis.call('HMGET', key, 'level', 'stamp')
  local level = tonumber(state[1]) or cap
  local stamp = tonumber(state[2]) or now
  level = math.min(cap, level + math.max(0, now - stamp) * rate)
  levels[i] = level
  if level < need then ok = false end
end
local out = {ok and 1 or 0}
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 4
  local cap, rate, cost = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  if ok then levels[i] = levels[i] - cost end
  redis.call('HSET', key, 'level', string.format('%.17g', levels[i]),
             'stamp', string.format('%.17g', now))
  redis.call('PEXPIRE', key, math.ceil(2000 * cap / rate))
  out[i + 1] = string.format('%.17g', levels[i])
end
return out
"""

# KEYS: buckets; ARGV: amount, then capacity and rate per bucket.
_CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local amount = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local b = 1 + (i - 1) * 2
  local cap, rate = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local state = redis.call('HMGET', key, 'level', 'stamp')
  local level = tonumber(state[1]) or cap
  local stamp = tonumber(state[2]) or now
  level = math.min(cap, level + math.max(0, now - stamp) * rate) - amount
  redis.call('HSET', key, 'level', string.format('%.17g', level),
             'stamp', string.format('%.17g', now))
  redis.call('PEXPIRE', key, math.ceil(2000 * cap / rate + 1000 * amount / rate))
end
return 1
"""


class RedisStore:
    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis  # an optional dependency: only when configured

        self.client = aioredis.from_url(url)
        self._take = self.client.register_script(_TAKE)
        self._charge = self.client.register_script(_CHARGE)

    async def take(self, checks: Sequence[Check]) -> Outcome:
        args: list[float] = []
        for c in checks:
            args += [c.capacity, c.rate, c.cost, c.need]
        reply = await self._take(keys=[c.bucket for c in checks], args=args)
        return Outcome(bool(int(reply[0])), [float(v) for v in reply[1:]])

    async def charge(self, checks: Sequence[Check], amount: float) -> None:
        args: list[float] = [amount]
        for c in checks:
            args += [c.capacity, c.rate]
        await self._charge(keys=[c.bucket for c in checks], args=args)

    async def close(self) -> None:
        await self.client.aclose()
