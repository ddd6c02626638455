//! The gateway's link-loss mark for whole devices: what an applet writes as it stops, and
//! the supervisor for an applet that died without writing it.

use std::time::Duration;

use redis::AsyncCommands;

use crate::{Alias, Direction, TagBusError, TagKey, TagValue, STREAM_KEY};

/// The longest [`mark_no_link`] takes before it gives up ([`TagBusError::Timeout`]).
pub const MARK_TIMEOUT: Duration = Duration::from_secs(2);

const SCAN_COUNT: usize = 1000;
/// Keys per `MGET` and per script call.
const CHUNK: usize = 500;

/// Writes `new` over each key whose value is still `old`, as the writer does (SET, PUBLISH
/// and, when streamed, XADD), atomically: a value the device's next applet wrote meanwhile is
/// never overwritten with a mark. KEYS[1] is the stream, KEYS[2..] the tags; ARGV holds the
/// stream cap and field names, then `old`, `new`, `streamed` per tag. Returns how many it wrote.
const MARK_SCRIPT: &str = r"
local n = 0
for i = 2, #KEYS do
  local a = 4 + (i - 2) * 3
  if redis.call('GET', KEYS[i]) == ARGV[a] then
    redis.call('SET', KEYS[i], ARGV[a + 1])
    redis.call('PUBLISH', KEYS[i], ARGV[a + 1])
    if ARGV[a + 2] == '1' then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', ARGV[2], KEYS[i], ARGV[3], ARGV[a + 1])
    end
    n = n + 1
  end
end
return n
";

/// Marks every `in` and `rin` value of these devices with the gateway's link-loss mark
/// ([`TagValue::marked_no_link`]: value and timestamp kept, `nt nolink` added), through the
/// same SET, PUBLISH and stream as every value, so MQTT consumers see quality 0. Values
/// already marked, and malformed ones, are left alone; a value that changes between the read
/// and the write keeps the newer value. Returns how many values were marked; bounded by
/// [`MARK_TIMEOUT`].
pub async fn mark_no_link(
    redis_url: &str,
    stream_max_len: u64,
    devices: &[Alias],
) -> Result<usize, TagBusError> {
    if devices.is_empty() {
        return Ok(0);
    }
    let client = redis::Client::open(redis_url)?;
    tokio::time::timeout(MARK_TIMEOUT, mark(&client, stream_max_len, devices))
        .await
        .map_err(|_| TagBusError::Timeout)?
}

async fn mark(
    client: &redis::Client,
    stream_max_len: u64,
    devices: &[Alias],
) -> Result<usize, TagBusError> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut keys: Vec<TagKey> = Vec::new();
    for device in devices {
        for direction in [Direction::In, Direction::RawIn] {
            let mut iter: redis::AsyncIter<String> = conn
                .scan_options(
                    redis::ScanOptions::default()
                        .with_pattern(TagKey::device_pattern(device, direction))
                        .with_count(SCAN_COUNT),
                )
                .await?;
            while let Some(item) = iter.next_item().await {
                // The glob's `*` also matches a `/`: keep only this device's keys.
                if let Ok(key) = item?.parse::<TagKey>() {
                    if key.device == *device && key.direction == direction {
                        keys.push(key);
                    }
                }
            }
        }
    }
    let mut marked = 0usize;
    for chunk in keys.chunks(CHUNK) {
        let names: Vec<String> = chunk.iter().map(ToString::to_string).collect();
        let values: Vec<Option<Vec<u8>>> = conn.mget(&names).await?;
        let mut script = redis::cmd("EVAL");
        script.arg(MARK_SCRIPT);
        let mut args: Vec<String> = vec![
            stream_max_len.to_string(),
            crate::STREAM_FIELD_KEY.to_owned(),
            crate::STREAM_FIELD_VALUE.to_owned(),
        ];
        let mut tags: Vec<&str> = Vec::new();
        for ((key, name), raw) in chunk.iter().zip(&names).zip(values) {
            let Some(raw) = raw else { continue };
            let Ok(value) = TagValue::from_bytes(&raw) else {
                continue;
            };
            if value.flags.is_no_link() {
                continue;
            }
            let Ok(old) = String::from_utf8(raw) else {
                continue;
            };
            tags.push(name);
            args.push(old);
            args.push(value.marked_no_link().to_string());
            args.push(
                if key.direction.is_streamed() {
                    "1"
                } else {
                    "0"
                }
                .to_owned(),
            );
        }
        if tags.is_empty() {
            continue;
        }
        script
            .arg(tags.len().saturating_add(1))
            .arg(STREAM_KEY)
            .arg(&tags)
            .arg(&args);
        let n: usize = script.query_async(&mut conn).await?;
        marked = marked.saturating_add(n);
    }
    Ok(marked)
}
