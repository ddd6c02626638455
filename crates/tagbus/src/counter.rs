//! Persisted counters: one `INCR` of a counter key.

use crate::reader::timed;
use crate::TagBusError;
use contract::sparkplug::BdSeqKey;

/// Increments a Sparkplug edge node's bdSeq counter and returns its new value (1 for the
/// first connection ever), one connection and one `INCR`, bounded by the tag bus timeout.
pub async fn next_bd_seq(redis_url: &str, key: &BdSeqKey) -> Result<u64, TagBusError> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = timed(client.get_multiplexed_async_connection()).await?;
    timed(
        redis::cmd("INCR")
            .arg(key.as_str())
            .query_async::<u64>(&mut conn),
    )
    .await
}
