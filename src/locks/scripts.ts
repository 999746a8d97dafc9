/**
 * Redis scripts of the lock scheduler. Each runs atomically, so the state below changes only
 * from one consistent state to the next.
 *
 * INVARIANTS
 * - Resources are the VM lock (`vm:<vm>`, limit 1), host slot pools (`host:`, `host-out:`,
 *   `host-in:<host>`) and the global cap (`global`). A resource never has more unexpired
 *   holders than the limit that the granted job's worker configured for it. Only dispatch adds
 *   holders, after counting live holders and reservations. Renewing and reclaiming only extend
 *   what the same job already holds.
 * - A job holds all the resources it needs or none of them. Dispatch grants a job's whole set
 *   in one step, and a job that finds any part of its set expired gives up the rest in the same
 *   script. So no job holds one resource while it waits for another, and A->B with B->A cannot
 *   deadlock.
 * - A job waits in the queue only while it holds nothing, and holds only while it is out of
 *   the queue.
 * - Every expiry is compared with Redis's own clock (TIME), never with a caller's clock, so
 *   bastions whose clocks are skewed cannot take live leases. Callers send durations only.
 * - Locks belong to the job id. Each run of a job sends a fresh token; `enter` stores it, so
 *   a job taken over by another worker reclaims its own locks at once, and from then on only
 *   the newest token can renew or release them.
 * - Queue order is the Redis time at which the job first entered the queue. Heartbeats,
 *   takeovers and being passed over do not change it, while the waiter's lease lives.
 * - Dispatch visits waiters oldest first and grants each one whose whole set fits. A waiter
 *   that does not fit and has waited past its ageing threshold reserves one unit of each
 *   resource it needs, which newer waiters then count as taken.
 * - Every script that can free capacity (release, renewal that finds a lease lost, enter)
 *   dispatches before it returns, so a freed slot goes to the next waiter in the same step.
 *   Capacity freed only by expiry is found by the next script that counts that resource,
 *   at the latest the next waiter heartbeat.
 * - The job record (`job:<id>`) outlives the job's holds and queue entry by one lease. Every
 *   read treats a missing record as "holds nothing, waits nowhere".
 *
 * Keys, all under `<prefix>:locks:`: `held:<resource>` (sorted set: job id -> lease expiry,
 * ms), `queue` (sorted set: job id -> time it started waiting, ms), `queue-lease` (sorted set:
 * job id -> waiter lease expiry, ms), `job:<id>` (hash: token, resources as JSON
 * [[name, limit], ...], lease, ageing, since, state, grantedAt, expiresAt, releasedBy,
 * releasedAt, blocked, reserving, startedAt, vm, source, target, bastion), `resources` (set of
 * resources that may have holders) and `events` (stream, about the last 10,000 events). Grants
 * are announced on the channel `<prefix>:locks:granted` with the job id as message.
 *
 * The scripts build key names from the prefix instead of receiving them in KEYS. Redis Cluster
 * accepts that only when all keys share one hash slot: give ferry a prefix in braces there.
 */

