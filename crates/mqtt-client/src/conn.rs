//! One MQTT connection over rumqttc (3.1, 3.1.1 or 5): options from the device row, and an event
//! task that reduces rumqttc's events to what the publisher needs.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use config::mqtt::{Auth, MqttDevice, MqttVersion, Qos, Transport};
use rumqttc::{NetworkOptions, TlsConfiguration};
use tokio::sync::mpsc;

use crate::MqttClientError;

/// Spawns the task that drives one rumqttc event loop (3.1.1 or 5: the types differ, the loop
/// does not) and forwards its events until the connection closes or nobody listens.
macro_rules! pump_events {
    ($el:ident, $map:ident, $fail:ident, $trace:ident, $label:ident, $tx:ident) => {
        tokio::spawn(async move {
            loop {
                let ev = $el.poll().await;
                if $trace {
                    trace_line(&$label, &ev);
                }
                let out = match ev {
                    Ok(e) => $map(e),
                    Err(e) => Some(ConnEvent::Closed($fail(e))),
                };
                if let Some(out) = out {
                    let closed = matches!(out, ConnEvent::Closed(_));
                    if $tx.send(out).await.is_err() || closed {
                        return;
                    }
                }
            }
        })
    };
}

/// Most requests the event loop writes to the socket before one flush (rumqttc as patched in
/// vendor/rumqttc): under load, many PUBLISH packets per write instead of one. Only requests
/// already queued are taken (nothing waits for more, TCP_NODELAY stays on), within the
/// in-flight limit. In the benchmark this took the publisher from 3.3 to 2.0 us of CPU per
/// value at QoS 0; on a cellular uplink it also means fewer TCP segments.
const REQUEST_BATCH: usize = 64;

/// Largest packet we accept (and, with MQTT 5, announce).
const MAX_PACKET: usize = 256 * 1024;
/// Largest packet we send with MQTT 3.x (with MQTT 5 the broker's Maximum Packet Size rules):
/// a Sparkplug DBIRTH carries every metric of a device, about 40 bytes each, so 10,000
/// metrics are some 400 KiB; mosquitto accepts up to 256 MiB by default.
const MAX_OUTGOING_PACKET: usize = 4 * 1024 * 1024;
/// Connect (TCP + TLS/WS + CONNACK) timeout.
const CONNECT_TIMEOUT_S: u64 = 10;

/// What the publisher learns from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnEvent {
    /// CONNACK accepted; MQTT 5 brokers may announce a Receive Maximum and a Topic Alias
    /// Maximum.
    Connected {
        session_present: bool,
        receive_max: Option<u16>,
        topic_alias_max: Option<u16>,
    },
    /// A PUBLISH was written (packet id; 0 at QoS 0), in the order of publish calls.
    Sent(u16),
    /// The broker acknowledged a packet id (PUBACK at QoS 1, PUBCOMP at QoS 2); `refused`
    /// holds an MQTT 5 failure reason.
    Acked { pkid: u16, refused: Option<String> },
    /// A PUBLISH from the broker (a command).
    Message(crate::commands::Incoming),
    /// The broker answered a SUBSCRIBE; `refused` filters it did not grant.
    SubAck { refused: usize },
    /// The connection ended.
    Closed(ConnFailure),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnFailure {
    /// The broker refused the CONNECT (CONNACK reason).
    Refused(String),
    /// Anything else (network, TLS, protocol).
    Other(String),
}

/// The client half: publish requests.
pub(crate) enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

fn qos4(q: Qos) -> rumqttc::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(q: Qos) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

impl Client {
    /// Queues a publish without waiting; `false` when the request queue is full or closed.
    pub(crate) fn try_publish(
        &self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: Vec<u8>,
    ) -> bool {
        match self {
            Client::V4(c) => c.try_publish(topic, qos4(qos), retain, payload).is_ok(),
            Client::V5(c) => c.try_publish(topic, qos5(qos), retain, payload).is_ok(),
        }
    }

