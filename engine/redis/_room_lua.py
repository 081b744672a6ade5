"""The waiting room's Lua scripts (``backend = "redis"``): one call per room message.

A faithful port of :class:`flashsale.actors.RoomActor`'s rules, in the same
order and the same integers: the draw at the first message at or after
``starts_at``, the token bucket in integer credit (``UNIT`` = 1e9 per
buyer, the rate in milli-buyers per second times microseconds: every
number stays below 2**53, since ``admit_burst`` is at most 1e6), the dead
rule (``last_seen < at - dead_us``), the sweep every ``SWEEP_US`` of message
time (expiring the dead in the order the actor finds them: the pre-queue in
arrival order, then the queue in turn), the closing. ``tests/scenarios/test_backends.py`` replays the room
scenarios on both and compares digests: change a rule there and here together.

Keys (prefix ``P``, hash tag ``{:room}``, which no SKU id can be), under
``B = P:{:room}:``: ``meta`` (hash: the room's numbers), ``st`` / ``us`` /
``px`` (hashes by ticket: state, user, pass expiry), ``live`` (zset: every
``pre_queue`` and ``waiting`` ticket, scored by when it was last heard from),
``ord`` (hash: each live ticket's place in the actor's order: ``n:key`` for a pre-queue ticket, the
``n``-th to arrive with its draw key, ``n`` for a later join),
``byuser`` (user -> ticket), ``pre`` (list: the pre-queue in arrival order),
``draw`` (zset, score 0, members ``sha256(seed + ticket) hex:ticket``: by
lex, the drawn order; after the draw, the head of the queue, read by rank
from ``meta.dq``), ``queue`` (list: tickets that joined after the draw, in
turn), ``used``
(zset: proof-of-work challenges spent, scored by their expiry), ``log``
(list: what each call changed, the last ``max_log`` entries).

The draw and the closing do not grow with the room: they write no ticket
(a ticket's ``pre_queue`` reads as waiting once drawn, and any live state
as closed once the room closes; the snapshot's reader maps them). Only
``SNAPSHOT`` reads the whole room.
The sweep reads only what it must: the dead, from ``live`` by score
(``ZRANGEBYSCORE``), put in the actor's order by their ordinals; ``waiting``
is kept as tickets come and go. Its cost grows with the dead it finds, not
with the queue; positions are numbered by each worker on its own mirror.

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
local META, ST, US, LIVE, ORD, PX = KEYS[1], B .. 'st', B .. 'us', B .. 'live', B .. 'ord', B .. 'px'
local BYUSER, PRE, DRAW, QUEUE = B .. 'byuser', B .. 'pre', B .. 'draw', B .. 'queue'
local USED, LOG = B .. 'used', B .. 'log'
local function d(n) return string.format('%d', n) end
local NUM = {'starts', 'rate', 'burst', 'ttl', 'dead_us', 'credit', 'refilled', 'drawn', 'paused', 'admitted',
  'waiting', 'tickets', 'swept_admitted', 'sweep_due', 'at', 'seq', 'max_tickets', 'max_log', 'dq'}
local m = {}
do
  local raw = redis.call('HGETALL', META)
  if #raw == 0 then return redis.error_reply('no_room') end
  for i = 1, #raw, 2 do m[raw[i]] = raw[i + 1] end
  for _, k in ipairs(NUM) do m[k] = tonumber(m[k]) end
  m.opens = tonumber(m.opens)   -- nil: open from the start
  m.swept = tonumber(m.swept)   -- nil: never swept
  -- A room drawn before the draw cursor existed had its drawn moved into the queue: the cursor is past them.
  if not m.dq then m.dq = m.drawn == 1 and redis.call('ZCARD', DRAW) or 0 end
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
local function zrem_all(key, ids)
  for i = 1, #ids, 1000 do redis.call('ZREM', key, unpack(ids, i, math.min(i + 999, #ids))) end
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
    -- In turn: the drawn (``draw`` by rank, from the cursor ``dq``), then later joins (``queue``).
    local t
    local drawn = redis.call('ZRANGE', DRAW, m.dq, m.dq)
    if drawn[1] then
      t, m.dq = string.sub(drawn[1], 66), m.dq + 1
    else
      t = redis.call('LPOP', QUEUE)
      if not t then break end
    end
    local state = redis.call('HGET', ST, t)
    if state == 'waiting' or state == 'pre_queue' then  -- a drawn ticket still 'pre_queue' in ``st`` is waiting
      m.waiting = m.waiting - 1
      local seen = tonumber(redis.call('ZSCORE', LIVE, t))
      redis.call('ZREM', LIVE, t)
      if seen < dead_before then
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

-- The draw moves nothing: ``draw`` already holds the pre-queue in drawn order, and admit reads it by rank
-- from the cursor ``dq``; a drawn ticket's 'pre_queue' in ``st`` reads as waiting from now on (SNAPSHOT's
-- reader says so). So the draw costs the same for a million tickets as for ten, and Redis is never held
-- by it while every worker waits.
local function draw()
  redis.call('UNLINK', PRE)
  m.drawn, m.refilled, m.sweep_due, m.dq = 1, m.starts, 1, 0
  emit('D')
end

local function advance(at)
  if m.drawn == 0 and at >= m.starts and m.closed == '' then draw() end
  admit(at)
end

-- Expire the dead (silent since before at - dead_us), in ordinal order; every other live ticket keeps its place.
local function sweep(at)
  m.swept, m.sweep_due, m.swept_admitted = at, 0, m.admitted
  local dead = redis.call('ZRANGEBYSCORE', LIVE, '-inf', '(' .. d(at - m.dead_us))
  if #dead > 0 then
    -- Before the draw: by arrival. After: the drawn by draw key (the drawn order), then later joins by arrival.
    local ords, n, key = hmget(ORD, dead), {}, {}
    for i, t in ipairs(dead) do
      local arrival, k = string.match(ords[i], '^(%d+):?(%x*)$')
      n[t], key[t] = tonumber(arrival), k
    end
    table.sort(dead, function(a, b)
      local ka, kb = key[a], key[b]
      if m.drawn == 1 and ka ~= kb then
        if ka == '' or kb == '' then return kb == '' end
        return ka < kb
      end
      return n[a] < n[b]
    end)
    for _, t in ipairs(dead) do emit('E|' .. t) end
    hset_all(ST, dead, 'expired')
    zrem_all(LIVE, dead)
    m.waiting = m.waiting - #dead
  end
  emit('S')
end

-- The closing writes no ticket: every ticket still 'pre_queue' or 'waiting' in ``st`` reads closed from now on
-- (SNAPSHOT's reader says so), and the keys only the open room needs go (UNLINK: freed off Redis's thread).
local function close(reason)
  m.closed = reason
  redis.call('UNLINK', PRE, QUEUE, LIVE, ORD)
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
  'at', 0, 'seq', 0, 'dq', 0)
return ARGV[1]
"""

