//! What the publisher does to spend fewer bytes on the uplink, per connection: MQTT 5 Topic
//! Aliases (`topic_alias: 1`, [`crate::alias`]) and batched payloads (`payload_format:
//! json_batch` / `csv_batch`, [`crate::batch`]). The publisher asks it how to name a topic
//! and hands it the values of a batch format; the window keeps which entries a batch stands
//! for.

use std::collections::HashMap;
use std::time::Instant;

use config::mqtt::{MqttDevice, PayloadFormat, Topic};
use tagbus::{Alias, TagKey, TagValue};

use crate::alias::{TopicAliases, TopicName};
use crate::batch::Batcher;
use crate::Route;

/// The batch topic of a device with a batch payload format (None for the others), or why
/// the device cannot run: a bad `batch_topic`, or with `csv_batch` a topic holding a line
/// break (it would split its line).
pub(crate) fn batch_topic(
    alias: &Alias,
    device: &MqttDevice,
    routes: &HashMap<TagKey, Vec<Route>>,
) -> Result<Option<Topic>, String> {
    if !device.payload_format.is_batch() {
        return Ok(None);
    }
    let topic = device
        .batch
        .topic_for(alias)
        .map_err(|e| format!("batch_topic: {e}"))?;
    if device.payload_format == PayloadFormat::CsvBatch {
        if let Some(r) = routes
            .values()
            .flatten()
            .find(|r| r.topic.as_str().contains(['\n', '\r']))
        {
            return Err(format!(
                "topic {:?} holds a line break, which payload_format csv_batch cannot carry",
                r.topic.as_str()
            ));
        }
    }
    Ok(Some(topic))
}

/// The uplink state of one connection.
#[derive(Debug)]
pub(crate) struct Uplink {
    aliases: Option<TopicAliases>,
    /// The batch being gathered and its topic (batch formats).
    batch: Option<(Batcher, Topic)>,
}

impl Uplink {
    /// The state of a new connection: aliases when `topic_alias` is set, with the broker's
    /// Topic Alias Maximum from the CONNACK; a batcher when `batch_topic` is given.
    pub(crate) fn new(
        device: &MqttDevice,
        batch_topic: Option<&Topic>,
        topic_alias_max: Option<u16>,
    ) -> Self {
        Self {
            aliases: device
                .topic_alias
                .then(|| TopicAliases::new(topic_alias_max)),
            batch: batch_topic.map(|t| {
                (
                    Batcher::new(device.payload_format, &device.batch),
                    t.clone(),
                )
            }),
        }
    }

    /// The aliases this connection may use (0 without `topic_alias`).
    pub(crate) fn alias_max(&self) -> u16 {
        self.aliases.as_ref().map_or(0, TopicAliases::max)
    }

    /// How the next publish on `topic` names it.
    pub(crate) fn name(&mut self, topic: &Topic) -> TopicName {
        match self.aliases.as_mut() {
            Some(a) => a.name(topic),
            None => TopicName::Full,
        }
    }

    /// Whether values go into batches.
    pub(crate) fn batching(&self) -> bool {
        self.batch.is_some()
    }

    /// Adds a value to the batch (batch formats; otherwise nothing).
    pub(crate) fn gather(&mut self, topic: &Topic, value: &TagValue, now: Instant) {
        if let Some((b, _)) = self.batch.as_mut() {
            b.push(topic, value, now);
        }
    }

    /// Whether the batch must be published now (full).
    pub(crate) fn batch_full(&self) -> bool {
        self.batch.as_ref().is_some_and(|(b, _)| b.is_full())
    }

    /// When the batch being gathered is due (None: nothing gathered).
    pub(crate) fn batch_deadline(&self) -> Option<Instant> {
        self.batch.as_ref().and_then(|(b, _)| b.deadline())
    }

    /// The batch to publish now: its topic, payload and number of values.
    pub(crate) fn take_batch(&mut self) -> Option<(Topic, Vec<u8>, usize)> {
        let (b, topic) = self.batch.as_mut()?;
        let (payload, n) = b.take()?;
        Some((topic.clone(), payload, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(format: &str, extra: &str) -> MqttDevice {
        let text = format!(
            r#"{{"devices": [{{"name": "C", "device_alias": "c", "protocol": "mqtt", "ip": "b",
              "payload_format": "{format}" {extra}}}], "signals": []}}"#
        );
        let v = config::validate(&config::RawConfig::parse(&text).unwrap());
        assert!(v.errors.is_empty(), "{v:?}");
        match &v.config.devices[0].kind {
            config::DeviceKind::Mqtt(m) => m.clone(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_batch_topic_defaults_per_device_and_csv_refuses_line_breaks() {
        let alias: Alias = "c".parse().unwrap();
        let mut routes = HashMap::new();
        assert_eq!(batch_topic(&alias, &device("csv", ""), &routes), Ok(None));
        assert_eq!(
            batch_topic(&alias, &device("json_batch", ""), &routes),
            Ok(Some(Topic::new("fieldbridge/c/batch").unwrap()))
        );
        routes.insert(
            "tag/r/a/in".parse().unwrap(),
            vec![Route {
                topic: Topic::new("a\nb").unwrap(),
                log: false,
                report: Default::default(),
            }],
        );
        assert!(batch_topic(&alias, &device("csv_batch", ""), &routes).is_err());
        assert!(batch_topic(&alias, &device("json_batch", ""), &routes).is_ok());
    }

    #[test]
    fn aliases_only_with_topic_alias_and_batches_only_with_a_batch_topic() {
        let t = Topic::new("x").unwrap();
        let mut plain = Uplink::new(&device("csv", ""), None, Some(10));
        assert_eq!((plain.name(&t), plain.alias_max()), (TopicName::Full, 0));
        assert!(!plain.batching() && plain.take_batch().is_none());
        let d = device(
            "csv_batch",
            r#", "mqtt_version": 5, "topic_alias": 1, "batch_max": 2"#,
        );
        let bt = Topic::new("b").unwrap();
        let mut u = Uplink::new(&d, Some(&bt), Some(10));
        assert_eq!((u.name(&bt), u.alias_max()), (TopicName::Set(1), 10));
        let v: TagValue = "1,2,".parse().unwrap();
        let now = Instant::now();
        u.gather(&t, &v, now);
        assert!(!u.batch_full() && u.batch_deadline().is_some());
        u.gather(&t, &v, now);
        assert!(u.batch_full());
        assert_eq!(
            u.take_batch(),
            Some((bt, b"x,1,2,1\nx,1,2,1\n".to_vec(), 2))
        );
        assert_eq!(u.batch_deadline(), None);
    }
}
