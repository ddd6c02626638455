//! The tag bus as a test sees it: a plain Redis connection (testrig's [`RedisConn`]) with the
//! reads, polls and writes the applet tests make.

use std::time::{Duration, Instant};

use tagbus::{CommandResult, TagKey, TagValue, TagWriter, WriterConfig, STREAM_KEY};
use testrig::{AppletProcess, RedisConn, RedisServer};

pub struct Bus {
    conn: RedisConn,
}

impl Bus {
    pub fn new(redis: &RedisServer) -> Bus {
        Bus {
            conn: redis.connect(),
        }
    }

    pub fn get(&mut self, key: &str) -> Option<String> {
        self.conn.get(key)
    }

    pub fn value(&mut self, key: &str) -> Option<TagValue> {
        self.get(key).map(|s| s.parse().unwrap())
    }

    /// Polls `key` until `pred` holds; panics with the applet log after `timeout`.
    pub fn wait(
        &mut self,
        key: &str,
        timeout: Duration,
        applet: &AppletProcess,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.get(key) {
                if pred(&v) {
                    return v;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{key} = {:?} after {timeout:?}\napplet log:\n{}",
                    self.get(key),
                    applet.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls every one of `keys` until `pred` holds for all; how long it took. Panics with
    /// `log()` after `timeout`.
    pub fn wait_all(
        &mut self,
        what: &str,
        keys: &[String],
        timeout: Duration,
        log: &dyn Fn() -> String,
        pred: impl Fn(&str, &TagValue) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let values: Vec<(String, Option<TagValue>)> =
                keys.iter().map(|k| (k.clone(), self.value(k))).collect();
            if values
                .iter()
                .all(|(k, v)| v.as_ref().is_some_and(|v| pred(k, v)))
            {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "{what}: not within {timeout:?}: {values:?}\nlog:\n{}",
                    log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last CSV value streamed for `key` (what the MQTT publisher forwards).
    pub fn last_streamed(&mut self, key: &str) -> Option<TagValue> {
        self.conn
            .stream_newest(STREAM_KEY, 100)
            .into_iter()
            .find_map(|(_, fields)| {
                (fields.get(1).map(String::as_str) == Some(key))
                    .then(|| fields.get(3).unwrap().parse().unwrap())
            })
    }

    /// Issues a command the way any consumer does: a live value on the `out` channel.
    pub fn command(&mut self, key: &str, value: &str, ts: u64) {
        self.conn.set_and_publish(key, &format!("{value},{ts},"));
    }

    /// The result of the command on `signal` of rtu1 stamped `ts` (waits up to 15 s).
    pub fn result(&mut self, signal: &str, ts: u64, applet: &AppletProcess) -> CommandResult {
        let key = format!("result/rtu1/{signal}");
        let text = self.wait(&key, Duration::from_secs(15), applet, |v| {
            v.parse::<CommandResult>()
                .is_ok_and(|r| r.command_timestamp_ms == ts)
        });
        text.parse().unwrap()
    }
}

/// Writes values like a driver does (SET + PUBLISH + XADD through the real `TagWriter`), in
/// order, 500 per round trip.
pub fn write_tags(redis_url: &str, values: &[(TagKey, TagValue)]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut w = TagWriter::new(&WriterConfig::new(redis_url)).unwrap();
        for chunk in values.chunks(500) {
            w.write_batch(chunk).await.unwrap();
        }
    });
}

/// Writes `(signal of rtu1, CSV value)` pairs, in order ([`write_tags`]).
pub fn write_rtu1<S: AsRef<str>>(redis_url: &str, values: &[(S, S)]) {
    let batch: Vec<(TagKey, TagValue)> = values
        .iter()
        .map(|(s, v)| {
            (
                format!("tag/rtu1/{}/in", s.as_ref()).parse().unwrap(),
                v.as_ref().parse().unwrap(),
            )
        })
        .collect();
    write_tags(redis_url, &batch);
}
