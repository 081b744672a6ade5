"""The waiting room's Lua scripts (``backend = "redis"``): one call per room message.

A faithful port of :class:`flashsale.actors.RoomActor`'s rules, in the same
order and the same integers: the draw at the first message at or after
``starts_at``, the token bucket in integer credit (``UNIT`` = 1e9 per
buyer, the rate in milli-buyers per second times microseconds: every
number stays below 2**53, since ``admit_burst`` is at most 1e6), the dead
rule (``last_seen < at - dead_us``), the sweep every ``SWEEP_US`` of message
time, the closing. ``tests/scenarios/test_backends.py`` replays the room
scenarios on both and compares digests: change a rule there and here together.

Keys (prefix ``P``, hash tag ``{:room}``, which no SKU id can be), under
``B = P:{:room}:``: ``meta`` (hash: the room's numbers), ``st`` / ``us`` /
``seen`` / ``px`` (hashes by ticket: state, user, last heard from, pass
expiry), ``byuser`` (user -> ticket), ``pre`` (list: the pre-queue in arrival
order), ``draw`` (zset, score 0, members ``sha256(seed + ticket) hex:ticket``:
by lex, the drawn order), ``queue`` (list: waiting tickets in turn), ``log``
(list: what each call changed, the last ``max_log`` entries).

Time comes with each message; ``meta.at`` keeps the latest, and a message
from a worker whose clock is behind is taken at that time (never backwards).

Log entries (``seq`` numbers them; a worker passes the last it applied and
gets every later one back): ``J|ticket|state|position|user`` a new ticket,
``D`` the draw, ``A|ticket|pass_expires_at`` an admission, ``E|ticket`` an
expiry, ``S`` a sweep (recompute positions), ``C|reason`` the closing.
"""

from __future__ import annotations

