//! A plain blocking Redis connection for tests that look at (or poke) the tag bus the way
//! any outside consumer does (`redis-cli`, a script): the applets under test use `tagbus`,
//! a test checks what they left in Redis through this, not through the code it tests.

use std::time::Duration;

/// A connection to a test redis-server ([`crate::RedisServer::connect`]).
pub struct RedisConn {
    conn: redis::Connection,
}

impl RedisConn {
    /// Connects to `url` (panics when it cannot: a test without its Redis cannot go on).
    pub fn open(url: &str) -> Self {
        let client = redis::Client::open(url).unwrap();
        Self {
            conn: client.get_connection().unwrap(),
        }
    }

    /// `GET key` as text (`None` when the key does not exist).
    pub fn get(&mut self, key: &str) -> Option<String> {
        redis::cmd("GET").arg(key).query(&mut self.conn).unwrap()
    }

    /// `XLEN key`: how many entries a stream holds.
    pub fn stream_len(&mut self, key: &str) -> u64 {
        redis::cmd("XLEN").arg(key).query(&mut self.conn).unwrap()
    }

    /// The newest `count` entries of a stream (`XREVRANGE key + - COUNT count`), each as its
    /// id and its field/value list.
    pub fn stream_newest(&mut self, key: &str, count: usize) -> Vec<(String, Vec<String>)> {
        redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query(&mut self.conn)
            .unwrap()
    }

    /// `SET key value` and `PUBLISH key value` in one `MULTI`: a value written the way every
    /// tag bus writer does (the command path's `out` values, for instance).
    pub fn set_and_publish(&mut self, key: &str, value: &str) {
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(key)
            .arg(value)
            .ignore()
            .cmd("PUBLISH")
            .arg(key)
            .arg(value)
            .ignore()
            .query::<()>(&mut self.conn)
            .unwrap();
    }

    /// Subscribes this connection to `channel` (it serves nothing else afterwards).
    pub fn subscribe(mut self, channel: &str) -> Subscription {
        redis::cmd("SUBSCRIBE")
            .arg(channel)
            .query::<redis::Value>(&mut self.conn)
            .unwrap();
        Subscription { conn: self.conn }
    }
}

/// A connection subscribed to one channel ([`RedisConn::subscribe`]).
pub struct Subscription {
    conn: redis::Connection,
}

impl Subscription {
    /// The payload of the next message, or `None` when none came within `timeout`.
    pub fn next_payload(&mut self, timeout: Duration) -> Option<String> {
        self.conn.set_read_timeout(Some(timeout)).unwrap();
        loop {
            let reply = match self.conn.recv_response() {
                Ok(reply) => reply,
                Err(e) if e.is_timeout() => return None,
                Err(e) => panic!("subscription: {e}"),
            };
            if let Some(msg) = redis::Msg::from_owned_value(reply) {
                return Some(msg.get_payload::<String>().unwrap());
            }
        }
    }
}
