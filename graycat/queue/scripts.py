"""Lua scripts: each state change of a job is one atomic round trip.

Every event is appended to the job's event stream (for replay) and published on the reply channel of the
api process waiting for it as `<job id><stream entry id> <event>`, so the api learns of it as Redis
delivers it, without polling. Each script is declared at the end with its named KEYS and ARGV, in the order the
Lua reads them, and the type of its reply (graycat/queue/script.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from graycat import jobs
from graycat.queue import keys
from graycat.queue.script import Script

# The key names and event bytes scripts build, generated from keys.py and jobs.py; each script defines only
# those it uses (a script's body, these definitions included, runs on every call).
_KEY_FUNCTIONS: dict[str, tuple[Callable[..., str], tuple[str, ...]]] = {
    "job_key": (keys.job, ("id",)),
    "events_key": (keys.events, ("id",)),
    "waiting_key": (keys.waiting_of, ("owner",)),
    "stats_key": (keys.pool_stats, ("kind", "model")),
    "usage_key": (keys.usage, ("owner", "day")),
    "alive_key": (keys.alive, ("worker",)),
    "session_key": (keys.session, ("owner", "id")),
    "session_worker_key": (keys.session_worker, ("owner", "id")),
}


def _keys(*names: str) -> str:
    return "".join(keys.lua_function(name, _KEY_FUNCTIONS[name][0], *_KEY_FUNCTIONS[name][1]) for name in names)


_START_EVENT = f"local START_EVENT = '{jobs.START.decode()}'\n"
_END_EVENT = f"local END_EVENT = '{jobs.END.decode()}'\n"

_TERMINAL = """
local function terminal(s) return s == 'completed' or s == 'failed' or s == 'cancelled' or s == 'expired' end
"""

# KEYS: job, pool (or direct lane), the owner's waiting set[, the registry of pools, for a pool]. ARGV: record
# ttl, waiting limit of the pool (0: none), waiting limit of the owner (0: none), now, oldest time a waiting job
# may have, n, n record field/value args, then the stream entry's field/value args. Returns the entry id, or
# {-1, waiting} when the pool is full, or {-2, waiting} when the owner has its limit of jobs waiting.
_ENQUEUE = """
local limit = tonumber(ARGV[2])
if limit > 0 then
  local waiting = redis.call('XLEN', KEYS[2])
  local ok, summary = pcall(redis.call, 'XPENDING', KEYS[2], 'workers')
  if ok then waiting = waiting - summary[1] end
  if waiting >= limit then return {-1, waiting} end
end
local own = tonumber(ARGV[3])
if own > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[5])
  local mine = redis.call('ZCARD', KEYS[3])
  if mine >= own then return {-2, mine} end
end
local n = tonumber(ARGV[6])
redis.call('HSET', KEYS[1], unpack(ARGV, 7, 6 + n))
redis.call('EXPIRE', KEYS[1], ARGV[1])
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 7 + n))
redis.call('HSET', KEYS[1], 'entry', id, 'queue', KEYS[2])
if KEYS[4] then redis.call('SADD', KEYS[4], KEYS[2]) end
if own > 0 then
  redis.call('ZADD', KEYS[3], ARGV[4], string.sub(KEYS[1], -32))
  redis.call('EXPIRE', KEYS[3], ARGV[1])
end
return id
"""

# The owner's set of waiting jobs forgets a job that starts or ends (KEYS[1] is the job record).
_FORGET_WAITING = """
local function forget_waiting()
  local owner = redis.call('HGET', KEYS[1], 'owner')
  if owner and owner ~= '' then redis.call('ZREM', waiting_key(owner), string.sub(KEYS[1], -32)) end
end
"""

# KEYS: job, events, cancel flag. ARGV: channel, job id, worker id, now, ttl.
_START = (
    _keys("waiting_key")
    + _START_EVENT
    + _TERMINAL
    + _FORGET_WAITING
    + """
