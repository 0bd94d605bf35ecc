"""The Lua scripts of :class:`~cascade_core.state.redis_store.RedisStore`: each write is one atomic script.

A script runs alone on the server (Redis and Valkey execute scripts one at a time), so a push, the
trim to the window's size, the expiry refresh and the quantile read happen as one step, for every
process sharing the keys, in one round trip. Every key a script touches is named in ``KEYS`` and
carries the same ``{hash tag}``, so the scripts also run on a Redis Cluster.

Example:
    >>> "ZADD" in SCORE_RECORD and "LTRIM" in OUTCOME_APPEND
    True
"""

from __future__ import annotations

__all__ = ["CLEAR", "OUTCOME_APPEND", "SCORE_RECORD"]

#: KEYS: sorted set (score → member), FIFO list of members, hash {seen}.
#: ARGV: score, window size, rate, ttl (ms). Returns {n, seen, threshold, below, equal}, the
#: threshold as a string (Lua numbers would be truncated to integers on the way back).
SCORE_RECORD = """
local zkey, order, meta = KEYS[1], KEYS[2], KEYS[3]
local score, size, rate, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('ZCARD', zkey) ~= redis.call('LLEN', order) then
  redis.call('DEL', zkey, order, meta)  -- a half-expired or half-evicted window: start it again
end
local seen = redis.call('HINCRBY', meta, 'seen', 1)
local member = seen .. ':' .. score
redis.call('ZADD', zkey, score, member)
redis.call('RPUSH', order, member)
local n = redis.call('LLEN', order)
while n > size do
  redis.call('ZREM', zkey, redis.call('LPOP', order))
  n = n - 1
end
redis.call('PEXPIRE', zkey, ttl)
redis.call('PEXPIRE', order, ttl)
redis.call('PEXPIRE', meta, ttl)
local x = rate * n
local k = math.floor(x)
local frac = x - k
if frac > 0.5 or (frac == 0.5 and k % 2 == 1) then k = k + 1 end  -- Python's round(): half to even
local threshold
if k <= 0 then
  threshold = '-inf'
elseif k >= n then
  threshold = '+inf'
else
  threshold = redis.call('ZRANGE', zkey, k, k, 'WITHSCORES')[2]
end
local below = redis.call('ZCOUNT', zkey, '-inf', '(' .. threshold)
local equal = redis.call('ZCOUNT', zkey, threshold, threshold)
return {n, seen, threshold, below, equal}
"""

#: KEYS: list of outcomes ("v1,v2,…"). ARGV: outcome, size, width, ttl (ms), "1" to append / "0" to read.
#: Returns {n, sum_1, …, sum_width} (sums as strings); a malformed item is an error, never a number.
OUTCOME_APPEND = """
local key, size, width, ttl = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[5] == '1' then
  redis.call('RPUSH', key, ARGV[1])
  redis.call('LTRIM', key, -size, -1)
  redis.call('PEXPIRE', key, ttl)
end
local sums = {}
for i = 1, width do sums[i] = 0 end
local items = redis.call('LRANGE', key, 0, -1)
for _, item in ipairs(items) do
  local i = 0
  for field in string.gmatch(item, '[^,]+') do
    i = i + 1
    local value = tonumber(field)
    if value == nil or i > width then return redis.error_reply('CASCADE_STATE malformed outcome in ' .. key) end
    sums[i] = sums[i] + value
  end
  if i ~= width then return redis.error_reply('CASCADE_STATE malformed outcome in ' .. key) end
end
local reply = {#items}
for i = 1, width do reply[i + 1] = string.format('%.17g', sums[i]) end
return reply
"""

#: KEYS: every key of one window. Deletes them.
CLEAR = "return redis.call('DEL', unpack(KEYS))"
