-- Stamp and publish events of one brand room (and its mirrors).
--
-- KEYS[1]  lc:{room:<brand_room_id>}:seq      the room's sequence counter (shared by mirrors)
-- KEYS[2]  lc:{room:<brand_room_id>}:history  a stream of recent events, id = <seq>-0
-- ARGV[1]  the pub/sub channel of the brand room
-- ARGV[2]  how many events the history keeps
-- ARGV[3..] pairs of (scope, body): scope "" reaches every room of the brand room, otherwise
--           one room id; body is the event's JSON object without seq and ts.
--
-- Each event takes the next seq and the server time (ms) and is appended to the history and
-- published as "<seq>\n<ts>\n<scope>\n<body>". Returns a flat array {seq1, ts1, seq2, ts2, ...}.
local time = redis.call('TIME')
local ts = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local stamped = {}
for i = 3, #ARGV, 2 do
  local seq = redis.call('INCR', KEYS[1])
  local message = seq .. '\n' .. ts .. '\n' .. ARGV[i] .. '\n' .. ARGV[i + 1]
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'm', message)
  redis.call('PUBLISH', ARGV[1], message)
  stamped[#stamped + 1] = seq
  stamped[#stamped + 1] = ts
end
return stamped