/** Definitions every script starts with. ARGV[1] is always the key prefix. */
const prelude = `
local base = ARGV[1] .. ':locks:'
local queueKey = base .. 'queue'
local queueLeaseKey = base .. 'queue-lease'
local resourcesKey = base .. 'resources'
local eventsKey = base .. 'events'
local grantedChannel = base .. 'granted'
local function heldKey(resource) return base .. 'held:' .. resource end
local function jobKey(jobId) return base .. 'job:' .. jobId end

-- Integers as strings: Lua numbers are doubles and would otherwise be sent in float notation.
local function int(value) return string.format('%d', value) end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function addEvent(kind, jobId, fields)
  local args = { eventsKey, 'MAXLEN', '~', '10000', '*', 'type', kind, 'job', jobId, 'at', int(now) }
  for i = 1, #fields do args[#args + 1] = fields[i] end
  redis.call('XADD', unpack(args))
end

-- Counts the unexpired holders of a resource, removing expired ones first.
local function liveHolderCount(resource)
  local key = heldKey(resource)
  local expired = redis.call('ZRANGEBYSCORE', key, '-inf', int(now))
  for _, jobId in ipairs(expired) do
    redis.call('ZREM', key, jobId)
    addEvent('expired', jobId, { 'resource', resource })
  end
  local count = redis.call('ZCARD', key)
  if count == 0 then redis.call('SREM', resourcesKey, resource) end
  return count
end

local function removeWaiter(jobId)
  redis.call('ZREM', queueKey, jobId)
  redis.call('ZREM', queueLeaseKey, jobId)
end

-- Drops waiters whose worker stopped refreshing their place (it died, or Redis was unreachable).
local function purgeStaleWaiters()
  local stale = redis.call('ZRANGEBYSCORE', queueLeaseKey, '-inf', int(now))
  for _, jobId in ipairs(stale) do
    removeWaiter(jobId)
    if redis.call('HGET', jobKey(jobId), 'state') == 'waiting' then redis.call('DEL', jobKey(jobId)) end
    addEvent('abandoned', jobId, {})
  end
end

-- Grants waiters oldest first; see the INVARIANTS. releasedBy names the job whose release
-- triggered this pass, or is empty. Returns the blocking resources of each waiter not granted.
local function dispatch(releasedBy)
  purgeStaleWaiters()
  local entries = redis.call('ZRANGE', queueKey, 0, -1, 'WITHSCORES')
  local used, reserved, blockedOf = {}, {}, {}
  for i = 1, #entries, 2 do
    local jobId, since = entries[i], tonumber(entries[i + 1])
    local key = jobKey(jobId)
    local record = redis.call('HMGET', key, 'resources', 'lease', 'ageing')
    if not record[1] then
      removeWaiter(jobId)
    else
      local needs = cjson.decode(record[1])
      local blocked = {}
      for _, need in ipairs(needs) do
        local resource = need[1]
        if used[resource] == nil then
          used[resource] = liveHolderCount(resource)
          reserved[resource] = 0
        end
        if used[resource] + reserved[resource] >= need[2] then blocked[#blocked + 1] = resource end
      end
      if #blocked == 0 then
        local lease = tonumber(record[2])
        local expiresAt = now + lease
        for _, need in ipairs(needs) do
          redis.call('ZADD', heldKey(need[1]), int(expiresAt), jobId)
          redis.call('SADD', resourcesKey, need[1])
          used[need[1]] = used[need[1]] + 1
        end
        removeWaiter(jobId)
        redis.call('HSET', key, 'state', 'holding', 'grantedAt', int(now), 'expiresAt', int(expiresAt),
          'releasedBy', releasedBy, 'releasedAt', releasedBy == '' and '' or int(now),
          'blocked', '[]', 'reserving', '0')
        redis.call('PEXPIRE', key, 2 * lease)
        addEvent('granted', jobId, { 'waitedMs', int(now - since), 'releasedBy', releasedBy })
        redis.call('PUBLISH', grantedChannel, jobId)
      else
        local reserving = now - since >= tonumber(record[3])
        if reserving then
          for _, need in ipairs(needs) do reserved[need[1]] = reserved[need[1]] + 1 end
        end
        redis.call('HSET', key, 'blocked', cjson.encode(blocked), 'reserving', reserving and '1' or '0')
        blockedOf[jobId] = blocked
      end
    end
  end
  return blockedOf
end
`;

/**
 * Enters a job into the scheduler, or confirms what it holds. ARGV: prefix, job id, token,
 * resources JSON, lease ms, ageing ms, vm, source, target, bastion.
 *
 * A job that holds every resource it needs keeps them with a fresh lease and the new token
 * (a takeover reclaims them this way). Otherwise it gives up whatever it still holds, takes
 * or keeps its place in the queue, and dispatch runs. Returns JSON: granted, now, since,
 * grantedAt, blocked, reserving, reclaimed.
 */