    /// [`Client::try_publish`] with an MQTT 5 Topic Alias (`crate::alias`): `topic` is empty
    /// when the alias stands for it. Without an alias, or with MQTT 3.1.1, a plain publish.
    pub(crate) fn try_publish_aliased(
        &self,
        topic: &str,
        alias: Option<u16>,
        qos: Qos,
        retain: bool,
        payload: Vec<u8>,
    ) -> bool {
        match (self, alias) {
            (Client::V5(c), Some(a)) => {
                let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
                    topic_alias: Some(a),
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, qos5(qos), retain, payload, props)
                    .is_ok()
            }
            _ => self.try_publish(topic, qos, retain, payload),
        }
    }
}

/// Filters per SUBSCRIBE packet.
const SUBSCRIBE_CHUNK: usize = 64;

impl Client {
    /// Subscribes the command topics at QoS 1 (MQTT 5: retained messages are not sent on
    /// subscribe, the retain flag is kept as published, our own publishes are not echoed).
    /// `false` when the request queue is full or closed.
    pub(crate) fn try_subscribe_commands(&self, topics: &[config::mqtt::Topic]) -> bool {
        topics.chunks(SUBSCRIBE_CHUNK).all(|chunk| match self {
            Client::V4(c) => c
                .try_subscribe_many(chunk.iter().map(|t| {
                    rumqttc::SubscribeFilter::new(t.as_str().to_owned(), rumqttc::QoS::AtLeastOnce)
                }))
                .is_ok(),
            Client::V5(c) => {
                use rumqttc::v5::mqttbytes::v5::{Filter, RetainForwardRule};
                c.try_subscribe_many(chunk.iter().map(|t| {
                    let mut f = Filter::new(
                        t.as_str().to_owned(),
                        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    );
                    f.nolocal = true;
                    f.preserve_retain = true;
                    f.retain_forward_rule = RetainForwardRule::Never;
                    f
                }))
                .is_ok()
            }
        })
    }

    /// Subscribes a Sparkplug edge node's topics (NCMD, DCMD, STATE) at QoS 1. Retained
    /// messages are delivered on subscribe: the primary host's STATE is retained. MQTT 5: our
    /// own publishes are not echoed. `false` when the request queue is full or closed.
    pub(crate) fn try_subscribe_sparkplug(&self, topics: &[String]) -> bool {
        topics.chunks(SUBSCRIBE_CHUNK).all(|chunk| match self {
            Client::V4(c) => c
                .try_subscribe_many(
                    chunk.iter().map(|t| {
                        rumqttc::SubscribeFilter::new(t.clone(), rumqttc::QoS::AtLeastOnce)
                    }),
                )
                .is_ok(),
            Client::V5(c) => c
                .try_subscribe_many(chunk.iter().map(|t| {
                    let mut f = rumqttc::v5::mqttbytes::v5::Filter::new(
                        t.clone(),
                        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    );
                    f.nolocal = true;
                    f
                }))
                .is_ok(),
        })
    }

    /// Queues a command answer (MQTT 5: with the request's correlation data); not retained.
    pub(crate) fn try_publish_answer(
        &self,
        topic: &str,
        qos: Qos,
        payload: Vec<u8>,
        correlation: Option<Vec<u8>>,
    ) -> bool {
        match self {
            Client::V4(c) => c.try_publish(topic, qos4(qos), false, payload).is_ok(),
            Client::V5(c) => {
                let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
                    correlation_data: correlation.map(Into::into),
                    content_type: Some("application/json".into()),
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, qos5(qos), false, payload, props)
                    .is_ok()
            }
        }
    }
}

/// A live connection: dropping it stops its event task and closes the socket.
pub(crate) struct Conn {
    pub client: Client,
    pub events: mpsc::Receiver<ConnEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Settings of one connection attempt.
pub(crate) struct ConnSettings<'a> {
    pub device: &'a MqttDevice,
    pub client_id: String,
    /// The request queue size (above the publisher's window).
    pub capacity: usize,
    /// The in-flight limit given to rumqttc.
    pub inflight: u16,
    /// Print every MQTT packet on stdout (`-m`).
    pub trace: bool,
    /// A label for logs and traces.
    pub label: String,
    /// A Last Will in place of the device's (a Sparkplug NDEATH), never retained.
    pub will: Option<Will>,
}

