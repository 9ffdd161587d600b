-- Give refunded units of a paid order back, while the seckill is open: to the order's room
-- allocation first (up to what the order still holds from it), then the pool, and to the
-- viewer's count. Idempotent per (order, refund id).
--
-- KEYS[1] lc:{sk:<id>}:meta       KEYS[2] lc:{sk:<id>}:pool     KEYS[3] lc:{sk:<id>}:alloc
-- KEYS[4] lc:{sk:<id>}:viewers    KEYS[5] lc:{sk:<id>}:orders   KEYS[6] lc:{sk:<id>}:allocd
-- KEYS[7] lc:{sk:<id>}:returns    hash "<order id>\n<refund id>" -> units given back
-- ARGV[1] order id   ARGV[2] qty   ARGV[3] refund id ("" = not deduplicated)
--
-- Returns {code}: returned | duplicate (this refund id was applied) | closed (the seckill is
-- not open: nothing given back) | not_found (no such order).
local order_id = ARGV[1]
local raw = redis.call('HGET', KEYS[5], order_id)
if not raw then
  return {'not_found'}
end
local field = order_id .. '\n' .. ARGV[3]
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[7], field) == 1 then
  return {'duplicate'}
end
local m = redis.call('HMGET', KEYS[1], 'starts', 'ends', 'ended')
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ends = tonumber(m[2])
if m[3] == '1' or (ends > 0 and now >= ends) or now < tonumber(m[1]) then
  return {'closed'}
end
local record = cjson.decode(raw)
local qty = tonumber(ARGV[2])
local held_alloc = tonumber(redis.call('HGET', KEYS[6], order_id) or '0')
local to_alloc = math.min(held_alloc, qty)
if to_alloc > 0 then
  redis.call('HINCRBY', KEYS[3], record['room_id'], to_alloc)
  redis.call('HINCRBY', KEYS[6], order_id, -to_alloc)
end
if qty > to_alloc then
  redis.call('INCRBY', KEYS[2], qty - to_alloc)
end
redis.call('HINCRBY', KEYS[4], record['viewer_id'], -qty)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[7], field, qty)
end
return {'returned'}