forget_waiting()
if redis.call('EXISTS', KEYS[3]) == 1 or terminal(redis.call('HGET', KEYS[1], 'state')) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'active', 'worker', ARGV[3], 'started', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local ev = START_EVENT .. ARGV[3]
local id = redis.call('XADD', KEYS[2], '*', 'e', ev)
redis.call('EXPIRE', KEYS[2], ARGV[5])
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], ARGV[2] .. id .. ' ' .. ev) end
return 1
"""
)

# KEYS: events, job. ARGV: channel, job id, worker id, event...
# A worker that lost the job to another (it was presumed dead) writes nothing more to its client.
_EMIT = """
if redis.call('HGET', KEYS[2], 'worker') ~= ARGV[3] then return 0 end
for i = 4, #ARGV do
  local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], ARGV[2] .. id .. ' ' .. ARGV[i]) end
end
return #ARGV - 3
"""

# What a job holds until it ends (KEYS[1] or `job` is its record): its reservation of its token's daily quota
# (rsv_key, rsv: '<job id>:<amount>') and its place among the token's jobs in flight (flight_key). Releasing
# returns the reservation's field (the key's last part) and amount.
_RELEASE_HOLDS = """
local function release_holds(job)
  local h = redis.call('HMGET', job, 'rsv_key', 'rsv', 'flight_key')
  if h[3] then redis.call('ZREM', h[3], string.sub(job, -32)) end
  if not h[1] then return nil, 0 end
  redis.call('ZREM', h[1], h[2])
  return string.match(h[1], ':([%w_]+)$'), tonumber(string.match(h[2], ':(%d+)$'))
end
"""

# KEYS: job, events, pool, stats, this minute's completed counter. ARGV: channel, job id, end event, state,
# entry id, group, now, ttl, status, runner (the worker that ran it; '' for a job that never ran),
# day (UTC), prompt tokens, generated tokens, images. Only its current runner ends a running job. The job
# counts in the daily usage of the token that sent it; a count of -1 (unknown: a job stopped midway whose
# engine does not say what it made) counts what the job reserved of it.
_FINISH = (
    _keys("usage_key")
    + _TERMINAL
    + _RELEASE_HOLDS
    + """
local runner = redis.call('HGET', KEYS[1], 'worker')
if ARGV[10] ~= '' and runner and runner ~= ARGV[10] and not terminal(redis.call('HGET', KEYS[1], 'state')) then
  return 0
end
redis.call('XACK', KEYS[3], ARGV[6], ARGV[5])
redis.call('XDEL', KEYS[3], ARGV[5])
if terminal(redis.call('HGET', KEYS[1], 'state')) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'finished', ARGV[7], 'status', ARGV[9])
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
if ARGV[4] == 'completed' then
  redis.call('INCR', KEYS[5])
  redis.call('EXPIRE', KEYS[5], 90000)
end
local token = redis.call('HGET', KEYS[1], 'owner')
local held, amount = release_holds(KEYS[1])
if token and token ~= '' then
  local usage = usage_key(token, ARGV[11])
  redis.call('HINCRBY', usage, 'jobs', 1)
  if ARGV[4] ~= 'completed' then redis.call('HINCRBY', usage, 'jobs_' .. ARGV[4], 1) end
  local fields = {'prompt_tokens', 'completion_tokens', 'images'}
  for i = 1, 3 do
    local n = tonumber(ARGV[11 + i])
    if n < 0 then n = held == fields[i] and amount or 0 end
    if n > 0 then redis.call('HINCRBY', usage, fields[i], n) end
  end
  redis.call('EXPIRE', usage, """
    + str(keys.USAGE_KEEP_S)
    + """)
end
local id = redis.call('XADD', KEYS[2], '*', 'e', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[8])
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], ARGV[2] .. id .. ' ' .. ARGV[3]) end
return 1
"""
)

# A waiting job also leaves its queue stream (no worker is handed it).
# KEYS: job, cancel flag, events. ARGV: state for a job still waiting, ttl, now, cancel channel, job id, the
# end event of a job still waiting.
_CANCEL = (
    _keys("waiting_key", "stats_key")
    + _END_EVENT
    + _FORGET_WAITING
    + _RELEASE_HOLDS
    + """
