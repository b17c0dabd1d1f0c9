//! The lease as a hash (`holder`, `expires` in the server's milliseconds, `generation`,
//! `state`), read and written by scripts that take the time from Redis's `TIME`. The key
//! has no expiry of its own: the state must outlive the holder.

use std::time::Duration;

use redis::Script;

use super::{Term, term, unavailable};
use crate::error::Result;
use crate::idempotency::{RedisKeys, store_millis};

/// Now in the server's milliseconds; scripts that read `TIME` replicate their effects.
const NOW: &str = "
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// Takes the lease if free, run out or ours: `{generation, state, replaced}` or `{0}`.
const ACQUIRE: &str = "
local holder = redis.call('HGET', KEYS[1], 'holder') or ''
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0')
if holder ~= '' and holder ~= ARGV[1] and expires > now then return {0, '', ''} end
local generation = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'expires', now + tonumber(ARGV[2]))
local replaced = ''
if expires <= now then replaced = holder end
return {generation, redis.call('HGET', KEYS[1], 'state') or '', replaced}
";

/// Renews (and with ARGV[4] = 1 writes the state) while this term holds: 1, else 0.
const WRITE: &str = "
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'generation') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'expires', now + tonumber(ARGV[3]))
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'state', ARGV[5]) end
return 1
";

/// Gives the lease up while this term holds.
const RELEASE: &str = "
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'generation') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'holder', '', 'expires', now)
return 1
";

/// The live holder, or ''.
const HOLDER: &str = "
local holder = redis.call('HGET', KEYS[1], 'holder') or ''
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0')
if expires > now then return holder end
return ''
";

fn script(body: &str) -> Script {
    Script::new(&[NOW, body].concat())
}

fn key(keys: &RedisKeys, name: &str) -> String {
    keys.key(&format!("lease:{name}"))
}

pub(super) async fn acquire(
    keys: &RedisKeys,
    name: &str,
    me: &str,
    ttl: Duration,
) -> Result<Option<Term>> {
    let (generation, state, replaced): (i64, String, String) = script(ACQUIRE)
        .key(key(keys, name))
        .arg(me)
        .arg(store_millis(ttl))
        .invoke_async(&mut keys.connection.clone())
        .await
        .map_err(|e| unavailable("acquired", e))?;
    if generation == 0 {
        return Ok(None);
    }
    let state = (!state.is_empty()).then_some(state);
    Ok(Some(term(generation, state, Some(replaced), me)))
}

pub(super) async fn write(
    keys: &RedisKeys,
    name: &str,
    me: &str,
    generation: i64,
    ttl: Duration,
    state: Option<&str>,
) -> Result<bool> {
    let written: i64 = script(WRITE)
        .key(key(keys, name))
        .arg(me)
        .arg(generation)
        .arg(store_millis(ttl))
        .arg(if state.is_some() { "1" } else { "0" })
        .arg(state.unwrap_or_default())
        .invoke_async(&mut keys.connection.clone())
        .await
        .map_err(|e| unavailable("renewed", e))?;
    Ok(written == 1)
}

pub(super) async fn release(keys: &RedisKeys, name: &str, me: &str, generation: i64) -> Result<()> {
    let _: i64 = script(RELEASE)
        .key(key(keys, name))
        .arg(me)
        .arg(generation)
        .invoke_async(&mut keys.connection.clone())
        .await
        .map_err(|e| unavailable("released", e))?;
    Ok(())
}

pub(super) async fn holder(keys: &RedisKeys, name: &str) -> Result<Option<String>> {
    let holder: String = script(HOLDER)
        .key(key(keys, name))
        .invoke_async(&mut keys.connection.clone())
        .await
        .map_err(|e| unavailable("read", e))?;
    Ok((!holder.is_empty()).then_some(holder))
}
