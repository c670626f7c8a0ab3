package stockstore

import "github.com/redis/go-redis/v9"

// The scripts build key names themselves (key, ckey from luaKeys) rather
// than take them all as KEYS, because the generation they write to is
// resolved inside the script: a write can then never land in a generation
// that a rebuild has just retired. KEYS[1] is the generation pointer they
// read: the pointer itself on a single node, the bucket's copy on a Cluster,
// where every key a script touches carries the bucket's hash tag and so
// lives in KEYS[1]'s slot (Redis allows undeclared keys of the declared
// slot).

// luaPrefix resolves the generation prefix: KEYS[1] the pointer, base and
// gen, gen ” meaning the active generation (absent pointer: generation 0,
// the base itself) and gen "!" the active generation that must exist: with
// the pointer absent gprefix returns nil and the script writes nothing
// (nogen). The key helpers come from luaKeys.
var luaPrefix = luaKeys + `
local function gprefix(base, gen)
  if gen == '' or gen == '!' then
    local g = redis.call('GET', KEYS[1])
    if not g and gen == '!' then return nil end
    gen = g or '0'
  end
  if gen == '0' then return base, gen end
  return genprefix(base, gen), gen
end
local function nogen()
  return redis.error_reply('NOGEN no active cache generation')
end
-- mirror is the prefix of the generation a rebuild is about to switch to
-- (KEYS[2], see Rebuild.Mirror), which a write following the active
-- generation (gen '' or "!", resolved to g) also goes to; nil when none.
local function mirror(base, gen, g)
  if gen ~= '' and gen ~= '!' then return nil end
  local n = redis.call('GET', KEYS[2])
  if not n or n == g then return nil end
  return genprefix(base, n)
end
`

// applyScript writes one product snapshot if, and only if, its position is
// newer than everything the store has seen for that product: the stored
// snapshot's position or, after a delete, the tombstone's. Positions arrive
// as position.Key strings (24 hex digits); they are compared as three 32-bit
// numbers because Lua compares strings with strcoll, which follows the
// server's locale. A snapshot replaces the product hash and clears any
// tombstone; a tombstone deletes the product hash and leaves a small marker
// so that an older snapshot replayed later cannot resurrect it.
//
// In the same atomic step it keeps the derived indexes: the per-warehouse
// low-stock sets (the hash's "low" field remembers which sets hold the
// product, so the next write can take it out of them) and the change index
// (the product scored by a per-generation apply sequence, so a product
// appears once, at its latest change).
//
// One call applies several products (a pipelined batch is cut into calls of
// applyChunk products): per-call overhead (argument parsing, script lookup)
// was most of the cost of a small product. Each product is still checked on
// its own; the call as a whole is atomic too.
//
// A write that follows the active generation is also applied, checked on
// its own, to the generation a rebuild is about to switch to (mirror): that
// generation then holds everything the active one gets from the moment
// Rebuild.Mirror returned, and the rebuild's replay of the topic up to the
// offsets it reads after that covers everything before. So switching never
// shows a product older than the retired generation did.
//
// KEYS[1] the generation pointer, KEYS[2] the next-generation pointer;
// ARGV[1] base prefix, ARGV[2] generation (” = active, "!" = active and
// required, else NOGEN error), ARGV[3] the bucket tag (” on a single node),
// then per product five values: product id, position key, "1" for a
// tombstone else "0", doc, the low-stock warehouse ids joined by "\n" (”
// for none).
// Returns per product 1 when applied (to the generation written, whatever
// the mirror), 0 when stale (older or equal position).
var applyScript = redis.NewScript(luaPrefix + `
local function newer(a, b)
  for i = 1, 17, 8 do
    local x = tonumber(string.sub(a, i, i + 7), 16)
    local y = tonumber(string.sub(b, i, i + 7), 16)
    if x ~= y then return x > y end
  end
  return false
end
local p, g = gprefix(ARGV[1], ARGV[2])
if not p then return nogen() end
local mp = mirror(ARGV[1], ARGV[2], g)
local bt = ARGV[3]
local function apply(p, id, newpos, del, doc, low)
  local pk = key(p, bt, PRODUCT, id)
  local tk = key(p, bt, TOMBSTONE, id)
  local cur = redis.call('HMGET', pk, 'pos', 'low')
  local pos, oldlow, tomb = cur[1], cur[2], false
  if not pos then
    pos = redis.call('GET', tk)
    tomb = pos
  end
  if pos and not newer(newpos, pos) then
    return 0
  end
  if oldlow then
    for wh in string.gmatch(oldlow, '[^\n]+') do
      redis.call('ZREM', key(p, bt, LOWSTOCK, wh), id)
    end
  end
  if del == '1' then
    redis.call('DEL', pk)
    redis.call('SET', tk, newpos)
  else
    if low ~= '' then
      redis.call('HSET', pk, 'pos', newpos, 'doc', doc, 'low', low)
      for wh in string.gmatch(low, '[^\n]+') do
        redis.call('ZADD', key(p, bt, LOWSTOCK, wh), 0, id)
      end
    else
      redis.call('HSET', pk, 'pos', newpos, 'doc', doc)
      if oldlow then redis.call('HDEL', pk, 'low') end
    end
    -- A product hash and its tombstone never coexist: only a tombstone
    -- found above needs deleting.
    if tomb then redis.call('DEL', tk) end
  end
  local ck = ckey(p, bt)
  local seq = redis.call('INCR', ck .. SEQ)
  redis.call('ZADD', ck, seq, id)
  return 1
end
local out = {}
for i = 4, #ARGV, 5 do
  out[#out + 1] = apply(p, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
  if mp then apply(mp, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]) end
end
return out
`)