forget_waiting()
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'pending' then  -- it ends here: its record, its event stream, its pool's counters and its client say so
  release_holds(KEYS[1])
  local status = string.sub(ARGV[6], #END_EVENT + 1, #END_EVENT + 3)
  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finished', ARGV[3], 'status', status)
  local at = redis.call('HMGET', KEYS[1], 'queue', 'entry')  -- and no worker is handed it
  if at[1] and at[2] then redis.call('XDEL', at[1], at[2]) end
  local pool = redis.call('HMGET', KEYS[1], 'kind', 'model')
  redis.call('HINCRBY', stats_key(pool[1], pool[2]), ARGV[1], 1)
  local id = redis.call('XADD', KEYS[3], '*', 'e', ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
  local reply = redis.call('HGET', KEYS[1], 'reply')
  if reply and reply ~= '' then redis.call('PUBLISH', reply, ARGV[5] .. id .. ' ' .. ARGV[6]) end
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return st
"""
)

# KEYS: pool, its counters. ARGV: cutoff entry id, now, ttl, max entries, group, the expired jobs' end event.
# Jobs that waited in the pool past their deadline (entries up to the cutoff that no worker holds) expire:
# their client hears a 504 and the entry leaves the queue.
_EXPIRE_WAITING = (
    _keys("job_key", "events_key", "waiting_key")
    + _TERMINAL
    + _RELEASE_HOLDS
    + """
local expired = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', ARGV[1], 'COUNT', ARGV[4])) do
  local ok, held = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[5], entry[1], entry[1], 1)
  if not ok or #held == 0 then
    local f = {}
    for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
    local job, events = job_key(f['id']), events_key(f['id'])
    local owner = redis.call('HGET', job, 'owner')
    if owner and owner ~= '' then redis.call('ZREM', waiting_key(owner), f['id']) end
    if not terminal(redis.call('HGET', job, 'state')) then
      release_holds(job)
      redis.call('HINCRBY', KEYS[2], 'expired', 1)
      redis.call('HSET', job, 'state', 'expired', 'finished', ARGV[2], 'status', '504')
      redis.call('EXPIRE', job, ARGV[3])
      local ev = ARGV[6]
      local id = redis.call('XADD', events, '*', 'e', ev)
      redis.call('EXPIRE', events, ARGV[3])
      if f['rt'] and f['rt'] ~= '' then redis.call('PUBLISH', f['rt'], f['id'] .. id .. ' ' .. ev) end
    end
    redis.call('XDEL', KEYS[1], entry[1])
    expired = expired + 1
  end
end
return expired
"""
)

# KEYS: a worker's direct lane, the worker's heartbeat record, the pool, the set of lanes. When the worker is
# gone, every job of its lane (waiting, or started and never finished) moves to the end of the pool, where
# any worker takes it. Returns how many moved, or -1 while the worker lives.
_RESCUE_LANE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
for _, entry in ipairs(entries) do redis.call('XADD', KEYS[3], '*', unpack(entry[2])) end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[4], KEYS[1])
return #entries
"""

# KEYS: the token's record (managed tokens), its requests of the last 60 s (a sliding window: no burst across
# a window boundary), its in-flight set.
# ARGV: managed (1/0), default requests per minute, default concurrency (0: no limit), now, the admission's
# ticket (unique), oldest start an in-flight request may have, in-flight set ttl, counted (1: uses up the
# per-minute allowance and takes a place in flight; 0: a status poll, which does neither).
# Returns {verdict, rpm limit, remaining, concurrency limit, reset, record...}: verdict 0 admitted, 1 unknown
# token, 2 revoked, 3 expired, 4 over the requests per minute, 5 over the concurrent requests; reset: seconds
# until enough requests leave the window for one more to be allowed. The window runs on Redis's clock (TIME),
# so replicas whose clocks differ still share one window.
_ADMIT = """
local rpm, conc, now, record = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), {}
if ARGV[1] == '1' then
  record = redis.call('HGETALL', KEYS[1])
  if #record == 0 then return {1, 0, 0, 0, 0} end
  local r = {}
  for i = 1, #record, 2 do r[record[i]] = record[i + 1] end
  if r['revoked'] == '1' then return {2, 0, 0, 0, 0} end
  local expires = tonumber(r['expires'] or '0')
  if expires > 0 and expires <= now then return {3, 0, 0, 0, 0} end
  if tonumber(r['rpm'] or '0') > 0 then rpm = tonumber(r['rpm']) end
  if tonumber(r['concurrency'] or '0') > 0 then conc = tonumber(r['concurrency']) end
end
local used, reset, clock = 0, 0, 0
if rpm > 0 then
  local t = redis.call('TIME')  -- one clock for every replica: Redis's
  clock = tonumber(t[1]) + tonumber(t[2]) / 1000000
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', clock - 60)
  used = redis.call('ZCARD', KEYS[2])
  local leaving = redis.call('ZRANGE', KEYS[2], math.max(used - rpm, 0), math.max(used - rpm, 0), 'WITHSCORES')
  reset = leaving[2] and math.ceil(tonumber(leaving[2]) + 60 - clock) or 60
  if ARGV[8] == '1' and used >= rpm then return {4, rpm, 0, conc, reset, unpack(record)} end
end
if conc > 0 and ARGV[8] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
  if redis.call('ZCARD', KEYS[3]) >= conc then return {5, rpm, rpm - used, conc, reset, unpack(record)} end
  redis.call('ZADD', KEYS[3], now, ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[7])
end
if rpm > 0 and ARGV[8] == '1' then
  redis.call('ZADD', KEYS[2], clock, ARGV[5])
  redis.call('EXPIRE', KEYS[2], 61)
  used = used + 1
end
return {0, rpm, rpm - used, conc, reset, unpack(record)}
"""

# KEYS: the pool of each entry a worker holds. ARGV: group, worker id, the entry ids (one per key). Keeps the
# entries the worker still owns from looking abandoned (XCLAIM JUSTID resets their idle time without counting a
# delivery) and returns the positions (1-based) of those another worker took over meanwhile: this one was
# presumed dead, and must stop running them.
_HOLD = """
local lost = {}
for i, pool in ipairs(KEYS) do
  local held = redis.call('XPENDING', pool, ARGV[1], ARGV[i + 2], ARGV[i + 2], 1)[1]
  if held and held[2] ~= ARGV[2] then lost[#lost + 1] = i
  elseif held then redis.call('XCLAIM', pool, ARGV[1], ARGV[2], 0, ARGV[i + 2], 'JUSTID') end
end
return lost
"""

# KEYS: the registry of workers. ARGV: oldest heartbeat (unix time) of a worker to look at.
# Returns worker id, subscribers of its presence channel, ... for each worker that beat since then.
_PRESENCE = (
    _keys("alive_key")
    + """
local found = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  found[#found + 1] = id
  found[#found + 1] = redis.call('PUBSUB', 'NUMSUB', alive_key(id))[2]
end
return found
"""
)

# KEYS: the pools of a dead worker, its heartbeat record, the registry of workers. ARGV: group, worker id, its
# presence channel, the takeover channel. Unless the worker is present after all (returns -1), it leaves the
# registry (the jobs of its direct lanes can move to their pools) and the entries it held are marked idle since
# 1970 (XCLAIM TIME 0 JUSTID: same owner, same delivery count), so that the next reclaim of any live worker
# takes them over; live workers are told to reclaim now. Returns how many entries were handed back.
_ORPHAN = """
if redis.call('PUBSUB', 'NUMSUB', ARGV[3])[2] > 0 then return -1 end
local n = 0
for i = 1, #KEYS - 2 do
  local ok, held = pcall(redis.call, 'XPENDING', KEYS[i], ARGV[1], '-', '+', 10000, ARGV[2])
  if ok then
    for _, entry in ipairs(held) do
      redis.call('XCLAIM', KEYS[i], ARGV[1], ARGV[2], 0, entry[1], 'TIME', 0, 'JUSTID')
      n = n + 1
    end
  end
end
redis.call('DEL', KEYS[#KEYS - 1])
redis.call('ZREM', KEYS[#KEYS], ARGV[2])
if n > 0 then redis.call('PUBLISH', ARGV[4], ARGV[2]) end
return n
"""

# KEYS: the token's usage of today, its reservations of `field`. ARGV: field (completion_tokens, images), the
# daily limit, amount wanted, unit (0: exactly the amount wanted; else as much of it as is left, in whole
# units, at least one unit), now, the time the reservation lapses, job id, ttl of the reservations' set.
# Reservations of jobs that ended without releasing theirs (their record lost) lapse. Returns {granted (0:
# refused), used today, reserved by other jobs}.
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
local held = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  held = held + tonumber(string.match(member, ':(%d+)$'))
end
local used = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local left = tonumber(ARGV[2]) - used - held
local want, unit = tonumber(ARGV[3]), tonumber(ARGV[4])
local grant = want
if unit > 0 then grant = math.min(want, left - left % unit) end
if grant > left or grant <= 0 then return {0, used, held} end
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[7] .. ':' .. grant)
redis.call('EXPIRE', KEYS[2], ARGV[8])
return {grant, used, held}
"""

# A session's turn: append the messages, keep the last ARGV[2] and at most ARGV[3] bytes of them, then keep the
# token's sessions within ARGV[4] bytes by forgetting its least recently used ones (never the current one).
# KEYS: the session's list, its worker key, the token's sessions (zset) and their sizes (hash). ARGV: ttl, max
# messages, max session bytes, max token bytes, now, session id, worker ('' none), the token's fingerprint,
# then the messages. Returns the sessions forgotten.
_SESSION_APPEND = (
    _keys("session_key", "session_worker_key")
    + """
