-- One buy of a seckill, atomically: window, idempotency, per-viewer limit, allocation then
-- pool (all or nothing), decrement, and the reservation appended to the order stream.
--
-- KEYS[1]  lc:{sk:<id>}:meta       hash: id, brand_room_id, brand_id, product_id, starts, ends
--                                  (epoch ms, 0 = none), ended (0|1), limit, timeout_ms, price,
--                                  stock, fee_bps, dealer_bps, upline_bps, allocations (JSON)
-- KEYS[2]  lc:{sk:<id>}:pool       units left in the shared pool
-- KEYS[3]  lc:{sk:<id>}:alloc      hash room_id -> units left in that room's allocation
-- KEYS[4]  lc:{sk:<id>}:viewers    hash viewer_id -> units the viewer holds (all rooms)
-- KEYS[5]  lc:{sk:<id>}:req        hash "<viewer_id>\n<request_id>" -> order id
-- KEYS[6]  lc:{sk:<id>}:orders     hash order id -> reservation record (JSON)
-- KEYS[7]  lc:{sk:<id>}:status     hash order id -> reserved | paid:<ms> | expired | ...
-- KEYS[8]  lc:{sk:<id>}:allocd     hash order id -> units the order holds from its allocation
-- KEYS[9]  lc:{sk:<id>}:stream     the order stream (read by the order writer)
-- KEYS[10] lc:{sk:<id>}:deadlines  zset order id -> expires (epoch ms)
-- KEYS[11] lc:{sk:<id>}:tick       units bought since the last ticker event
-- ARGV[1] viewer_id  ARGV[2] request_id  ARGV[3] room_id  ARGV[4] qty  ARGV[5] new order id
-- ARGV[6] dealer_id ("" in a brand room)  ARGV[7] upline_id ("" when none)
--
-- Returns {code, order_id, record, status, room_left, total_left}:
--   ok             reserved; record is the new reservation
--   duplicate      this viewer already reserved with this request id; the first order
--   not_found      no such seckill
--   ended          ended early, or past ends
--   not_started    before starts
--   limit_exceeded the viewer would hold more than the per-viewer limit
--   sold_out       fewer than qty units left for this room (pool + its allocation)
-- room_left is pool + this room's allocation after the call; total_left is every unit left.
local meta = KEYS[1]
if redis.call('EXISTS', meta) == 0 then
  return {'not_found', '', '', '', 0, 0}
end
local req_field = ARGV[1] .. '\n' .. ARGV[2]
local existing = redis.call('HGET', KEYS[5], req_field)
if existing then
  return {'duplicate', existing, redis.call('HGET', KEYS[6], existing),
          redis.call('HGET', KEYS[7], existing), 0, 0}
end

local m = redis.call('HMGET', meta, 'starts', 'ends', 'ended', 'limit', 'timeout_ms', 'price',
                     'fee_bps', 'dealer_bps', 'upline_bps', 'brand_room_id', 'brand_id',
                     'product_id', 'id')
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ends = tonumber(m[2])
if m[3] == '1' or (ends > 0 and now >= ends) then
  return {'ended', '', '', '', 0, 0}
end
if now < tonumber(m[1]) then
  return {'not_started', '', '', '', 0, 0}
end

local qty = tonumber(ARGV[4])
local held = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
if held + qty > tonumber(m[4]) then
  return {'limit_exceeded', '', '', '', 0, 0}
end

local room = ARGV[3]
local pool = tonumber(redis.call('GET', KEYS[2]) or '0')
local allocated = tonumber(redis.call('HGET', KEYS[3], room) or '0')
if pool + allocated < qty then
  return {'sold_out', '', '', '', pool + allocated, 0}
end
local from_alloc = math.min(allocated, qty)
local from_pool = qty - from_alloc
if from_alloc > 0 then
  redis.call('HINCRBY', KEYS[3], room, -from_alloc)
end
if from_pool > 0 then
  redis.call('DECRBY', KEYS[2], from_pool)
end
redis.call('HINCRBY', KEYS[4], ARGV[1], qty)

local order_id = ARGV[5]
local expires = now + tonumber(m[5])
local own_dealer = ARGV[6] ~= ''
local record = cjson.encode({
  id = order_id, seckill_id = m[13], brand_room_id = m[10], brand_id = m[11],
  product_id = m[12], room_id = room, dealer_id = ARGV[6], upline_id = ARGV[7],
  viewer_id = ARGV[1], request_id = ARGV[2], qty = ARGV[4], price = m[6],
  allocated = tostring(from_alloc), created = string.format('%.0f', now),
  expires = string.format('%.0f', expires), fee_bps = m[7],
  dealer_bps = own_dealer and m[8] or '0',
  upline_bps = (own_dealer and ARGV[7] ~= '') and m[9] or '0',
})
redis.call('HSET', KEYS[5], req_field, order_id)
redis.call('HSET', KEYS[6], order_id, record)
redis.call('HSET', KEYS[7], order_id, 'reserved')
if from_alloc > 0 then
  redis.call('HSET', KEYS[8], order_id, from_alloc)
end
redis.call('XADD', KEYS[9], '*', 't', 'reserve', 'o', order_id, 'r', record)
redis.call('ZADD', KEYS[10], expires, order_id)
redis.call('INCRBY', KEYS[11], qty)

local total = pool - from_pool
for _, units in ipairs(redis.call('HVALS', KEYS[3])) do
  total = total + tonumber(units)
end
return {'ok', order_id, record, 'reserved', pool - from_pool + allocated - from_alloc, total}