/// A binary Last Will.
#[derive(Debug, Clone)]
pub(crate) struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
}

/// Starts a connection: returns the client and the receiver of its events. The event task
/// ends after [`ConnEvent::Closed`] (or when the receiver is dropped).
pub(crate) fn connect(
    s: &ConnSettings<'_>,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
) -> Result<Conn, MqttClientError> {
    let d = s.device;
    let tls = match (d.auth, tls) {
        (Auth::Tls, Some(c)) => Some(TlsConfiguration::Rustls(c)),
        (Auth::Tls, None) => {
            return Err(MqttClientError::Tls("auth is tls but no TLS config".into()))
        }
        _ => None,
    };
    let (broker, transport) = match (d.transport, tls) {
        (Transport::Tcp, None) => (d.host.clone(), rumqttc::Transport::Tcp),
        (Transport::Tcp, Some(t)) => (d.host.clone(), rumqttc::Transport::Tls(t)),
        (Transport::WebSocket, None) => (
            format!("ws://{}:{}{}", host_in_url(&d.host), d.port, d.ws_path),
            rumqttc::Transport::Ws,
        ),
        (Transport::WebSocket, Some(t)) => (
            format!("wss://{}:{}{}", host_in_url(&d.host), d.port, d.ws_path),
            rumqttc::Transport::Wss(t),
        ),
    };
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(CONNECT_TIMEOUT_S);
    let (tx, rx) = mpsc::channel(s.capacity.saturating_mul(2).max(16));
    let trace = s.trace;
    let label = s.label.clone();
    match d.version {
        MqttVersion::V31 | MqttVersion::V311 => {
            let mut o = rumqttc::MqttOptions::new(s.client_id.clone(), broker, d.port);
            o.set_protocol(protocol4(d.version))
                .set_websocket_subprotocol(d.ws_subprotocol.as_str())
                .set_keep_alive(d.keepalive)
                .set_clean_session(d.clean_session)
                .set_inflight(s.inflight.max(1))
                .set_max_request_batch(REQUEST_BATCH)
                .set_max_packet_size(MAX_PACKET, MAX_OUTGOING_PACKET)
                .set_transport(transport);
            if let (Some(u), Some(p)) = (&d.username, &d.password) {
                o.set_credentials(u.clone(), p.expose());
            } else if let Some(u) = &d.username {
                o.set_credentials(u.clone(), "");
            }
            if let Some(w) = &s.will {
                o.set_last_will(rumqttc::LastWill::new(
                    w.topic.as_str(),
                    w.payload.clone(),
                    qos4(w.qos),
                    false,
                ));
            } else if let Some(w) = &d.last_will {
                o.set_last_will(rumqttc::LastWill::new(
                    w.topic.as_str(),
                    w.message.clone(),
                    qos4(w.qos),
                    w.retain,
                ));
            }
            let (client, mut el) = rumqttc::AsyncClient::new(o, s.capacity.max(1));
            el.set_network_options(net);
            let task = pump_events!(el, map4, fail4, trace, label, tx);
            Ok(Conn {
                client: Client::V4(client),
                events: rx,
                task,
            })
        }
        MqttVersion::V5 => {
            use rumqttc::v5::mqttbytes::v5::LastWill;
            let mut o = rumqttc::v5::MqttOptions::new(s.client_id.clone(), broker, d.port);
            o.set_keep_alive(d.keepalive)
                .set_clean_start(d.clean_session)
                .set_outgoing_inflight_upper_limit(s.inflight.max(1))
                .set_max_request_batch(REQUEST_BATCH)
                .set_max_packet_size(u32::try_from(MAX_PACKET).ok())
                .set_transport(transport)
                .set_network_options(net);
            if let Some(u) = &d.username {
                o.set_credentials(u.clone(), d.password.as_ref().map_or("", |p| p.expose()));
            }
            if let Some(w) = &s.will {
                o.set_last_will(LastWill::new(
                    w.topic.as_str(),
                    w.payload.clone(),
                    qos5(w.qos),
                    false,
                    None,
                ));
            } else if let Some(w) = &d.last_will {
                o.set_last_will(LastWill::new(
                    w.topic.as_str(),
                    w.message.clone(),
                    qos5(w.qos),
                    w.retain,
                    None,
                ));
            }
            let (client, mut el) = rumqttc::v5::AsyncClient::new(o, s.capacity.max(1));
            let task = pump_events!(el, map5, fail5, trace, label, tx);
            Ok(Conn {
                client: Client::V5(client),
                events: rx,
                task,
            })
        }
    }
}