_PRELUDE = """
local UNIT, SWEEP_US = 1000000000, 1000000
local B = ARGV[1]
local META, ST, US, SEEN, PX = KEYS[1], B .. 'st', B .. 'us', B .. 'seen', B .. 'px'
local BYUSER, PRE, DRAW, QUEUE, LOG = B .. 'byuser', B .. 'pre', B .. 'draw', B .. 'queue', B .. 'log'
local function d(n) return string.format('%d', n) end
local NUM = {'starts', 'rate', 'burst', 'ttl', 'dead_us', 'credit', 'refilled', 'drawn', 'paused', 'admitted',
  'waiting', 'tickets', 'swept_admitted', 'sweep_due', 'at', 'seq', 'max_tickets', 'max_log'}
local m = {}
do
  local raw = redis.call('HGETALL', META)
  if #raw == 0 then return redis.error_reply('no_room') end
  for i = 1, #raw, 2 do m[raw[i]] = raw[i + 1] end
  for _, k in ipairs(NUM) do m[k] = tonumber(m[k]) end
  m.opens = tonumber(m.opens)   -- nil: open from the start
  m.swept = tonumber(m.swept)   -- nil: never swept
end
local entries = {}
local function emit(e) entries[#entries + 1] = e end
-- HMGET / HSET / RPUSH over any number of tickets (Lua's unpack takes a few thousand values at most).
local function hmget(key, ids)
  local out = {}
  for i = 1, #ids, 1000 do
    local got = redis.call('HMGET', key, unpack(ids, i, math.min(i + 999, #ids)))
    for j = 1, #got do out[#out + 1] = got[j] end
  end
  return out
end
local function hset_all(key, ids, value)
  for i = 1, #ids, 500 do
    local args = {}
    for j = i, math.min(i + 499, #ids) do args[#args + 1] = ids[j]; args[#args + 1] = value end
    redis.call('HSET', key, unpack(args))
  end
end
local function rpush_all(key, ids)
  for i = 1, #ids, 1000 do redis.call('RPUSH', key, unpack(ids, i, math.min(i + 999, #ids))) end
end
local function clock(at) if at > m.at then m.at = at end return m.at end

local function admit(at)
  if m.drawn == 0 or m.paused == 1 or m.closed ~= '' then return end
  if at > m.refilled then
    m.credit = math.min(m.burst * UNIT, m.credit + (at - m.refilled) * m.rate)
    m.refilled = at
  end
  local dead_before = at - m.dead_us
  while m.credit >= UNIT do
    local t = redis.call('LPOP', QUEUE)
    if not t then break end
    if redis.call('HGET', ST, t) == 'waiting' then
      m.waiting = m.waiting - 1
      if tonumber(redis.call('HGET', SEEN, t)) < dead_before then
        redis.call('HSET', ST, t, 'expired')
        emit('E|' .. t)
      else
        m.credit = m.credit - UNIT
        local exp = at + m.ttl
        redis.call('HSET', ST, t, 'admitted')
        redis.call('HSET', PX, t, d(exp))
        m.admitted = m.admitted + 1
        emit('A|' .. t .. '|' .. d(exp))
      end
    end
  end
end

local function draw()
  local members = redis.call('ZRANGE', DRAW, 0, -1)
  local ids = {}
  for i, member in ipairs(members) do ids[i] = string.sub(member, 66) end  -- after '<64 hex>:'
  local states = hmget(ST, ids)
  local moved = {}
  for i, t in ipairs(ids) do if states[i] == 'pre_queue' then moved[#moved + 1] = t end end
  hset_all(ST, moved, 'waiting')
  rpush_all(QUEUE, moved)
  redis.call('DEL', PRE)
  m.drawn, m.refilled, m.sweep_due = 1, m.starts, 1
  emit('D')
end

local function advance(at)
  if m.drawn == 0 and at >= m.starts and m.closed == '' then draw() end
  admit(at)
end

-- Expire the dead among ids (their states and last-seen times given); return how many live ones are left.
local function cull(ids, live_state, dead_before)
  local states, seen = hmget(ST, ids), hmget(SEEN, ids)
  local live, dead = 0, {}
  for i, t in ipairs(ids) do
    if states[i] == live_state then
      if tonumber(seen[i]) < dead_before then dead[#dead + 1] = t; emit('E|' .. t) else live = live + 1 end
    end
  end
  hset_all(ST, dead, 'expired')
  return live
end

local function sweep(at)
  m.swept, m.sweep_due, m.swept_admitted = at, 0, m.admitted
  local dead_before = at - m.dead_us
  local live = cull(redis.call('LRANGE', PRE, 0, -1), 'pre_queue', dead_before)
  m.waiting = live + cull(redis.call('LRANGE', QUEUE, 0, -1), 'waiting', dead_before)
  emit('S')
end

local function close(reason)
  m.closed = reason
  for _, key in ipairs({PRE, QUEUE}) do
    local ids = redis.call('LRANGE', key, 0, -1)
    local states = hmget(ST, ids)
    local shut = {}
    for i, t in ipairs(ids) do
      if states[i] == 'pre_queue' or states[i] == 'waiting' then shut[#shut + 1] = t end
    end
    hset_all(ST, shut, 'closed')
  end
  redis.call('DEL', PRE, QUEUE)
  m.waiting = 0
  emit('C|' .. reason)
end

-- Save the numbers, append this call's entries to the log, answer: {results, counters, seq, entries or 'resync'}.
local function finish(results, after, at)
  if m.sweep_due == 1 and m.closed == '' then sweep(at) end
  m.seq = m.seq + #entries
  local save = {}
  for _, k in ipairs(NUM) do save[#save + 1] = k; save[#save + 1] = d(m[k]) end
  redis.call('HSET', META, 'closed', m.closed, 'swept', m.swept and d(m.swept) or '', unpack(save))
  local seq = m.seq
  rpush_all(LOG, entries)
  redis.call('LTRIM', LOG, -m.max_log, -1)
  local first = seq - redis.call('LLEN', LOG) + 1
  local since
  if after + 1 < first then since = 'resync'
  else since = redis.call('LRANGE', LOG, after + 1 - first, -1) end
  local counters = {d(m.waiting), d(m.admitted), d(m.paused), d(m.rate), m.closed, d(m.tickets),
    d(m.swept_admitted), d(m.drawn)}
  return {results, counters, d(seq), since}
end
"""

INIT = """
-- KEYS: meta. ARGV: seed (hex), starts_at, opens_at ('' none), rate (milli-buyers/s), burst, pass ttl (us),
-- dead after (us), max tickets, max log entries. The first caller's values stand; every caller gets the seed.
local seed = redis.call('HGET', KEYS[1], 'seed')
if seed then return seed end
redis.call('HSET', KEYS[1], 'seed', ARGV[1], 'starts', ARGV[2], 'opens', ARGV[3], 'rate', ARGV[4],
  'burst', ARGV[5], 'ttl', ARGV[6], 'dead_us', ARGV[7], 'max_tickets', ARGV[8], 'max_log', ARGV[9],
  'credit', string.format('%d', tonumber(ARGV[5]) * 1000000000), 'refilled', ARGV[2], 'drawn', 0, 'paused', 0,
  'closed', '', 'admitted', 0, 'waiting', 0, 'tickets', 0, 'swept', '', 'swept_admitted', 0, 'sweep_due', 0,
  'at', 0, 'seq', 0)
return ARGV[1]
"""

