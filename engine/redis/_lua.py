"""The Lua scripts of the Redis ledger (see :mod:`flashsale.redis._ledger` and the README's key table).

``RESERVE`` decides a purchase in the one order of checks written in
:mod:`flashsale.actors.rules` (key, window, sold out, per-user limit, stock),
and ``THROTTLE`` computes a token bucket exactly as
:class:`flashsale.actors.TokenBucket` does (the same float steps, so the same
microsecond); ``tests/scenarios/test_backends.py`` and
``tests/distributed/test_lua_rules.py`` hold them to it. Change a rule there
and here together.

Each script touches the keys of one SKU only (hash tag ``{sku}``; the rate
limit script only ``{rl}``), so it runs on one Redis Cluster slot. Key names
below the SKU's base (``P:{S}:``) are built in the script from ``ARGV[1]``;
they share the base's hash tag. Times come in as arguments (the caller's
message time), never from Redis ``TIME``. Numbers go back to Redis through
``string.format('%d')``: Lua would print a microsecond time as ``1.7e+15``.

Meta fields: ``stock`` (including restocks), ``remaining``, ``reserved``,
``paid``, ``seq``, ``starts_at``, ``ends_at``, ``limit``, ``hold_us``,
``paused`` (``"1"`` while an operator has the SKU paused; ``""`` when
unset). Every script that changes orders appends their whole rows to
the ``orders`` stream in the same call, as one entry per call: ``sku`` and
``rows``, a JSON array of ``[order_id, user, qty, status, created_at,
expires_at, changed_at, idempotency_key]`` string arrays (numbers as strings:
cjson keeps only 14 digits). One entry per call, not per order, keeps the
stream's cost and the sink's acknowledgements per batch.
"""

from __future__ import annotations

# KEYS: meta, users, due, stream. Shared by the scripts that change orders.
_PRELUDE = """
local function d(n) return string.format('%d', n) end
local rows = {}
-- The order rows this call changed, as one stream entry (none when nothing changed).
local function flush(sku)
  if #rows > 0 then redis.call('XADD', KEYS[4], '*', 'sku', sku, 'rows', cjson.encode(rows)) end
end
local function view()
  local m = redis.call('HMGET', KEYS[1], 'stock', 'remaining', 'reserved', 'paid', 'starts_at', 'ends_at', 'paused')
  return {m[1], m[2], m[3], m[4], m[5] or '', m[6] or '', m[7] or ''}
end
-- Live idempotency keys in 'keys': in all ('n'), per buyer ('u:<user>') and per client address ('ip:<ip>').
local function uncount(base, field)
  if redis.call('HINCRBY', base .. 'keys', field, -1) <= 0 then redis.call('HDEL', base .. 'keys', field) end
end
-- Close a reserved order: paid, cancelled or expired; units move exactly once.
local function close(base, sku, id, o, status, at)
  local qty = tonumber(o[2])
  redis.call('HSET', base .. 'order:' .. id, 'status', status)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HINCRBY', KEYS[1], 'reserved', -qty)
  if status == 'paid' then
    redis.call('HINCRBY', KEYS[1], 'paid', qty)
  else
    redis.call('HINCRBY', KEYS[1], 'remaining', qty)
    if redis.call('HINCRBY', KEYS[2], o[1], -qty) <= 0 then redis.call('HDEL', KEYS[2], o[1]) end
  end
  if o[6] and o[6] ~= '' then  -- a final order's idempotency key has nothing left to answer: forget it
    local idem = base .. 'idem:' .. o[1] .. ':' .. o[6]
    local rec = redis.call('GET', idem)  -- unless the key was used again (after its ttl) for another order
    if rec and string.find(rec, '|reserved|' .. id .. '|', 1, true) then redis.call('DEL', idem) end
    uncount(base, 'n')
    uncount(base, 'u:' .. o[1])
    if o[7] and o[7] ~= '' then uncount(base, 'ip:' .. o[7]) end
  end
  rows[#rows + 1] = {id, o[1], o[2], status, o[4], o[5], at, o[6] or ''}
end
local ORDER = {'user', 'qty', 'status', 'created_at', 'expires_at', 'key', 'ip'}
"""

INIT = """
-- KEYS: meta. ARGV: stock, starts_at, ends_at, limit, hold_us. Only the first caller sets anything.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'remaining', ARGV[1], 'reserved', 0, 'paid', 0, 'seq', 0,
  'starts_at', ARGV[2], 'ends_at', ARGV[3], 'limit', ARGV[4], 'hold_us', ARGV[5])
return 1
"""