// watermarkScript moves a partition's watermark forward only: a stale worker
// (one whose partition was just revoked) cannot rewind it.
//
// It is mirrored like applyScript.
//
// KEYS[1] the generation pointer, KEYS[2] the next-generation pointer;
// ARGV[1] base, ARGV[2] generation, ARGV[3] bucket tag, ARGV[4] topic,
// ARGV[5] partition, ARGV[6] offset, ARGV[7] the JSON watermarkDoc. Returns
// 1 when written, 0 when not newer.
var watermarkScript = redis.NewScript(luaPrefix + `
local p, g = gprefix(ARGV[1], ARGV[2])
if not p then return nogen() end
local function mark(p)
  local k = key(p, ARGV[3], WATERMARK, ARGV[4])
  local cur = redis.call('HGET', k, ARGV[5])
  if cur then
    local ok, v = pcall(cjson.decode, cur)
    if ok and type(v) == 'table' and tonumber(v.offset) and tonumber(v.offset) >= tonumber(ARGV[6]) then
      return 0
    end
  end
  redis.call('HSET', k, ARGV[5], ARGV[7])
  return 1
end
local mp = mirror(ARGV[1], ARGV[2], g)
if mp then mark(mp) end
return mark(p)
`)

// trimScript keeps the newest ARGV[4] entries of a change index and records
// the highest trimmed sequence as the floor under which cursors have
// expired. KEYS[1] the generation pointer; ARGV[1] base, ARGV[2]
// generation, ARGV[3] bucket tag. Returns the entries removed.
var trimScript = redis.NewScript(luaPrefix + `
local p = gprefix(ARGV[1], ARGV[2])
if not p then return 0 end
local k = ckey(p, ARGV[3])
local drop = redis.call('ZCARD', k) - tonumber(ARGV[4])
if drop <= 0 then return 0 end
local last = redis.call('ZRANGE', k, drop - 1, drop - 1, 'WITHSCORES')
redis.call('SET', k .. FLOOR, last[2])
redis.call('ZREMRANGEBYRANK', k, 0, drop - 1)
return drop
`)

// changesScript reads a change index of the active generation after a
// cursor, with each product's stored position and whether it is deleted, in
// one atomic read.
//
// KEYS[1] the generation pointer; ARGV[1] base, ARGV[2] bucket tag, ARGV[3]
// the cursor's generation (” = no cursor), ARGV[4] the cursor's sequence,
// ARGV[5] limit. Returns {gen, "ok"|"expired", head sequence, then id, seq,
// position key, deleted ("1"/"0") per change}.
var changesScript = redis.NewScript(luaPrefix + `
local p, gen = gprefix(ARGV[1], '')
local bt = ARGV[2]
local k = ckey(p, bt)
local head = redis.call('GET', k .. SEQ) or '0'
local from = '-inf'
if ARGV[3] ~= '' then
  if ARGV[3] ~= gen then return {gen, 'expired', head} end
  local floor = tonumber(redis.call('GET', k .. FLOOR) or '0')
  if tonumber(ARGV[4]) < floor then return {gen, 'expired', head} end
  from = '(' .. ARGV[4]
end
local out = {gen, 'ok', head}
local limit = tonumber(ARGV[5])
if limit <= 0 then return out end
local ids = redis.call('ZRANGEBYSCORE', k, from, '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #ids, 2 do
  local id = ids[i]
  local pos = redis.call('HGET', key(p, bt, PRODUCT, id), 'pos')
  local del = '0'
  if not pos then
    pos = redis.call('GET', key(p, bt, TOMBSTONE, id)) or ''
    del = '1'
  end
  out[#out + 1] = id
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = pos
  out[#out + 1] = del
end
return out
`)

var allScripts = []*redis.Script{applyScript, watermarkScript, trimScript, changesScript}