export const enterScript = `${prelude}
local jobId, token, needsJson = ARGV[2], ARGV[3], ARGV[4]
local lease, ageing = tonumber(ARGV[5]), tonumber(ARGV[6])
local key = jobKey(jobId)
local needs = cjson.decode(needsJson)

local previous = redis.call('HMGET', key, 'token', 'resources', 'state')
local wanted, holdsAll = {}, true
for _, need in ipairs(needs) do
  wanted[need[1]] = true
  local score = redis.call('ZSCORE', heldKey(need[1]), jobId)
  if not score or tonumber(score) <= now then holdsAll = false end
end
-- Never hold part of a set while waiting, nor a resource the current set no longer names.
local freed = false
if previous[2] then
  for _, old in ipairs(cjson.decode(previous[2])) do
    if not holdsAll or not wanted[old[1]] then
      if redis.call('ZREM', heldKey(old[1]), jobId) == 1 then freed = true end
    end
  end
end
if not holdsAll then
  for _, need in ipairs(needs) do
    if redis.call('ZREM', heldKey(need[1]), jobId) == 1 then freed = true end
  end
end

local fields = { 'token', token, 'resources', needsJson, 'lease', int(lease), 'ageing', int(ageing),
  'vm', ARGV[7], 'source', ARGV[8], 'target', ARGV[9], 'bastion', ARGV[10] }

local reclaimed = false
if holdsAll then
  local expiresAt = now + lease
  for _, need in ipairs(needs) do redis.call('ZADD', heldKey(need[1]), int(expiresAt), jobId) end
  redis.call('HSET', key, 'state', 'holding', 'expiresAt', int(expiresAt), unpack(fields))
  if previous[1] and previous[1] ~= token then
    redis.call('HSET', key, 'reclaimedAt', int(now))
    addEvent('reclaimed', jobId, { 'bastion', ARGV[10] })
    reclaimed = true
  end
  redis.call('PEXPIRE', key, 2 * lease)
  if freed then dispatch('') end
else
  local since = redis.call('ZSCORE', queueKey, jobId)
  if since then
    since = tonumber(since)
  else
    since = now
    redis.call('ZADD', queueKey, int(since), jobId)
    addEvent('waiting', jobId, { 'bastion', ARGV[10] })
  end
  redis.call('ZADD', queueLeaseKey, int(now + lease), jobId)
  redis.call('HSET', key, 'state', 'waiting', 'since', int(since), unpack(fields))
  redis.call('PEXPIRE', key, 2 * lease)
  dispatch('')
end

local result = redis.call('HMGET', key, 'state', 'since', 'grantedAt', 'blocked', 'reserving')
return cjson.encode({
  granted = result[1] == 'holding',
  now = now,
  since = tonumber(result[2]) or now,
  grantedAt = tonumber(result[3]) or 0,
  blocked = result[1] == 'holding' and '[]' or (result[4] or '[]'),
  reserving = result[5] == '1',
  reclaimed = reclaimed,
})
`;

/**
 * Renews the lease of everything a job holds. ARGV: prefix, job id, token, lease ms. Returns
 * JSON: renewed, now, expiresAt, and a reason when not renewed (missing, superseded,
 * not-holding, expired). A job that finds part of its set expired gives up all of it.
 */
export const renewScript = `${prelude}
local jobId, token, lease = ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = jobKey(jobId)
local record = redis.call('HMGET', key, 'token', 'resources', 'state')
if not record[1] then return cjson.encode({ renewed = false, reason = 'missing', now = now }) end
if record[1] ~= token then return cjson.encode({ renewed = false, reason = 'superseded', now = now }) end
if record[3] ~= 'holding' then return cjson.encode({ renewed = false, reason = 'not-holding', now = now }) end

local needs = cjson.decode(record[2])
for _, need in ipairs(needs) do
  local score = redis.call('ZSCORE', heldKey(need[1]), jobId)
  if not score or tonumber(score) <= now then
    for _, other in ipairs(needs) do redis.call('ZREM', heldKey(other[1]), jobId) end
    redis.call('DEL', key)
    addEvent('lost', jobId, { 'resource', need[1] })
    dispatch('')
    return cjson.encode({ renewed = false, reason = 'expired', resource = need[1], now = now })
  end
end
local expiresAt = now + lease
for _, need in ipairs(needs) do redis.call('ZADD', heldKey(need[1]), 'XX', int(expiresAt), jobId) end
redis.call('HSET', key, 'expiresAt', int(expiresAt))
redis.call('PEXPIRE', key, 2 * lease)
return cjson.encode({ renewed = true, now = now, expiresAt = expiresAt })
`;