RESERVE = (
    _PRELUDE
    + """
-- ARGV: base, sku, idempotency ttl (ms), live keys allowed per buyer, per address, the id key's HMAC
-- pads (hex: key^ipad, key^opad; see actors._ids), then per purchase: user, qty, idempotency key ('' for none),
-- at, client address ('' for none).
-- Per purchase, one answer: 'reserved|id|expires_at', 'sold_out|left', 'limit_reached|limit|held',
-- 'sale_not_open|not_started' / '|ended', 'sale_paused', 'idempotency_key_reused|qty',
-- 'key_limit|buyer' / '|address', or 'again|<recorded answer>'. Only a key that reserved an order is
-- recorded (until the order is final or the ttl passes): a refused purchase's retry is decided again.
-- The checks, in the order of flashsale.actors.rules: 0 key, 1 window, 1b paused, 2 sold out, 3 per-user
-- limit, 4 stock.
local base, sku, ttl = ARGV[1], ARGV[2], ARGV[3]
local per_buyer, per_ip = tonumber(ARGV[4]), tonumber(ARGV[5])
local function bin(h) return (string.gsub(h, '..', function(c) return string.char(tonumber(c, 16)) end)) end
local ipad, opad = bin(ARGV[6]), bin(ARGV[7])
-- An order id: '<sku>-<n>-' and 64 bits of HMAC-SHA1(key, '<sku>-<n>'), the same as OrderIds.make.
local function order_id(n)
  local name = sku .. '-' .. d(n)
  return name .. '-' .. string.sub(redis.sha1hex(opad .. bin(redis.sha1hex(ipad .. name))), 1, 16)
end
local m = redis.call('HMGET', KEYS[1], 'remaining', 'seq', 'starts_at', 'ends_at', 'limit', 'hold_us', 'paused')
if not m[1] then return {'no_sku'} end
local remaining, seq = tonumber(m[1]), tonumber(m[2])
local starts, ends, limit, hold = tonumber(m[3]), tonumber(m[4]), tonumber(m[5]), tonumber(m[6])
local paused = m[7] == '1'
local taken = 0
local out = {}
for i = 8, #ARGV, 5 do
  local user, qty, key, at, ip = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  local idem, ans
  if key ~= '' then
    idem = base .. 'idem:' .. user .. ':' .. key
    local rec = redis.call('GET', idem)
    if rec then
      local sep = string.find(rec, '|', 1, true)
      local first = string.sub(rec, 1, sep - 1)
      if tonumber(first) == qty then ans = 'again|' .. string.sub(rec, sep + 1)
      else ans = 'idempotency_key_reused|' .. first end
      idem = nil
    else
      local held = redis.call('HMGET', base .. 'keys', 'u:' .. user, 'ip:' .. ip)
      if tonumber(held[1] or '0') >= per_buyer then ans = 'key_limit|buyer'
      elseif ip ~= '' and tonumber(held[2] or '0') >= per_ip then ans = 'key_limit|address' end
    end
  end
  if not ans then
    if starts and at < starts then ans = 'sale_not_open|not_started'
    elseif ends and at >= ends then ans = 'sale_not_open|ended'
    elseif paused then ans = 'sale_paused'
    elseif remaining <= 0 then ans = 'sold_out|' .. d(remaining)
    else
      local held = 0
      if limit then held = tonumber(redis.call('HGET', KEYS[2], user) or '0') end
      if limit and held + qty > limit then ans = 'limit_reached|' .. d(limit) .. '|' .. d(held)
      elseif qty > remaining then ans = 'sold_out|' .. d(remaining)
      else
        remaining = remaining - qty
        taken = taken + qty
        seq = seq + 1
        local id, created, expires = order_id(seq), d(at), d(at + hold)
        redis.call('HINCRBY', KEYS[2], user, qty)
        redis.call('HSET', base .. 'order:' .. id, 'user', user, 'qty', d(qty), 'status', 'reserved',
          'created_at', created, 'expires_at', expires, 'key', key, 'ip', ip)
        redis.call('ZADD', KEYS[3], expires, id)
        rows[#rows + 1] = {id, user, d(qty), 'reserved', created, expires, created, key}
        ans = 'reserved|' .. id .. '|' .. expires
      end
    end
    if idem and string.sub(ans, 1, 9) == 'reserved|' then
      redis.call('SET', idem, d(qty) .. '|' .. ans, 'PX', ttl)
      redis.call('HINCRBY', base .. 'keys', 'n', 1)
      redis.call('HINCRBY', base .. 'keys', 'u:' .. user, 1)
      if ip ~= '' then redis.call('HINCRBY', base .. 'keys', 'ip:' .. ip, 1) end
    end
  end
  out[#out + 1] = ans
end
if taken > 0 then
  flush(sku)
  redis.call('HSET', KEYS[1], 'remaining', d(remaining), 'seq', d(seq))
  redis.call('HINCRBY', KEYS[1], 'reserved', taken)
end
local v = view()
for j = 1, 7 do out[#out + 1] = v[j] end
return out
"""
)

CHANGE = (
    _PRELUDE
    + """
-- ARGV: base, sku, order id, 'paid' | 'cancelled', at. Returns refused ('' when done), the order row, the view.
local base, sku, id, status, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local o = redis.call('HMGET', base .. 'order:' .. id, unpack(ORDER))
if not o[1] then return {'unknown_order'} end
local refused = ''
if o[3] ~= 'reserved' then refused = 'not_reserved'
else
  if tonumber(at) >= tonumber(o[5]) then status = 'expired'; refused = 'expired' end
  close(base, sku, id, o, status, at)
  flush(sku)
  o[3] = status
end
local out = {refused, o[1], o[2], o[3], o[4], o[5], o[6] or ''}
local v = view()
for j = 1, 7 do out[#out + 1] = v[j] end
return out
"""
)