local ttl = tonumber(ARGV[1])
redis.call('RPUSH', KEYS[1], unpack(ARGV, 9))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
local size = 0
for _, message in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do size = size + #message end
while size > tonumber(ARGV[3]) and redis.call('LLEN', KEYS[1]) > 1 do
  size = size - #redis.call('LPOP', KEYS[1])
end
redis.call('EXPIRE', KEYS[1], ttl)
if ARGV[7] ~= '' then redis.call('SET', KEYS[2], ARGV[7], 'EX', ttl) end
local expired = '(' .. string.format('%.3f', tonumber(ARGV[5]) - ttl)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', expired)) do redis.call('HDEL', KEYS[4], gone) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', expired)
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
redis.call('HSET', KEYS[4], ARGV[6], size)
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('EXPIRE', KEYS[4], ttl)
local used = 0
for _, bytes in ipairs(redis.call('HVALS', KEYS[4])) do used = used + tonumber(bytes) end
local forgotten = 0
while used > tonumber(ARGV[4]) do
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if not oldest or oldest == ARGV[6] then break end
  used = used - tonumber(redis.call('HGET', KEYS[4], oldest) or 0)
  redis.call('DEL', session_key(ARGV[8], oldest), session_worker_key(ARGV[8], oldest))
  redis.call('ZREM', KEYS[3], oldest)
  redis.call('HDEL', KEYS[4], oldest)
  forgotten = forgotten + 1
