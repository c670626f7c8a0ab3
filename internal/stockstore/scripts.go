package stockstore

import "github.com/redis/go-redis/v9"

// applyScript writes one product snapshot if, and only if, its position is
// newer than everything the store has seen for that product: the stored
// snapshot's position or, after a delete, the tombstone's. Positions arrive
// as position.Key strings (24 hex digits); they are compared as three 32-bit
// numbers because Lua compares strings with strcoll, which follows the
// server's locale. A snapshot replaces the product hash and clears
// any tombstone; a tombstone deletes the product hash and leaves a small
// marker so that an older snapshot replayed later cannot resurrect it.
//
// KEYS[1] product hash, KEYS[2] tombstone marker (same hash tag: same slot).
// ARGV[1] position key, ARGV[2] "1" for a tombstone else "0", ARGV[3] doc.
// Returns 1 when applied, 0 when stale (older or equal position).
var applyScript = redis.NewScript(`
local function newer(a, b)
  for i = 1, 17, 8 do
    local x = tonumber(string.sub(a, i, i + 7), 16)
    local y = tonumber(string.sub(b, i, i + 7), 16)
    if x ~= y then return x > y end
  end
  return false
end
local cur = redis.call('HGET', KEYS[1], 'pos')
local tomb = false
if not cur then
  cur = redis.call('GET', KEYS[2])
  tomb = cur
end
if cur and not newer(ARGV[1], cur) then
  return 0
end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'pos', ARGV[1], 'doc', ARGV[3])
  -- A product hash and its tombstone never coexist: only a tombstone
  -- found above needs deleting.
  if tomb then redis.call('DEL', KEYS[2]) end
end
return 1
`)

// watermarkScript moves a partition's watermark forward only: a stale worker
// (one whose partition was just revoked) cannot rewind it.
//
// KEYS[1] watermark hash of the topic. ARGV[1] partition, ARGV[2] offset,
// ARGV[3] the JSON watermarkDoc. Returns 1 when written, 0 when not newer.
var watermarkScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' and tonumber(v.offset) and tonumber(v.offset) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`)

var allScripts = []*redis.Script{applyScript, watermarkScript}
