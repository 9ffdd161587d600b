-- Pay a reservation: reserved (and not past its deadline) -> paid, exactly one winner against
-- cancel and expiry. A late payment (ARGV[2] = 1, the provider's webhook) also pays a reserved
-- order past its deadline, and for an expired or cancelled one takes its units again — the
-- room's allocation first, then the pool, within the viewer's limit, all or nothing — or, when
-- they cannot be taken, marks it refund_due.
--
-- KEYS[1] lc:{sk:<id>}:meta       KEYS[2] lc:{sk:<id>}:pool     KEYS[3] lc:{sk:<id>}:alloc
-- KEYS[4] lc:{sk:<id>}:viewers    KEYS[5] lc:{sk:<id>}:orders   KEYS[6] lc:{sk:<id>}:status
-- KEYS[7] lc:{sk:<id>}:allocd     KEYS[8] lc:{sk:<id>}:stream   KEYS[9] lc:{sk:<id>}:deadlines
-- (see seckill.lua for what each holds)
-- ARGV[1] order id   ARGV[2] 1 for a late payment, else 0
--
-- Returns {code, paid_ms, allocated_units}:
--   paid          now paid (allocated_units: what it holds from its room's allocation)
--   already_paid  it was paid before (idempotent success)
--   expired       past its deadline or expired (not late)
--   cancelled     cancelled by the viewer (not late)
--   refund_due    late, and its units could not be taken again; marked refund_due
--   not_found     no such order
local order_id = ARGV[1]
local status = redis.call('HGET', KEYS[6], order_id)
if not status then
  return {'not_found', 0, 0}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local stamp = string.format('%.0f', now)
local late = ARGV[2] == '1'
if string.sub(status, 1, 5) == 'paid:' then
  return {'already_paid', string.sub(status, 6), redis.call('HGET', KEYS[7], order_id) or '0'}
end
if status == 'refund_due' then
  return {'refund_due', 0, 0}
end
local record = cjson.decode(redis.call('HGET', KEYS[5], order_id))

if status == 'reserved' then
  local deadline = tonumber(redis.call('ZSCORE', KEYS[9], order_id) or '0')
  if now >= deadline and not late then
    return {'expired', 0, 0}
  end
elseif not late then
  return {status, 0, 0}
else
  -- expired or cancelled, paid late: take the units again, like a buy (window aside)
  local qty = tonumber(record['qty'])
  local room = record['room_id']
  local limit = tonumber(redis.call('HGET', KEYS[1], 'limit'))
  local held = tonumber(redis.call('HGET', KEYS[4], record['viewer_id']) or '0')
  local pool = tonumber(redis.call('GET', KEYS[2]) or '0')
  local allocated = tonumber(redis.call('HGET', KEYS[3], room) or '0')
  if held + qty > limit or pool + allocated < qty then
    redis.call('HSET', KEYS[6], order_id, 'refund_due')
    redis.call('XADD', KEYS[8], '*', 't', 'refund_due', 'o', order_id, 'ms', stamp)
    return {'refund_due', 0, 0}
  end
  local from_alloc = math.min(allocated, qty)
  if from_alloc > 0 then
    redis.call('HINCRBY', KEYS[3], room, -from_alloc)
    redis.call('HSET', KEYS[7], order_id, from_alloc)
  end
  if qty > from_alloc then
    redis.call('DECRBY', KEYS[2], qty - from_alloc)
  end
  redis.call('HINCRBY', KEYS[4], record['viewer_id'], qty)
end

local from_alloc = redis.call('HGET', KEYS[7], order_id) or '0'
redis.call('HSET', KEYS[6], order_id, 'paid:' .. stamp)
redis.call('ZREM', KEYS[9], order_id)
redis.call('XADD', KEYS[8], '*', 't', 'paid', 'o', order_id, 'ms', stamp, 'a', from_alloc)
return {'paid', stamp, from_alloc}