end
return forgotten
"""
)


class Refused(IntEnum):
    """Why ENQUEUE did not queue a job."""

    POOL_FULL = -1
    OWNER_FULL = -2


class Started(IntEnum):
    """START's verdict."""

    CANCELLED = 0  # cancelled while waiting, or already ended
    STARTED = 1


class Finished(IntEnum):
    """FINISH's verdict."""

    LEFT = 0  # it had ended already, or another worker runs it now
    RECORDED = 1


class Present(IntEnum):
    """RESCUE_LANE's and ORPHAN's answer where the worker turns out to be alive."""

    PRESENT = -1


class Admission(IntEnum):
    """ADMIT's verdict."""

    ADMITTED = 0
    UNKNOWN = 1
    REVOKED = 2
    EXPIRED = 3
    OVER_RPM = 4
    OVER_CONCURRENCY = 5


@dataclass(frozen=True)
class Admitted:
    """ADMIT's reply: the verdict, the limits that applied and the token's record (field, value, ...)."""

    verdict: Admission
    rpm: int
    remaining: int
    concurrency: int
    reset: int
    record: list[bytes]


def _admitted(raw: Any) -> Admitted:
    return Admitted(Admission(int(raw[0])), int(raw[1]), int(raw[2]), int(raw[3]), int(raw[4]), raw[5:])


