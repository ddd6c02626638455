//! MQTT 5 Topic Aliases of one connection (`topic_alias: 1`), without I/O.
//!
//! The broker announces its Topic Alias Maximum in the CONNACK (none or 0: no aliases).
//! Topics get the aliases 1, 2, .. in the order they are first published on this connection,
//! up to that maximum; a topic published first carries its full name and its alias (which
//! sets the alias in the broker), every later publish of it the alias and an empty topic.
//! Topics beyond the maximum are published with their full name. An alias is never moved to
//! another topic: with signals that change at a steady rate the first topics are as good as
//! any, and a moved alias would cost the full topic again.
//!
//! Aliases live as long as the network connection (MQTT 5, 3.3.2.3.4): every connection
//! starts a new map, so after a reconnect each topic carries its full name again once.
//! Publishes are written in the order they are handed to rumqttc, so the publish that sets
//! an alias always reaches the broker before the ones that use it.

use std::collections::HashMap;

use config::mqtt::Topic;

/// How one publish names its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicName {
    /// The full topic, no alias.
    Full,
    /// The full topic and this alias: the broker maps the alias to the topic from now on.
    Set(u16),
    /// This alias and an empty topic.
    Alias(u16),
}

impl TopicName {
    /// The topic to put in the PUBLISH and its Topic Alias property.
    pub(crate) fn apply(self, topic: &str) -> (&str, Option<u16>) {
        match self {
            TopicName::Full => (topic, None),
            TopicName::Set(a) => (topic, Some(a)),
            TopicName::Alias(a) => ("", Some(a)),
        }
    }
}

/// The aliases of one connection.
#[derive(Debug, Default)]
pub(crate) struct TopicAliases {
    /// The broker's Topic Alias Maximum.
    max: u16,
    aliases: HashMap<Topic, u16>,
}

impl TopicAliases {
    /// The aliases of a new connection, with the broker's Topic Alias Maximum (CONNACK).
    pub(crate) fn new(broker_max: Option<u16>) -> Self {
        Self {
            max: broker_max.unwrap_or(0),
            aliases: HashMap::new(),
        }
    }

    /// The most aliases this connection may use.
    pub(crate) fn max(&self) -> u16 {
        self.max
    }

    /// How the next publish on `topic` names it.
    pub(crate) fn name(&mut self, topic: &Topic) -> TopicName {
        if let Some(a) = self.aliases.get(topic) {
            return TopicName::Alias(*a);
        }
        let Ok(used) = u16::try_from(self.aliases.len()) else {
            return TopicName::Full;
        };
        if used >= self.max {
            return TopicName::Full;
        }
        let alias = used.saturating_add(1);
        self.aliases.insert(topic.clone(), alias);
        TopicName::Set(alias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }

    #[test]
    fn first_publish_sets_the_alias_later_ones_use_it_up_to_the_broker_maximum() {
        let mut a = TopicAliases::new(Some(2));
        assert_eq!(a.name(&t("tag/r/a/in")), TopicName::Set(1));
        assert_eq!(a.name(&t("tag/r/b/in")), TopicName::Set(2));
        assert_eq!(a.name(&t("tag/r/a/in")), TopicName::Alias(1));
        assert_eq!(
            a.name(&t("tag/r/c/in")),
            TopicName::Full,
            "beyond the maximum"
        );
        assert_eq!(a.name(&t("tag/r/c/in")), TopicName::Full);
        assert_eq!(a.name(&t("tag/r/b/in")), TopicName::Alias(2));
        assert_eq!(TopicName::Alias(2).apply("tag/r/b/in"), ("", Some(2)));
        assert_eq!(
            TopicName::Set(2).apply("tag/r/b/in"),
            ("tag/r/b/in", Some(2))
        );
        assert_eq!(TopicName::Full.apply("tag/r/c/in"), ("tag/r/c/in", None));
    }

    #[test]
    fn a_broker_without_a_maximum_gets_full_topics_and_a_new_connection_sets_them_again() {
        for max in [None, Some(0)] {
            let mut a = TopicAliases::new(max);
            assert_eq!(a.name(&t("x")), TopicName::Full);
            assert_eq!(a.name(&t("x")), TopicName::Full);
        }
        let mut first = TopicAliases::new(Some(10));
        assert_eq!(first.name(&t("x")), TopicName::Set(1));
        assert_eq!(first.name(&t("x")), TopicName::Alias(1));
        let mut after_reconnect = TopicAliases::new(Some(10));
        assert_eq!(after_reconnect.name(&t("x")), TopicName::Set(1));
    }
}