/**
 * Releases everything a job holds, or takes it out of the queue, and hands the freed capacity
 * to the waiters. ARGV: prefix, job id, token. A different token (the job was taken over)
 * changes nothing. Returns JSON: released, now, reason.
 */
export const releaseScript = `${prelude}
local jobId, token = ARGV[2], ARGV[3]
local key = jobKey(jobId)
local record = redis.call('HMGET', key, 'token', 'resources', 'state')
if record[1] and record[1] ~= token then
  return cjson.encode({ released = false, reason = 'superseded', now = now })
end
if record[2] then
  for _, need in ipairs(cjson.decode(record[2])) do
    redis.call('ZREM', heldKey(need[1]), jobId)
    if redis.call('ZCARD', heldKey(need[1])) == 0 then redis.call('SREM', resourcesKey, need[1]) end
  end
end
removeWaiter(jobId)
redis.call('DEL', key)
local releasedBy = ''
if record[3] == 'holding' then
  addEvent('released', jobId, {})
  releasedBy = jobId
elseif record[3] == 'waiting' then
  addEvent('left', jobId, {})
end
dispatch(releasedBy)
return cjson.encode({ released = true, now = now })
`;

/**
 * Records that a job holding its locks starts its migration, for the hand-over measurement.
 * ARGV: prefix, job id, token, Redis time (ms) at which the worker confirmed the grant.
 */
export const startScript = `${prelude}
local jobId, token = ARGV[2], ARGV[3]
local key = jobKey(jobId)
local record = redis.call('HMGET', key, 'token', 'grantedAt', 'releasedBy', 'releasedAt', 'state')
if record[1] ~= token or record[5] ~= 'holding' then
  return cjson.encode({ recorded = false, now = now })
end
redis.call('HSET', key, 'startedAt', int(now))
addEvent('started', jobId, { 'confirmedAt', ARGV[4], 'grantedAt', record[2] or '',
  'releasedBy', record[3] or '', 'releasedAt', record[4] or '' })
return cjson.encode({ recorded = true, now = now })
`;

/** Returns, as JSON, which of the VM names in ARGV[2..] have an unexpired VM lock. */
export const lockedVmsScript = `${prelude}
local locked = {}
for i = 2, #ARGV do
  local holders = redis.call('ZRANGEBYSCORE', heldKey('vm:' .. ARGV[i]), '(' .. int(now), '+inf', 'LIMIT', 0, 1)
  if #holders > 0 then locked[#locked + 1] = ARGV[i] end
end
return cjson.encode({ now = now, locked = locked })
`;

/**
 * Reads the whole scheduler state at one instant, as JSON: now, holders by resource (job id
 * and lease expiry), waiters oldest first, and the records of every job named.
 */
export const snapshotScript = `${prelude}
local jobs, holders, waiting = {}, {}, {}
local function remember(jobId)
  if jobs[jobId] ~= nil then return end
  local flat = redis.call('HGETALL', jobKey(jobId))
  local record = {}
  for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
  jobs[jobId] = record
end
for _, resource in ipairs(redis.call('SMEMBERS', resourcesKey)) do
  local entries = redis.call('ZRANGEBYSCORE', heldKey(resource), '(' .. int(now), '+inf', 'WITHSCORES')
  local list = {}
  for i = 1, #entries, 2 do
    list[#list + 1] = { job = entries[i], expiresAt = tonumber(entries[i + 1]) }
    remember(entries[i])
  end
  if #list > 0 then holders[resource] = list end
end
local entries = redis.call('ZRANGE', queueKey, 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  local lease = redis.call('ZSCORE', queueLeaseKey, entries[i])
  if lease and tonumber(lease) > now then
    waiting[#waiting + 1] = { job = entries[i], since = tonumber(entries[i + 1]) }
    remember(entries[i])
  end
end
return cjson.encode({ now = now, holders = holders, waiting = waiting, jobs = jobs })
`;