/// The CONNECT of a 3.x connection: MQTT 3.1 (`MQIsdp`, level 3) or 3.1.1 (`MQTT`, 4).
fn protocol4(version: MqttVersion) -> rumqttc::Protocol {
    match version {
        MqttVersion::V31 => rumqttc::Protocol::V3,
        MqttVersion::V311 | MqttVersion::V5 => rumqttc::Protocol::V4,
    }
}

/// An IPv6 literal goes in brackets inside a URL.
fn host_in_url(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn trace_line<E: std::fmt::Debug, F: std::fmt::Display>(label: &str, ev: &Result<E, F>) {
    let line = match ev {
        Ok(e) => format!("mqtt {label} {e:?}\n"),
        Err(e) => format!("mqtt {label} error: {e}\n"),
    };
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

fn map4(e: rumqttc::Event) -> Option<ConnEvent> {
    use rumqttc::{Event, Outgoing, Packet};
    match e {
        Event::Incoming(Packet::ConnAck(c)) => Some(ConnEvent::Connected {
            session_present: c.session_present,
            receive_max: None,
            topic_alias_max: None,
        }),
        Event::Incoming(Packet::PubAck(a)) => Some(ConnEvent::Acked {
            pkid: a.pkid,
            refused: None,
        }),
        Event::Incoming(Packet::PubComp(a)) => Some(ConnEvent::Acked {
            pkid: a.pkid,
            refused: None,
        }),
        Event::Outgoing(Outgoing::Publish(pkid)) => Some(ConnEvent::Sent(pkid)),
        Event::Incoming(Packet::Publish(p)) => {
            Some(ConnEvent::Message(crate::commands::Incoming {
                topic: p.topic,
                payload: p.payload.to_vec(),
                qos: p.qos as u8,
                retain: p.retain,
                dup: p.dup,
                pkid: p.pkid,
                ..Default::default()
            }))
        }
        Event::Incoming(Packet::SubAck(a)) => Some(ConnEvent::SubAck {
            refused: a
                .return_codes
                .iter()
                .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                .count(),
        }),
        _ => None,
    }
}

fn fail4(e: rumqttc::ConnectionError) -> ConnFailure {
    match e {
        rumqttc::ConnectionError::ConnectionRefused(code) => {
            ConnFailure::Refused(format!("{code:?}"))
        }
        other => ConnFailure::Other(other.to_string()),
    }
}

fn map5(e: rumqttc::v5::Event) -> Option<ConnEvent> {
    use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PubCompReason, PubRecReason};
    use rumqttc::v5::Event;
    use rumqttc::Outgoing;
    match e {
        Event::Incoming(Packet::ConnAck(c)) => Some(ConnEvent::Connected {
            session_present: c.session_present,
            receive_max: c.properties.as_ref().and_then(|p| p.receive_max),
            topic_alias_max: c.properties.and_then(|p| p.topic_alias_max),
        }),
        Event::Incoming(Packet::PubAck(a)) => Some(ConnEvent::Acked {
            pkid: a.pkid,
            refused: match a.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                r => Some(format!("{r:?}")),
            },
        }),
        // A refused PUBREC ends the QoS 2 exchange (no PUBREL/PUBCOMP follows).
        Event::Incoming(Packet::PubRec(a)) => match a.reason {
            PubRecReason::Success | PubRecReason::NoMatchingSubscribers => None,
            r => Some(ConnEvent::Acked {
                pkid: a.pkid,
                refused: Some(format!("{r:?}")),
            }),
        },
        Event::Incoming(Packet::PubComp(a)) => Some(ConnEvent::Acked {
            pkid: a.pkid,
            refused: match a.reason {
                PubCompReason::Success => None,
                r => Some(format!("{r:?}")),
            },
        }),
        Event::Outgoing(Outgoing::Publish(pkid)) => Some(ConnEvent::Sent(pkid)),
        Event::Incoming(Packet::Publish(p)) => {
            let props = p.properties.unwrap_or_default();
            Some(ConnEvent::Message(crate::commands::Incoming {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload.to_vec(),
                qos: p.qos as u8,
                retain: p.retain,
                dup: p.dup,
                pkid: p.pkid,
                response_topic: props.response_topic,
                correlation: props.correlation_data.map(|b| b.to_vec()),
                expiry: props.message_expiry_interval,
            }))
        }
        Event::Incoming(Packet::SubAck(a)) => {
            use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as R;
            Some(ConnEvent::SubAck {
                refused: a
                    .return_codes
                    .iter()
                    .filter(|c| !matches!(c, R::Success(_)))
                    .count(),
            })
        }
        _ => None,
    }
}