JOIN = (
    _PRELUDE
    + """
-- ARGV: base, after (the caller's last log seq), then per join: user, ticket, at, sha256(seed + ticket) hex,
-- the proof-of-work challenge ('' none) and its expiry. Per join: 'created|t', 'existing|t', 'room_closed|t'
-- (a closed ticket, so the id given reads closed), 'room_not_open|', 'challenge_used|' or 'room_full|'.
-- A join that makes a ticket spends its challenge, for every worker: so ``used`` holds at most max_tickets,
-- and loses each challenge once it has expired (the gateway refuses an expired one before it comes here).
local function join(user, ticket, at, key, challenge, expires)
  if m.opens and at < m.opens then return 'room_not_open|' end
  local existing = redis.call('HGET', BYUSER, user)
  if existing and redis.call('HGET', ST, existing) ~= 'expired' then
    redis.call('ZADD', LIVE, 'XX', 'GT', d(at), existing)  -- a heartbeat, while it is live
    return 'existing|' .. existing
  end
  if challenge ~= '' and redis.call('ZSCORE', USED, challenge) then return 'challenge_used|' end
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
    redis.call('ZADD', LIVE, d(at), ticket)
    redis.call('HSET', ORD, ticket, m.drawn == 0 and d(m.tickets) .. ':' .. key or d(m.tickets))
  end
  if challenge ~= '' then redis.call('ZADD', USED, expires, challenge) end
  m.tickets = m.tickets + 1
  redis.call('HSET', ST, ticket, state)
  redis.call('HSET', US, ticket, user)
  redis.call('HSET', BYUSER, user, ticket)
  emit('J|' .. ticket .. '|' .. state .. '|' .. position .. '|' .. user)
  return answer .. ticket
end
-- Each join as if it came alone: how joins are batched never changes a decision.
local results, at, pruned = {}, 0, false
for i = 3, #ARGV, 6 do
  at = clock(tonumber(ARGV[i + 2]))
  advance(at)
  if ARGV[i + 4] ~= '' and not pruned then
    redis.call('ZREMRANGEBYSCORE', USED, '-inf', d(at))
    pruned = true
  end
  results[#results + 1] = join(ARGV[i], ARGV[i + 1], at, ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
  admit(at)
end
return finish(results, tonumber(ARGV[2]), at)
"""
)

TICK = (
    _PRELUDE
    + """
-- ARGV: base, after, at, closing ('', 'sold_out' or 'ended'), then per heartbeat: ticket, polled at.
-- Only live tickets' heartbeats count (XX), and only forward (GT).
for i = 5, #ARGV, 1000 do
  local args = {}
  for j = i, math.min(i + 998, #ARGV), 2 do args[#args + 1] = ARGV[j + 1]; args[#args + 1] = ARGV[j] end
  redis.call('ZADD', LIVE, 'XX', 'GT', unpack(args))
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
