#!lua name=mqfs
-- The server side of the Redis store (SPEC section 10): every change to a
-- queue's messages that mounts on several hosts must agree on is made here,
-- in one function call, so that Redis alone decides who gets a message and
-- whether a queue is full.
--
-- Keys. A filesystem's keys start with its prefix P (redis_prefix); a queue's
-- with its base B = P:q:INODE. Every function takes B (or none) as KEYS[1]
-- and P as KEYS[2].
--
--   B:meta      hash: maxmsg, sent, received, dead_lettered; its absence
--               means the queue was removed (EIDRM for the callers)
--   B:msg       hash: order key -> type key .. enqueued_ns (16 hex) .. bytes
--   B:ready     the queued messages' order keys, in queue order
--   B:t:TYPE    the same, of one type
--   B:types     the types queued, lowest first
--   B:fronts    each type's first order key followed by its type key, so
--               the first member is the queue's front and the first two hold
--               the front of "any type but t"
--   B:held      hash: order key -> mount: taken by a reader of that mount,
--               until its reply is accepted (ack) or it comes back (release)
--   B:delayed   order keys returned with a retry delay, by when they are due
--   B:dlv       hash: order key -> how many times it was taken
--   P:next_id   the last message id given
--   P:names     hash: inode -> the node: 'd' or 'q', then the mount's
--               encoding of its name, parent, owner, mode and settings
--   P:version   the names' version: each change of P:names adds one
--   P:next_ino  the last inode given to a mount (blocks of them)
--   P:mounts    the live mounts, by when their lease ends (ms, Redis's clock)
--   P:mount:M   the B|orderkey of every message mount M holds
--   P:subs:M    the B|S of every descriptor's subscription S (SPEC section
--               13) of mount M to topic B
--   B:subs      a topic's descriptors' subscriptions: queues of their own,
--               P:d:M:N, each read by one open file of mount M
--
-- Order key: 4 hex digits of 32767 - priority, then 14 of the id: the sorted
-- sets keep them at score 0, so Redis orders them as strings — highest
-- priority first, then oldest. Type key: 16 hex digits of the type (>= 1).
-- Sorted sets here are all at score 0 but B:delayed and P:mounts.
--
-- Every change is published on P:events, one message per change, for the
-- mounts' copies of the queues:
--   "s B ORDERKEY VALUE"   queued (back from a reader, published, ...)
--   "S B [ORDERKEY LENGTH VALUE]..." queued by one mqfs_send (LENGTH: 8 hex
--                          digits of VALUE's length)
--   "t B ORDERKEY..."      taken by a reader
--   "a B COUNT"            acknowledged: room was made in a queue that was full
--   "p B" / "x B" / "c B"  purged / removed / its settings changed
--   "n VERSION"            the names changed (mqfs_names)
--   "r B MOUNT TOKEN"      a copy of B for MOUNT was read here (mqfs_snapshot)

local HEADER = 32  -- type key and enqueued_ns before a message's bytes

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function order_key(priority, id)
  return string.format('%04x%014x', 32767 - priority, id)
end

local function type_front(B, tk)
  return redis.call('ZRANGE', B .. ':t:' .. tk, 0, 0)[1]
end

-- Type tk's first message changed from `old` (nil: it had none) to `new`
-- (nil: it has none).
local function refront(B, tk, old, new)
  if new == old then return end
  if old then redis.call('ZREM', B .. ':fronts', old .. tk) end
  if new then
    redis.call('ZADD', B .. ':fronts', 0, new .. tk)
    if not old then redis.call('ZADD', B .. ':types', 0, tk) end
  else
    redis.call('ZREM', B .. ':types', tk)
  end
end

local function make_ready(B, P, ok, value, batch)
  local tk = string.sub(value, 1, 16)
  local old = type_front(B, tk)
  redis.call('ZADD', B .. ':ready', 0, ok)
  redis.call('ZADD', B .. ':t:' .. tk, 0, ok)
  refront(B, tk, old, (old and old < ok) and old or ok)
  if batch then
    batch[#batch + 1] = {ok, value}
  else
    redis.call('PUBLISH', P .. ':events', 's ' .. B .. ' ' .. ok .. ' ' .. value)
  end
end

-- `ok`, the first of type tk (every selection takes a type's first), leaves
-- the queued messages.
local function unready(B, ok, tk)
  redis.call('ZREM', B .. ':ready', ok)
  redis.call('ZREM', B .. ':t:' .. tk, ok)
  refront(B, tk, ok, type_front(B, tk))
end

local function count(B)
  return redis.call('ZCARD', B .. ':ready') + redis.call('HLEN', B .. ':held') + redis.call('ZCARD', B .. ':delayed')
end

-- Messages whose retry delay ended are queued again.
local function promote(B, P)
  if redis.call('EXISTS', B .. ':delayed') == 0 then return end
  local due = redis.call('ZRANGEBYSCORE', B .. ':delayed', '-inf', now_ms())
  for _, ok in ipairs(due) do
    redis.call('ZREM', B .. ':delayed', ok)
    local value = redis.call('HGET', B .. ':msg', ok)
    if value then make_ready(B, P, ok, value) end
  end
end

-- The front order key and type key of a selection: 'any', 'type' (only tk),
-- 'except' (any but tk), 'upto' (the lowest type, if <= tk).
local function front(B, kind, tk)
  if kind == 'type' then
    local ok = type_front(B, tk)
    return ok, tk
  end
  if kind == 'upto' then
    local lowest = redis.call('ZRANGE', B .. ':types', 0, 0)[1]
    if not lowest or lowest > tk then return nil end
    return type_front(B, lowest), lowest
  end
  local fronts = redis.call('ZRANGE', B .. ':fronts', 0, 1)
  for _, f in ipairs(fronts) do
    local ftk = string.sub(f, 19)
    if kind == 'any' or ftk ~= tk then return string.sub(f, 1, 18), ftk end
  end
  return nil
end

-- Back to the queue, unless held by another mount meanwhile; true if it was
-- `mount`'s.
local function give_back(B, P, mount, ok, delay_ms)
  redis.call('SREM', P .. ':mount:' .. mount, B .. '|' .. ok)
  if redis.call('HGET', B .. ':held', ok) ~= mount then return false end
  redis.call('HDEL', B .. ':held', ok)
  if delay_ms > 0 then
    redis.call('ZADD', B .. ':delayed', now_ms() + delay_ms, ok)
  else
    make_ready(B, P, ok, redis.call('HGET', B .. ':msg', ok))
  end
  return true
end

-- A queue and all its messages, queued, held or delayed, are gone (its
-- name was removed); the mounts holding some find out when they settle them.
local function drop_queue(B, P)
  for _, S in ipairs(redis.call('SMEMBERS', B .. ':subs')) do drop_queue(S, P) end  -- a topic's
  for _, tk in ipairs(redis.call('ZRANGE', B .. ':types', 0, -1)) do redis.call('DEL', B .. ':t:' .. tk) end
  redis.call('DEL', B .. ':meta', B .. ':msg', B .. ':ready', B .. ':types', B .. ':fronts', B .. ':held',
             B .. ':delayed', B .. ':dlv', B .. ':subs')
  redis.call('PUBLISH', P .. ':events', 'x ' .. B)
end

-- mqfs_send B P N [PRIORITY TYPEKEY ENQUEUED_NS BYTES]*N: queues the
-- messages in order while the queue (all hosts' messages, those held and
-- delayed among them) has fewer than maxmsg. Returns {status, orderkey...}:
-- 'ok' when all were queued, 'full' when only those listed were, 'gone'
-- when the queue was removed.
local function send(keys, args)
  local B, P = keys[1], keys[2]
  local maxmsg = tonumber(redis.call('HGET', B .. ':meta', 'maxmsg'))
  if not maxmsg then return {'gone'} end
  local n = tonumber(args[1])
  local have = count(B)
  local result = {'ok'}
  local batch = {}  -- one event for all
  for i = 0, n - 1 do
    if have >= maxmsg then
      result[1] = 'full'
      break
    end
    local priority, tk, ns, bytes = tonumber(args[2 + 4 * i]), args[3 + 4 * i], args[4 + 4 * i], args[5 + 4 * i]
    local ok = order_key(priority, redis.call('INCR', P .. ':next_id'))
    local value = tk .. ns .. bytes
    redis.call('HSET', B .. ':msg', ok, value)
    make_ready(B, P, ok, value, batch)
    have = have + 1
    result[#result + 1] = ok
  end
  if #result > 1 then redis.call('HINCRBY', B .. ':meta', 'sent', #result - 1) end
  if #batch == 1 then
    redis.call('PUBLISH', P .. ':events', 's ' .. B .. ' ' .. batch[1][1] .. ' ' .. batch[1][2])
  elseif #batch > 1 then
    local parts = {}
    for i, m in ipairs(batch) do parts[i] = m[1] .. string.format('%08x', #m[2]) .. m[2] end
    redis.call('PUBLISH', P .. ':events', 'S ' .. B .. ' ' .. table.concat(parts))
  end
  return result
end

-- mqfs_take B P MOUNT KIND TYPEKEY MOST LIMIT HEADER: takes up to MOST
-- messages of the selection (KIND, TYPEKEY: see front()) for a reader of
-- MOUNT, in queue order, while their bytes, each after HEADER bytes of
-- framing, fit in LIMIT (0: one message, whatever its size). They stay held
-- by MOUNT until acknowledged or given back. Returns {'ok', orderkey, value,
-- deliveries, ...}, {'empty'}, {'big', size} (the first does not fit) or
-- {'gone'}, or {'expired'} when MOUNT has no lease (mqfs_heartbeat).
local function take(keys, args)
  local B, P = keys[1], keys[2]
  if redis.call('EXISTS', B .. ':meta') == 0 then return {'gone'} end
  local mount, kind, tk = args[1], args[2], args[3]
  local most, limit, header = tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
  local lease = redis.call('ZSCORE', P .. ':mounts', mount)
  if not lease or tonumber(lease) < now_ms() then return {'expired'} end
  promote(B, P)
  local result = {'ok'}
  local taken, bytes = 0, 0
  while taken < most do
    local ok, otk = front(B, kind, tk)
    if not ok then break end
    local value = redis.call('HGET', B .. ':msg', ok)
    local size = #value - HEADER
    if limit > 0 and bytes + header + size > limit then
      if taken == 0 then return {'big', size} end
      break
    end
    unready(B, ok, otk)
    redis.call('HSET', B .. ':held', ok, mount)
    redis.call('SADD', P .. ':mount:' .. mount, B .. '|' .. ok)
    local deliveries = redis.call('HINCRBY', B .. ':dlv', ok, 1)
    result[#result + 1] = ok
    result[#result + 1] = value
    result[#result + 1] = deliveries
    taken = taken + 1
    bytes = bytes + header + size
    if limit == 0 then break end
  end
  if taken == 0 then return {'empty'} end
  local event = {'t', B}
  for i = 2, #result, 3 do event[#event + 1] = result[i] end
  redis.call('PUBLISH', P .. ':events', table.concat(event, ' '))
  return result
end

-- mqfs_ack B P MOUNT ORDERKEY...: the messages MOUNT holds are taken for
-- good. Returns one 1 (done) or 0 (MOUNT no longer holds it) per key.
local function ack(keys, args)
  local B, P = keys[1], keys[2]
  local mount = args[1]
  local result, done = {}, 0
  for i = 2, #args do
    local ok = args[i]
    -- Its entry in the mount's list goes either way (the queue may be gone).
    redis.call('SREM', P .. ':mount:' .. mount, B .. '|' .. ok)
    if redis.call('HGET', B .. ':held', ok) == mount then
      redis.call('HDEL', B .. ':held', ok)
      redis.call('HDEL', B .. ':msg', ok)
      redis.call('HDEL', B .. ':dlv', ok)
      done = done + 1
      result[#result + 1] = 1
    else
      result[#result + 1] = 0
    end
  end
  if done > 0 then
    redis.call('HINCRBY', B .. ':meta', 'received', done)
    -- Only room that a full queue's writers wait for is announced: the
    -- queue held maxmsg messages or more before these acknowledgements.
    local maxmsg = tonumber(redis.call('HGET', B .. ':meta', 'maxmsg'))
    if maxmsg and count(B) + done >= maxmsg then
      redis.call('PUBLISH', P .. ':events', 'a ' .. B .. ' ' .. done)
    end
  end
  return result
end

-- mqfs_release B P MOUNT DELAY_MS ORDERKEY...: the messages MOUNT holds go
-- back to their places (after DELAY_MS, if > 0). DELAY_MS -1: they reached
-- no reader, and go back as if never taken (their deliveries one lower).
-- Returns 1 or 0 per key, as mqfs_ack.
local function release(keys, args)
  local B, P = keys[1], keys[2]
  local mount, delay_ms = args[1], tonumber(args[2])
  local result = {}
  for i = 3, #args do
    local returned = give_back(B, P, mount, args[i], math.max(delay_ms, 0))
    if returned and delay_ms < 0 then redis.call('HINCRBY', B .. ':dlv', args[i], -1) end
    result[#result + 1] = returned and 1 or 0
  end
  return result
end

-- mqfs_withdraw B P ORDERKEY: a message whose writer never learnt that it
-- was queued leaves the queue, if no reader took it yet. Returns 1 if it did.
local function withdraw(keys, args)
  local B, P = keys[1], keys[2]
  local ok = args[1]
  if redis.call('ZSCORE', B .. ':ready', ok) == false then return 0 end
  local value = redis.call('HGET', B .. ':msg', ok)
  unready(B, ok, string.sub(value, 1, 16))
  redis.call('HDEL', B .. ':msg', ok)
  redis.call('HDEL', B .. ':dlv', ok)
  redis.call('HINCRBY', B .. ':meta', 'sent', -1)
  redis.call('PUBLISH', P .. ':events', 't ' .. B .. ' ' .. ok)
  redis.call('PUBLISH', P .. ':events', 'a ' .. B .. ' 0')
  return 1
end

-- mqfs_dead_letter FROM P TO MOUNT ORDERKEY: a message MOUNT holds moves to
-- the end of queue TO (KEYS[3]), past its maxmsg, with a new id and no
-- deliveries. Returns its new order key, 'lost' (MOUNT no longer holds it) or
-- 'gone' (TO was removed: it stays held).
local function dead_letter(keys, args)
  local B, P, TO = keys[1], keys[2], keys[3]
  local mount, ok = args[1], args[2]
  if redis.call('HGET', B .. ':held', ok) ~= mount then return 'lost' end
  if redis.call('EXISTS', TO .. ':meta') == 0 then return 'gone' end
  local value = redis.call('HGET', B .. ':msg', ok)
  redis.call('HDEL', B .. ':held', ok)
  redis.call('HDEL', B .. ':msg', ok)
  redis.call('HDEL', B .. ':dlv', ok)
  redis.call('SREM', P .. ':mount:' .. mount, B .. '|' .. ok)
  redis.call('HINCRBY', B .. ':meta', 'dead_lettered', 1)
  redis.call('PUBLISH', P .. ':events', 'a ' .. B .. ' 1')
  local priority = 32767 - tonumber(string.sub(ok, 1, 4), 16)
  local new = order_key(priority, redis.call('INCR', P .. ':next_id'))
  redis.call('HSET', TO .. ':msg', new, value)
  redis.call('HINCRBY', TO .. ':meta', 'sent', 1)
  make_ready(TO, P, new, value)
  return new
end

-- SPEC section 13. A descriptor's subscription S to topic B ends: its queue
-- and what it holds go.
local function unsubscribe_queue(B, P, S)
  redis.call('SREM', B .. ':subs', S)
  drop_queue(S, P)
end

-- mqfs_subscribe B P S MOUNT MAXMSG: an open file of MOUNT subscribes to
-- topic B with a queue of its own, S, that holds at most MAXMSG messages.
-- 'ok', or 'gone' when B was removed.
local function subscribe(keys, args)
  local B, P = keys[1], keys[2]
  local S, mount, maxmsg = args[1], args[2], args[3]
  if redis.call('EXISTS', B .. ':meta') == 0 then return 'gone' end
  redis.call('HSET', S .. ':meta', 'maxmsg', maxmsg, 'sent', 0, 'received', 0, 'dead_lettered', 0)
  redis.call('SADD', B .. ':subs', S)
  redis.call('SADD', P .. ':subs:' .. mount, B .. '|' .. S)
  redis.call('PUBLISH', P .. ':events', 'c ' .. B)
  return 'ok'
end

-- mqfs_unsubscribe B P S MOUNT: the open file closed.
local function unsubscribe(keys, args)
  local B, P = keys[1], keys[2]
  local S, mount = args[1], args[2]
  redis.call('SREM', P .. ':subs:' .. mount, B .. '|' .. S)
  unsubscribe_queue(B, P, S)
  redis.call('PUBLISH', P .. ':events', 'c ' .. B)
  return 'ok'
end

-- mqfs_publish B P VERSION OVERFLOW N [QUEUE_INODE]*N M [PRIORITY TYPEKEY
-- ENQUEUED_NS BYTES]*M: publishes M messages to topic B: a copy of each to
-- every subscription of its descriptors, and to the N queues that subscribe
-- to it (user.mq.subscribe), as the mount found them in the names at
-- VERSION. OVERFLOW 'block': nothing is published unless every subscriber
-- has room for all M ('full'); 'drop': a full subscriber misses what does
-- not fit, counted in its dropped. With no subscriber at all the messages
-- are dropped, counted in the topic's. Returns {'ok', copies made},
-- {'full'}, {'conflict', version} (the names changed: the mount finds the
-- subscribers again) or {'gone'}.
local function publish(keys, args)
  local B, P = keys[1], keys[2]
  if redis.call('EXISTS', B .. ':meta') == 0 then return {'gone'} end
  local version = tonumber(redis.call('GET', P .. ':version') or 0)
  if tonumber(args[1]) ~= version then return {'conflict', version} end
  local overflow, n = args[2], tonumber(args[3])
  local subscribers = redis.call('SMEMBERS', B .. ':subs')
  for i = 1, n do subscribers[#subscribers + 1] = P .. ':q:' .. args[3 + i] end
  local at = 4 + n
  local m = tonumber(args[at])
  local room = {}
  for i, S in ipairs(subscribers) do
    local maxmsg = tonumber(redis.call('HGET', S .. ':meta', 'maxmsg'))
    room[i] = maxmsg and math.max(0, maxmsg - count(S)) or 0
    if maxmsg and overflow == 'block' and room[i] < m then return {'full'} end
  end
  redis.call('HINCRBY', B .. ':meta', 'sent', m)
  if #subscribers == 0 then
    redis.call('HINCRBY', B .. ':meta', 'dropped', m)
    return {'ok', 0}
  end
  local copies = 0
  for j = 0, m - 1 do
    local priority, tk, ns, bytes = tonumber(args[at + 1 + 4 * j]), args[at + 2 + 4 * j], args[at + 3 + 4 * j],
                                    args[at + 4 + 4 * j]
    local ok = order_key(priority, redis.call('INCR', P .. ':next_id'))
    local value = tk .. ns .. bytes
    for i, S in ipairs(subscribers) do
      if room[i] > 0 then
        room[i] = room[i] - 1
        redis.call('HSET', S .. ':msg', ok, value)
        redis.call('HINCRBY', S .. ':meta', 'sent', 1)
        make_ready(S, P, ok, value)
        copies = copies + 1
      elseif redis.call('EXISTS', S .. ':meta') == 1 then
        redis.call('HINCRBY', S .. ':meta', 'dropped', 1)
      end
    end
  end
  return {'ok', copies}
end

-- mqfs_heartbeat - P MOUNT LEASE_MS [MOST]: MOUNT is alive for LEASE_MS
-- more; the messages of mounts whose lease ended go back to their places,
-- at most MOST (default 1000) in this call, so that a dead mount that held
-- many does not hold Redis up: the next heartbeats give back the rest. A
-- dead mount is forgotten, its subscriptions with it, once it holds none.
-- Returns how many went back.
local function heartbeat(keys, args)
  local P = keys[2]
  local mount, lease_ms = args[1], tonumber(args[2])
  local most = tonumber(args[3] or 1000)
  local now = now_ms()
  local returned = 0
  for _, dead in ipairs(redis.call('ZRANGEBYSCORE', P .. ':mounts', '-inf', '(' .. now)) do
    if dead ~= mount and most > 0 then
      local entries = redis.call('SPOP', P .. ':mount:' .. dead, most)
      most = most - #entries
      for _, entry in ipairs(entries) do
        local bar = string.find(entry, '|', 1, true)
        local B, ok = string.sub(entry, 1, bar - 1), string.sub(entry, bar + 1)
        if give_back(B, P, dead, ok, 0) then returned = returned + 1 end
      end
      if redis.call('EXISTS', P .. ':mount:' .. dead) == 0 then
        for _, entry in ipairs(redis.call('SMEMBERS', P .. ':subs:' .. dead)) do
          local bar = string.find(entry, '|', 1, true)
          unsubscribe_queue(string.sub(entry, 1, bar - 1), P, string.sub(entry, bar + 1))
        end
        redis.call('DEL', P .. ':subs:' .. dead)
        redis.call('ZREM', P .. ':mounts', dead)
      end
    end
  end
  redis.call('ZADD', P .. ':mounts', now + lease_ms, mount)
  return returned
end

-- mqfs_purge B P: drops every queued message (truncate); held ones stay.
-- Returns how many were dropped.
local function purge(keys, args)
  local B, P = keys[1], keys[2]
  local dropped = redis.call('ZRANGE', B .. ':ready', 0, -1)
  for _, ok in ipairs(dropped) do
    redis.call('HDEL', B .. ':msg', ok)
    redis.call('HDEL', B .. ':dlv', ok)
  end
  for _, tk in ipairs(redis.call('ZRANGE', B .. ':types', 0, -1)) do redis.call('DEL', B .. ':t:' .. tk) end
  redis.call('DEL', B .. ':ready', B .. ':types', B .. ':fronts')
  if #dropped > 0 then redis.call('PUBLISH', P .. ':events', 'p ' .. B) end
  return #dropped
end

-- mqfs_snapshot B P MOUNT TOKEN: a mount's copy of the queue: {maxmsg, sent,
-- received, dead_lettered, dropped, then per message orderkey, value,
-- deliveries, holder ('' when queued, '-' when delayed)}, queued ones in
-- queue order; {} when removed. It publishes "r B MOUNT TOKEN" where it
-- stands among the events, so that the mount knows which events the copy
-- holds already (those before) and which it does not (those after).
local function snapshot(keys, args)
  local B, P = keys[1], keys[2]
  if args[1] then redis.call('PUBLISH', P .. ':events', 'r ' .. B .. ' ' .. args[1] .. ' ' .. args[2]) end
  local meta = redis.call('HMGET', B .. ':meta', 'maxmsg', 'sent', 'received', 'dead_lettered', 'dropped')
  if not meta[1] then return {} end
  local result = meta
  local function add(ok, holder)
    result[#result + 1] = ok
    result[#result + 1] = redis.call('HGET', B .. ':msg', ok)
    result[#result + 1] = tonumber(redis.call('HGET', B .. ':dlv', ok) or 0)
    result[#result + 1] = holder
  end
  for _, ok in ipairs(redis.call('ZRANGE', B .. ':ready', 0, -1)) do add(ok, '') end
  local held = redis.call('HGETALL', B .. ':held')
  for i = 1, #held, 2 do add(held[i], held[i + 1]) end
  for _, ok in ipairs(redis.call('ZRANGE', B .. ':delayed', 0, -1)) do add(ok, '-') end
  return result
end

-- mqfs_names - P VERSION [put INODE KIND MAXMSG NODE | del INODE]...: the
-- changes one request of a mount made to the names, applied together if
-- the names are still at VERSION (the mount checked them against that
-- version), none of them otherwise. A queue's node (KIND 'q') makes its
-- queue, or sets its maxmsg; deleting it drops the queue. Returns {'ok',
-- new version} or {'conflict', version}: the mount reads the names again
-- (mqfs_names_snapshot) and checks the request anew.
local function names(keys, args)
  local P = keys[2]
  local version = tonumber(redis.call('GET', P .. ':version') or 0)
  if tonumber(args[1]) ~= version then return {'conflict', version} end
  local i = 2
  while i <= #args do
    local op, ino = args[i], args[i + 1]
    local B = P .. ':q:' .. ino
    if op == 'put' then
      local kind, maxmsg, node = args[i + 2], args[i + 3], args[i + 4]
      redis.call('HSET', P .. ':names', ino, kind .. node)
      if kind == 'q' then
        if redis.call('EXISTS', B .. ':meta') == 0 then
          redis.call('HSET', B .. ':meta', 'maxmsg', maxmsg, 'sent', 0, 'received', 0, 'dead_lettered', 0)
        elseif redis.call('HGET', B .. ':meta', 'maxmsg') ~= maxmsg then
          redis.call('HSET', B .. ':meta', 'maxmsg', maxmsg)
          redis.call('PUBLISH', P .. ':events', 'c ' .. B)
        end
      end
      i = i + 5
    elseif op == 'del' then
      local old = redis.call('HGET', P .. ':names', ino)
      redis.call('HDEL', P .. ':names', ino)
      if old and string.sub(old, 1, 1) == 'q' then drop_queue(B, P) end
      i = i + 2
    else
      return redis.error_reply('mqfs_names: unknown change ' .. tostring(op))
    end
  end
  version = redis.call('INCR', P .. ':version')
  redis.call('PUBLISH', P .. ':events', 'n ' .. version)
  return {'ok', version}
end

-- mqfs_names_snapshot - P: {version, inode, KIND .. NODE, ...}.
local function names_snapshot(keys, args)
  local P = keys[2]
  local result = {tonumber(redis.call('GET', P .. ':version') or 0)}
  local all = redis.call('HGETALL', P .. ':names')
  for i = 1, #all do result[#result + 1] = all[i] end
  return result
end

-- mqfs_inodes - P COUNT: the first of COUNT inodes no mount has been given
-- (inode 1 is the root's).
local function inodes(keys, args)
  local P, count = keys[2], tonumber(args[1])
  redis.call('SETNX', P .. ':next_ino', 1)
  return redis.call('INCRBY', P .. ':next_ino', count) - count + 1
end

redis.register_function('mqfs_send', send)
redis.register_function('mqfs_take', take)
redis.register_function('mqfs_ack', ack)
redis.register_function('mqfs_release', release)
redis.register_function('mqfs_withdraw', withdraw)
redis.register_function('mqfs_dead_letter', dead_letter)
redis.register_function('mqfs_heartbeat', heartbeat)
redis.register_function('mqfs_purge', purge)
redis.register_function('mqfs_snapshot', snapshot)
redis.register_function('mqfs_subscribe', subscribe)
redis.register_function('mqfs_unsubscribe', unsubscribe)
redis.register_function('mqfs_publish', publish)
redis.register_function('mqfs_names', names)
redis.register_function{function_name = 'mqfs_names_snapshot', callback = names_snapshot, flags = {'no-writes'}}
redis.register_function('mqfs_inodes', inodes)