EXPIRE = (
    _PRELUDE
    + """
-- ARGV: base, sku, at, limit. Expires due reservations; returns how many, then the view.
local base, sku, at = ARGV[1], ARGV[2], ARGV[3]
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', at, 'LIMIT', 0, tonumber(ARGV[4]))
local n = 0
for _, id in ipairs(ids) do
  local o = redis.call('HMGET', base .. 'order:' .. id, unpack(ORDER))
  if o[1] and o[3] == 'reserved' then
    close(base, sku, id, o, 'expired', at)
    n = n + 1
  else
    redis.call('ZREM', KEYS[3], id)
  end
end
flush(sku)
local out = {n}
local v = view()
for j = 1, 7 do out[#out + 1] = v[j] end
return out
"""
)

RESTOCK = (
    _PRELUDE
    + """
-- ARGV: qty. Adds units to stock and remaining; returns the view.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_sku'} end
redis.call('HINCRBY', KEYS[1], 'stock', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'remaining', ARGV[1])
return view()
"""
)

CONTROL = (
    _PRELUDE
    + """
-- An operator's action on one SKU, for every process. ARGV: 'pause' | 'resume' | 'end', at. Returns the view.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_sku'} end
local action, at = ARGV[1], tonumber(ARGV[2])
if action == 'end' then
  local m = redis.call('HMGET', KEYS[1], 'starts_at', 'ends_at')
  local ends = tonumber(m[2])
  if not ends or at < ends then ends = at; redis.call('HSET', KEYS[1], 'ends_at', d(at)) end
  local starts = tonumber(m[1])
  if starts and starts > ends then redis.call('HSET', KEYS[1], 'starts_at', d(ends)) end
elseif action == 'pause' then redis.call('HSET', KEYS[1], 'paused', '1')
else redis.call('HSET', KEYS[1], 'paused', '') end
return view()
"""
)

THROTTLE = """
-- Token buckets shared by every worker. ARGV: base 'P:{rl}:', then for the user and the IP scope: rate
-- (tokens per microsecond, '' when the scope has no bucket) and burst; then per purchase: user, ip, at.
-- A purchase takes one token from each bucket in scope, or none at all. Answers: '0' (admitted) or the
-- microseconds to wait: the first instant the slowest refusing bucket holds a whole token, computed in
-- the same float steps as flashsale.actors.TokenBucket.next_free, so both give the same microsecond.
-- An operator's live change (PUT /v1/admin/limits) lives in the hash KEYS[1] and wins over the config's.
local base = ARGV[1]
local live = redis.call('HMGET', KEYS[1], 'per_user', 'per_ip')
local function shape(i, j)
  if live[i] and ARGV[j] ~= '' then
    local sep = string.find(live[i], ' ', 1, true)
    return tonumber(string.sub(live[i], 1, sep - 1)) / 1000000, tonumber(string.sub(live[i], sep + 1))
  end
  return tonumber(ARGV[j]), tonumber(ARGV[j + 1])
end
local ur, ub = shape(1, 2)
local ir, ib = shape(2, 4)
local scopes = {{'u:', ur, ub}, {'ip:', ir, ib}}
local function next_free(tokens, last, rate, at)
  if tokens >= 1 then return at end
  local t = last + math.ceil((1 - tokens) / rate)
  while t > last and tokens + (t - 1 - last) * rate >= 1 do t = t - 1 end
  while tokens + (t - last) * rate < 1 do t = t + 1 end
  return t
end
local out = {}
for i = 6, #ARGV, 3 do
  local at = tonumber(ARGV[i + 2])
  local wait, seen = 0, {}
  for s = 1, 2 do
    local sc, id = scopes[s], ARGV[i + s - 1]
    if sc[2] and id ~= '' then
      local key = base .. sc[1] .. id
      local b = redis.call('HMGET', key, 't', 'l')
      local tokens, last = tonumber(b[1]) or sc[3], tonumber(b[2]) or at
      if at > last then tokens = math.min(sc[3], tokens + (at - last) * sc[2]); last = at end
      local free = next_free(tokens, last, sc[2], at)
      if free - at > wait then wait = free - at end
      seen[#seen + 1] = {key, tokens, last, sc}
    end
  end
  for _, b in ipairs(seen) do
    local tokens = b[2]
    if wait == 0 then tokens = tokens - 1 end
    redis.call('HSET', b[1], 't', string.format('%.17g', tokens), 'l', string.format('%d', b[3]))
    redis.call('PEXPIRE', b[1], math.ceil((b[4][3] - tokens) / b[4][2] / 1000) + 1000)
  end
  out[#out + 1] = string.format('%d', wait)
end
return out
"""
