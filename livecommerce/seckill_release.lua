-- Release an unpaid reservation (expiry or the viewer's cancel): reserved -> expired|cancelled,
-- its units back to the room's allocation (what it drew from it) and the pool, and to the
-- viewer's count. Exactly one of release, pay and another release wins for an order.
--
-- KEYS[1] lc:{sk:<id>}:meta       KEYS[2] lc:{sk:<id>}:pool     KEYS[3] lc:{sk:<id>}:alloc
-- KEYS[4] lc:{sk:<id>}:viewers    KEYS[5] lc:{sk:<id>}:orders   KEYS[6] lc:{sk:<id>}:status
-- KEYS[7] lc:{sk:<id>}:allocd     KEYS[8] lc:{sk:<id>}:stream   KEYS[9] lc:{sk:<id>}:deadlines
-- (see seckill.lua for what each holds)
-- ARGV[1] order id   ARGV[2] expired | cancelled
--
-- Returns {code, total_left_before, total_left_after}:
--   released   the order is now ARGV[2]; its units are back
--   not_due    (expired only) its deadline has not passed yet
--   not_found  no such order
--   <status>   the order was no longer reserved: paid, expired, cancelled, refund_due
local order_id = ARGV[1]
local status = redis.call('HGET', KEYS[6], order_id)
if not status then
  return {'not_found', 0, 0}
end
if status ~= 'reserved' then
  return {string.match(status, '^[a-z_]+'), 0, 0}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if ARGV[2] == 'expired' then
  local deadline = tonumber(redis.call('ZSCORE', KEYS[9], order_id) or '0')
  if now < deadline then
    return {'not_due', 0, 0}
  end
end

local function total_left()
  local total = tonumber(redis.call('GET', KEYS[2]) or '0')
  for _, units in ipairs(redis.call('HVALS', KEYS[3])) do
    total = total + tonumber(units)
  end
  return total
end

local before = total_left()
local record = cjson.decode(redis.call('HGET', KEYS[5], order_id))
local qty = tonumber(record['qty'])
local from_alloc = tonumber(redis.call('HGET', KEYS[7], order_id) or '0')
if from_alloc > 0 then
  redis.call('HINCRBY', KEYS[3], record['room_id'], from_alloc)
  redis.call('HDEL', KEYS[7], order_id)
end
if qty > from_alloc then
  redis.call('INCRBY', KEYS[2], qty - from_alloc)
end
redis.call('HINCRBY', KEYS[4], record['viewer_id'], -qty)
redis.call('HSET', KEYS[6], order_id, ARGV[2])
redis.call('ZREM', KEYS[9], order_id)
redis.call('XADD', KEYS[8], '*', 't', ARGV[2], 'o', order_id, 'ms', string.format('%.0f', now))
return {'released', before, total_left()}