def _count_or_present(raw: Any) -> int:
    return Present.PRESENT if int(raw) == Present.PRESENT else int(raw)


ENQUEUE: Script[bytes | tuple[Refused, int]] = Script(
    _ENQUEUE,
    ("job", "stream", "waiting", "*registry"),
    ("ttl", "pool_limit", "owner_limit", "now", "oldest", "n", "*record", "*fields"),
    lambda raw: (Refused(raw[0]), int(raw[1])) if isinstance(raw, list) else raw,
)
START: Script[Started] = Script(
    _START,
    ("job", "events", "cancel_flag"),
    ("channel", "job_id", "worker", "now", "ttl"),
    lambda raw: Started(int(raw)),
)
EMIT: Script[int] = Script(_EMIT, ("events", "job"), ("channel", "job_id", "worker", "*payloads"), int)
FINISH: Script[Finished] = Script(
    _FINISH,
    ("job", "events", "pool", "stats", "minute"),
    (
        "channel",
        "job_id",
        "end_event",
        "state",
        "entry",
        "group",
        "now",
        "ttl",
        "status",
        "runner",
        "day",
        "prompt_tokens",
        "completion_tokens",
        "images",
    ),
    lambda raw: Finished(int(raw)),
)
CANCEL: Script[bytes | str | None] = Script(
    _CANCEL,
    ("job", "cancel_flag", "events"),
    ("state", "ttl", "now", "channel", "job_id", "end_event"),
    lambda raw: raw,
)
EXPIRE_WAITING: Script[int] = Script(
    _EXPIRE_WAITING, ("pool", "stats"), ("cutoff", "now", "ttl", "batch", "group", "end_event"), int
)
RESCUE_LANE: Script[int] = Script(_RESCUE_LANE, ("lane", "heartbeat", "pool", "lanes"), (), _count_or_present)
ADMIT: Script[Admitted] = Script(
    _ADMIT,
    ("token", "recent", "in_flight"),
    ("managed", "rpm", "concurrency", "now", "ticket", "oldest", "ttl", "counted"),
    _admitted,
)
HOLD: Script[list[int]] = Script(_HOLD, ("*pools",), ("group", "worker", "*entries"), lambda raw: [int(i) for i in raw])
PRESENCE: Script[list[Any]] = Script(_PRESENCE, ("workers",), ("oldest",), list)
ORPHAN: Script[int] = Script(
    _ORPHAN, ("*pools", "heartbeat", "workers"), ("group", "worker", "alive", "takeover"), _count_or_present
)
RESERVE: Script[tuple[int, int, int]] = Script(
    _RESERVE,
    ("usage", "reserved"),
    ("field", "limit", "want", "unit", "now", "lapses", "job_id", "ttl"),
    lambda raw: (int(raw[0]), int(raw[1]), int(raw[2])),
)
SESSION_APPEND: Script[int] = Script(
    _SESSION_APPEND,
    ("session", "worker", "sessions", "sizes"),
    (
        "ttl",
        "max_messages",
        "max_bytes",
        "max_token_bytes",
        "now",
        "sid",
        "runner",
        "owner",
        "*messages",
    ),
    int,
)

SOURCES = tuple(
    s.source
    for s in (
        ENQUEUE,
        START,
        EMIT,
        FINISH,
        CANCEL,
        EXPIRE_WAITING,
        RESCUE_LANE,
        ADMIT,
        HOLD,
        PRESENCE,
        ORPHAN,
        RESERVE,
        SESSION_APPEND,
    )
)  # preloaded by each connection
