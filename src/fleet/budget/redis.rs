//! The budget in one Redis hash, `<prefix><namespace>:fleet:budget:<name>`: each
//! reservation one Lua script, on the server's `TIME`.

use redis::Script;

use super::{Answer, micros, unavailable};
use crate::error::Result;
use crate::idempotency::RedisKeys;

// Instants are Unix microseconds, written with `%.0f`: Lua's `tostring` keeps only 14
// digits. A script that reads `TIME` and then writes is replicated by its effects (the
// only way from Redis 7; asked for on 5 and 6). The key expires a minute after its last
// booked instant: an idle fleet leaves nothing behind.

/// `KEYS[1]` the hash; `ARGV[1]` the interval, `ARGV[2]` the headroom (-1: none), in
/// microseconds. Returns `{1, wait, slot}` or `{0, come back after}`.
const RESERVE: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local headroom = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'next_at', 'hold_until')
local at = math.max(now, tonumber(state[1]) or 0, tonumber(state[2]) or 0)
if headroom >= 0 and at - now > headroom then
  return {0, at - now - headroom}
end
redis.call('HSET', KEYS[1], 'next_at', string.format('%.0f', at + interval))
redis.call('PEXPIRE', KEYS[1], math.floor((at + interval - now) / 1000) + 60000)
return {1, at - now, at}
";

/// `KEYS[1]` the hash; `ARGV[1]` how long to hold, in microseconds. `GREATEST`'s rule: a
/// longer hold already there stays.
const HOLD: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'next_at', 'hold_until')
local hold = math.max(now + tonumber(ARGV[1]), tonumber(state[2]) or 0)
redis.call('HSET', KEYS[1], 'hold_until', string.format('%.0f', hold))
local last = math.max(hold, tonumber(state[1]) or 0)
redis.call('PEXPIRE', KEYS[1], math.floor((last - now) / 1000) + 60000)
return 1
";

/// The two scripts and the key they work on.
pub(super) struct Scripts {
    keys: RedisKeys,
    key: String,
    reserve: Script,
    hold: Script,
}

impl Scripts {
    pub(super) fn new(keys: &RedisKeys, name: &str) -> Self {
        Self {
            key: keys.key(&format!("fleet:budget:{name}")),
            keys: keys.clone(),
            reserve: Script::new(RESERVE),
            hold: Script::new(HOLD),
        }
    }

    /// One reservation; `headroom_us` bounds how far ahead the schedule may be booked.
    pub(super) async fn reserve(
        &self,
        interval_us: i64,
        headroom_us: Option<i64>,
    ) -> Result<Answer> {
        let answer: Vec<i64> = self
            .reserve
            .key(&self.key)
            .arg(interval_us)
            .arg(headroom_us.unwrap_or(-1))
            .invoke_async(&mut self.keys.connection.clone())
            .await
            .map_err(|e| unavailable("reserve a slot of", e))?;
        Ok(match answer.as_slice() {
            [1, wait, slot_us] => Answer::Slot {
                wait: micros(*wait),
                slot_us: *slot_us,
            },
            [_, later, ..] => Answer::Later(micros(*later)),
            _ => {
                return Err(unavailable(
                    "reserve a slot of",
                    format!("the script answered {answer:?}"),
                ));
            }
        })
    }

    /// Raises `hold_until` to `wait_us` from now.
    pub(super) async fn hold(&self, wait_us: i64) -> Result<()> {
        let _: i64 = self
            .hold
            .key(&self.key)
            .arg(wait_us)
            .invoke_async(&mut self.keys.connection.clone())
            .await
            .map_err(|e| unavailable("hold back", e))?;
        Ok(())
    }
}