fn fail5(e: rumqttc::v5::ConnectionError) -> ConnFailure {
    match e {
        rumqttc::v5::ConnectionError::ConnectionRefused(code) => {
            ConnFailure::Refused(format!("{code:?}"))
        }
        other => ConnFailure::Other(other.to_string()),
    }
}

/// Time after which a connection attempt that produced nothing is abandoned.
pub(crate) const CONNECT_DEADLINE: Duration = Duration::from_secs(CONNECT_TIMEOUT_S + 5);

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn decode(bytes: &BytesMut) -> Result<rumqttc::Connect, String> {
        match rumqttc::Packet::read(&mut bytes.clone(), 1024) {
            Ok(rumqttc::Packet::Connect(c)) => Ok(c),
            other => Err(format!("{other:?}")),
        }
    }

    /// The CONNECT rumqttc writes for `mqtt_version: 3.1`: protocol name `MQIsdp`, level 3,
    /// the rest as 3.1.1.
    #[test]
    fn mqtt31_connect_bytes() {
        let mut connect = rumqttc::Connect::new("gw1");
        connect.protocol = protocol4(MqttVersion::V31);
        connect.keep_alive = 60;
        let mut buf = BytesMut::new();
        assert_eq!(connect.write(&mut buf).unwrap(), 19);
        let expected: &[u8] = &[
            0x10, 17, // CONNECT, remaining length
            0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name
            0x03, // protocol level
            0x02, // connect flags: clean session
            0x00, 0x3c, // keep alive 60 s
            0x00, 0x03, b'g', b'w', b'1', // client id
        ];
        assert_eq!(&buf[..], expected);
        assert_eq!(connect.size(), expected.len());
        assert_eq!(decode(&buf), Ok(connect.clone()));

        // 3.1.1 is unchanged: `MQTT`, level 4; with a Will and a login the flags still land
        // in their byte (its index follows the protocol name's length).
        connect.protocol = protocol4(MqttVersion::V311);
        let mut buf = BytesMut::new();
        connect.write(&mut buf).unwrap();
        assert_eq!(&buf[2..9], &[0, 4, b'M', b'Q', b'T', b'T', 4]);
        connect.protocol = protocol4(MqttVersion::V31);
        connect.last_will = Some(rumqttc::LastWill::new(
            "w",
            "x",
            rumqttc::QoS::AtLeastOnce,
            true,
        ));
        connect.set_login("u", "p");
        let mut buf = BytesMut::new();
        connect.write(&mut buf).unwrap();
        assert_eq!(
            buf[11], 0b1110_1110,
            "user, password, will retain, will QoS 1, will, clean"
        );
        assert_eq!(decode(&buf), Ok(connect.clone()));

        // A name and level that do not belong together are refused.
        for (name, level) in [(&b"MQTT"[..], 3u8), (&b"MQIsdp"[..], 4u8)] {
            let mut bad = vec![0x10, 0, 0, u8::try_from(name.len()).unwrap()];
            bad.extend_from_slice(name);
            bad.extend_from_slice(&[level, 0x02, 0, 60, 0, 1, b'x']);
            bad[1] = u8::try_from(bad.len() - 2).unwrap();
            assert!(decode(&bad[..].into()).is_err(), "{name:?} {level}");
        }
    }
}
