"""The two server-side scripts of the Redis Streams source, and the shape of their replies.

Both run atomically in Redis, so "is this entry still ours?" and "claim it" cannot be split by
another consumer's claim in between.

``TOUCH`` (heartbeat, extend, retry_later, release): for each given id still pending *for this
consumer*, set its idle time to ``idle_ms`` (``XCLAIM ... IDLE ms JUSTID``: the delivery count
is not incremented). ``idle_ms = 0`` keeps the entry ours for a further visibility timeout;
``idle_ms = visibility - delay`` makes it claimable after ``delay``; ``idle_ms = visibility``
gives it away at once. Ids another consumer has taken over are left alone and not returned.

``CLAIM`` takes entries for this consumer and returns each with its delivery count (from
``XPENDING``, after the claim counted this delivery), so poison is recognised where it is read:

* ``ids``: ``XCLAIM`` the given ids if idle for at least ``min_idle_ms`` (our own retries whose
  delay has passed: if another consumer took one first, it is not returned);
* ``auto``: ``XAUTOCLAIM`` from ``cursor`` (entries of crashed or stalled consumers);
* ``own``: this consumer's own pending entries after ``cursor`` (a restart under a fixed
  consumer name resumes them).

Reply: ``[next_cursor, [[id, [field, value, ...]], ...], [count, ...]]``.

``FORGET`` deletes this consumer from the group only if nothing is pending for it (deleting a
consumer drops its pending entries from the group: they would never be delivered again).
"""

from __future__ import annotations

from typing import Any

import msgspec

TOUCH = """
local owned = {}
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then owned[#owned + 1] = ARGV[i] end
end
for first = 1, #owned, 1000 do
  local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
  for i = first, math.min(first + 999, #owned) do args[#args + 1] = owned[i] end
  args[#args + 1] = 'IDLE'
  args[#args + 1] = ARGV[3]
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
return owned
"""

CLAIM = """
local group, consumer, mode, min_idle, arg = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cursor, entries = '0-0', {}
if mode == 'auto' then
  local r = redis.call('XAUTOCLAIM', KEYS[1], group, consumer, min_idle, arg, 'COUNT', ARGV[6])
  cursor, entries = r[1], r[2]
elseif mode == 'own' then
  local p = redis.call('XPENDING', KEYS[1], group, '(' .. arg, '+', ARGV[6], consumer)
  if #p > 0 then
    local args = {'XCLAIM', KEYS[1], group, consumer, 0}
    for i = 1, #p do args[#args + 1] = p[i][1] end
    entries = redis.call(unpack(args))
    cursor = p[#p][1]
  end
else
  local args = {'XCLAIM', KEYS[1], group, consumer, min_idle}
  for i = 5, #ARGV do args[#args + 1] = ARGV[i] end
  entries = redis.call(unpack(args))
end
local kept, counts = {}, {}
for _, e in ipairs(entries) do
  if e then
    local p = redis.call('XPENDING', KEYS[1], group, e[1], e[1], 1)
    kept[#kept + 1] = e
    counts[#counts + 1] = p[1] and p[1][4] or 0
  end
end
return {cursor, kept, counts}
"""


class Claimed(msgspec.Struct, frozen=True):
    entry_id: str
    fields: list[bytes]
    deliveries: int


def parse_claim(reply: list[Any]) -> tuple[str, list[Claimed]]:
    """``(next_cursor, claimed entries)`` from a ``CLAIM`` reply."""
    cursor, entries, counts = reply
    claimed = [Claimed(as_text(e[0]), list(e[1]), int(n)) for e, n in zip(entries, counts, strict=True)]
    return as_text(cursor), claimed


def as_text(v: object) -> str:
    """A reply value (bytes without ``decode_responses``) as text."""
    return v.decode() if isinstance(v, bytes) else str(v)


FORGET = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