JOIN = (
    _PRELUDE
    + """
-- ARGV: base, after (the caller's last log seq), then per join: user, ticket, at, sha256(seed + ticket) hex.
-- Per join: 'created|t', 'existing|t', 'room_closed|t' (a closed ticket, so the id given reads closed),
-- 'room_not_open|' or 'room_full|'.
local function join(user, ticket, at, key)
  if m.opens and at < m.opens then return 'room_not_open|' end
  local existing = redis.call('HGET', BYUSER, user)
  if existing and redis.call('HGET', ST, existing) ~= 'expired' then
    if at > tonumber(redis.call('HGET', SEEN, existing)) then redis.call('HSET', SEEN, existing, d(at)) end
    return 'existing|' .. existing
  end
  local state, position, answer = 'closed', '', 'room_closed|'
  if m.closed == '' then
    if m.tickets >= m.max_tickets then return 'room_full|' end
    answer = 'created|'
    if m.drawn == 0 then
      state = 'pre_queue'
      redis.call('RPUSH', PRE, ticket)
      redis.call('ZADD', DRAW, 0, key .. ':' .. ticket)
    else
      -- As of the last sweep, like every position: readers subtract the admissions since.
      state, position = 'waiting', d(m.waiting + 1 + m.admitted - m.swept_admitted)
      redis.call('RPUSH', QUEUE, ticket)
    end
    m.waiting = m.waiting + 1
  end
  m.tickets = m.tickets + 1
  redis.call('HSET', ST, ticket, state)
  redis.call('HSET', US, ticket, user)
  redis.call('HSET', SEEN, ticket, d(at))
  redis.call('HSET', BYUSER, user, ticket)
  emit('J|' .. ticket .. '|' .. state .. '|' .. position .. '|' .. user)
  return answer .. ticket
end
-- Each join as if it came alone: how joins are batched never changes a decision.
local results, at = {}, 0
for i = 3, #ARGV, 4 do
  at = clock(tonumber(ARGV[i + 2]))
  advance(at)
  results[#results + 1] = join(ARGV[i], ARGV[i + 1], at, ARGV[i + 3])
  admit(at)
end
return finish(results, tonumber(ARGV[2]), at)
"""
)

TICK = (
    _PRELUDE
    + """
-- ARGV: base, after, at, closing ('', 'sold_out' or 'ended'), then per heartbeat: ticket, polled at.
for i = 5, #ARGV, 2 do
  local t, polled = ARGV[i], tonumber(ARGV[i + 1])
  local seen = redis.call('HGET', SEEN, t)
  if seen and polled > tonumber(seen) then redis.call('HSET', SEEN, t, d(polled)) end
end
local at = clock(tonumber(ARGV[3]))
advance(at)
if ARGV[4] ~= '' and m.closed == '' then close(ARGV[4])
elseif m.sweep_due == 1 or not m.swept or at >= m.swept + SWEEP_US then sweep(at) end
return finish({}, tonumber(ARGV[2]), at)
"""
)

CONTROL = (
    _PRELUDE
    + """
-- ARGV: base, after, action ('pause', 'resume' or 'rate'), at, rate (milli-buyers/s; for 'rate').
local action, at = ARGV[3], clock(tonumber(ARGV[4]))
advance(at)
if action == 'pause' then m.paused = 1
elseif action == 'resume' then
  m.paused = 0
  if at > m.refilled then m.refilled = at end
elseif action == 'rate' then m.rate = tonumber(ARGV[5]) end
admit(at)
return finish({}, tonumber(ARGV[2]), at)
"""
)

SNAPSHOT = """
-- KEYS: meta. ARGV: base. The whole room, for a worker that starts or fell behind the log's trim:
-- {meta, states, users, pass expiries, each buyer's ticket (hashes, flat), pre, queue, drawn members}.
local B = ARGV[1]
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', B .. 'st'), redis.call('HGETALL', B .. 'us'),
  redis.call('HGETALL', B .. 'px'), redis.call('HGETALL', B .. 'byuser'), redis.call('LRANGE', B .. 'pre', 0, -1),
  redis.call('LRANGE', B .. 'queue', 0, -1), redis.call('ZRANGE', B .. 'draw', 0, -1)}
"""
