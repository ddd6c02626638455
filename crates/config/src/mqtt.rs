//! The MQTT part: broker devices (`protocol: mqtt`) and the signals they forward. Column
//! names and defaults are the WCC Lite MQTT tables', plus fieldbridge's additions
//! (`transport`, `ws_path`, `ws_subprotocol`, `mqtt_version`, `keepalive_s`, `clean_session`,
//! `payload_format`, `tls_insecure`, `max_inflight`, the uplink's `topic_alias`, `batch_ms`,
//! `batch_max`, `batch_topic`, `batch_compression`, and the command path: device
//! `command_topic_template`, `command_max_age_ms`, `command_result_timeout_s`; signal
//! `writable`, `command_topic`; the Sparkplug B edge node: `sparkplug_group_id`,
//! `sparkplug_edge_node_id`, `sparkplug_primary_host_id`, docs/sparkplug.md).
//!
//! TLS file paths are only read here; whether the files exist is checked where they are
//! used, when the mqtt-client applet starts on the gateway (a config is often validated on
//! another machine).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use contract::{Direction, TagKey};

use crate::cell::{IntColumn, RowReader};
use crate::columns::COMMAND_MAX_AGE_MS;
use crate::model::Secret;
use crate::report::Reporting;

/// Device columns of the MQTT protocol.
pub const DEVICE_COLUMNS: &[&str] = &[
    "ip",
    "port",
    "enable_threshold",
    "mqtt_qos",
    "mqtt_retain",
    "username",
    "password",
    "auth",
    "ca_certificate",
    "client_certificate",
    "client_key",
    "use_last_will",
    "last_will_topic",
    "last_will_message",
    "last_will_qos",
    "last_will_retain",
    "client_id",
    "transport",
    "ws_path",
    "ws_subprotocol",
    "mqtt_version",
    "keepalive_s",
    "clean_session",
    "payload_format",
    "tls_insecure",
    "max_inflight",
    "command_topic_template",
    "command_max_age_ms",
    "command_result_timeout_s",
    "topic_alias",
    "batch_ms",
    "batch_max",
    "batch_topic",
    "batch_compression",
    "sparkplug_group_id",
    "sparkplug_edge_node_id",
    "sparkplug_primary_host_id",
];

/// Signal columns of the MQTT protocol.
pub const SIGNAL_COLUMNS: &[&str] = &[
    "source_device_alias",
    "source_signal_alias",
    "topic",
    "writable",
    "command_topic",
    "deadband",
    "deadband_percent",
    "max_interval_s",
];

/// An MQTT QoS level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Qos {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl Qos {
    /// From 0, 1 or 2.
    pub fn from_u8(n: u8) -> Option<Self> {
        match n {
            0 => Some(Qos::AtMostOnce),
            1 => Some(Qos::AtLeastOnce),
            2 => Some(Qos::ExactlyOnce),
            _ => None,
        }
    }
    /// 0, 1 or 2.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// An MQTT topic name to publish on: 1 to 65535 bytes, no `+` or `#` wildcards, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Topic(String);

impl Topic {
    /// Validates a topic name.
    pub fn new(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("topic is empty".into());
        }
        if s.len() > 65_535 {
            return Err("topic is longer than 65535 bytes".into());
        }
        if s.contains(['+', '#', '\0']) {
            return Err(format!("topic {s:?} contains a wildcard (+ or #) or NUL"));
        }
        Ok(Self(s.to_owned()))
    }
    /// The default topic of a source tag: the tag key itself.
    pub fn from_tag(key: &TagKey) -> Self {
        Self(key.to_string())
    }
    /// The topic text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// This topic with one more level: `<self>/<level>` (e.g. a command's `result` topic).
    pub fn child(&self, level: &str) -> Result<Self, String> {
        Self::new(&format!("{}/{level}", self.0))
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the publisher authenticates (`auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    Password,
    Tls,
}

impl FromStr for Auth {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Auth::None),
            "password" => Ok(Auth::Password),
            "tls" => Ok(Auth::Tls),
            _ => Err(()),
        }
    }
}

/// The byte transport under MQTT (`transport`); TLS comes from `auth: tls` (tcp+tls = tls,
/// ws+tls = wss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    WebSocket,
}

impl FromStr for Transport {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" | "tls" => Ok(Transport::Tcp),
            "ws" | "wss" | "websocket" => Ok(Transport::WebSocket),
            _ => Err(()),
        }
    }
}

/// The MQTT protocol version (`mqtt_version`: 3.1, 3.1.1, or 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1 (IBM's, before OASIS): CONNECT names the protocol `MQIsdp`, level 3; client
    /// ids are 1 to [`MQTT31_MAX_CLIENT_ID`] bytes. The other packets are 3.1.1's.
    V31,
    V311,
    V5,
}

impl FromStr for MqttVersion {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "3.1" | "31" | "v3.1" | "v31" | "mqisdp" => Ok(MqttVersion::V31),
            "3.1.1" | "311" | "3" | "4" | "v3.1.1" | "v311" => Ok(MqttVersion::V311),
            "5" | "5.0" | "v5" => Ok(MqttVersion::V5),
            _ => Err(()),
        }
    }
}

/// The longest client id MQTT 3.1 allows (its spec: 1 to 23 characters).
pub const MQTT31_MAX_CLIENT_ID: usize = 23;

/// The WebSocket subprotocol asked for (`ws_subprotocol`), the names of Paho's
/// MQTT-over-WebSocket interop page: `mqtt` (MQTT 3.1.1 and 5) and `mqttv3.1` (MQTT 3.1).
/// The broker must answer with the one asked for.
///
/// Pairs: the default follows `mqtt_version` (`mqttv3.1` with 3.1, else `mqtt`). Mixing 3.1
/// with `mqtt` or 3.1.1 with `mqttv3.1` is accepted (mosquitto takes either name for either
/// version, and a proxy in front of a broker may know only one); MQTT 5 with `mqttv3.1` is
/// refused (a 3.1 name for a protocol that did not exist then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsSubprotocol {
    Mqtt,
    MqttV31,
}

impl WsSubprotocol {
    /// The `Sec-WebSocket-Protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            WsSubprotocol::Mqtt => "mqtt",
            WsSubprotocol::MqttV31 => "mqttv3.1",
        }
    }

    /// The natural pair of a protocol version.
    pub fn of(version: MqttVersion) -> Self {
        match version {
            MqttVersion::V31 => WsSubprotocol::MqttV31,
            MqttVersion::V311 | MqttVersion::V5 => WsSubprotocol::Mqtt,
        }
    }
}

impl FromStr for WsSubprotocol {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "mqtt" => Ok(WsSubprotocol::Mqtt),
            "mqttv3.1" => Ok(WsSubprotocol::MqttV31),
            _ => Err(()),
        }
    }
}

/// The payload format (`payload_format`; the formats: docs/payloads.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// `value,timestamp,quality` (the WCC Lite format, the default).
    Csv,
    /// `{"value":..,"ts":..,"quality":..,"flags":[..]}`.
    Json,
    /// Batches on the device's batch topic: a JSON array of `{topic, value, ts, quality}`.
    JsonBatch,
    /// Batches on the device's batch topic: one `topic,value,timestamp,quality` line per value.
    CsvBatch,
    /// A Sparkplug B edge node (settings in [`MqttDevice::sparkplug`]).
    Sparkplug,
}

impl PayloadFormat {
    /// Whether values are gathered into batches ([`BatchSettings`]) rather than published
    /// one per signal topic.
    pub fn is_batch(self) -> bool {
        matches!(self, PayloadFormat::JsonBatch | PayloadFormat::CsvBatch)
    }
}

impl FromStr for PayloadFormat {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(PayloadFormat::Csv),
            "json" => Ok(PayloadFormat::Json),
            "json_batch" => Ok(PayloadFormat::JsonBatch),
            "csv_batch" => Ok(PayloadFormat::CsvBatch),
            "sparkplug" => Ok(PayloadFormat::Sparkplug),
            _ => Err(()),
        }
    }
}

/// `batch_ms`: the longest a value waits in a batch before the batch is published.
pub const BATCH_MS: IntColumn = IntColumn {
    name: "batch_ms",
    min: 1,
    max: 60_000,
    default: Some(1_000),
};

/// `batch_max`: the most values in one batch.
pub const BATCH_MAX: IntColumn = IntColumn {
    name: "batch_max",
    min: 1,
    max: 10_000,
    default: Some(1_000),
};

/// `batch_compression`: how a finished batch payload is compressed (docs/payloads.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchCompression {
    /// The batch as written (the default).
    #[default]
    None,
    /// The zlib format (RFC 1950: a 2-byte header, deflate data, the Adler-32 of the batch).
    Zlib,
}

impl FromStr for BatchCompression {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(BatchCompression::None),
            "zlib" => Ok(BatchCompression::Zlib),
            _ => Err(()),
        }
    }
}

/// How a batch payload format gathers values (`batch_ms`, `batch_max`, `batch_topic`,
/// `batch_compression`); read for every device, used with [`PayloadFormat::is_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSettings {
    /// A batch is published at the latest this long after its first value.
    pub linger: Duration,
    /// A batch is published when it holds this many values.
    pub max_values: u16,
    /// `batch_topic`; None: [`BatchSettings::DEFAULT_TOPIC`] with the device alias.
    pub topic: Option<Topic>,
    /// How a finished batch is compressed.
    pub compression: BatchCompression,
}

impl BatchSettings {
    /// The default batch topic; `<device_alias>` is the MQTT device's alias.
    pub const DEFAULT_TOPIC: &'static str = "fieldbridge/<device_alias>/batch";

    /// The topic the batches of device `alias` are published on.
    pub fn topic_for(&self, alias: &contract::Alias) -> Result<Topic, String> {
        match &self.topic {
            Some(t) => Ok(t.clone()),
            None => Topic::new(&Self::DEFAULT_TOPIC.replace("<device_alias>", alias.as_str())),
        }
    }
}

/// The Sparkplug B edge node of a device with `payload_format: sparkplug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkplugSettings {
    /// `sparkplug_group_id`.
    pub group: sparkplug::Id,
    /// `sparkplug_edge_node_id`.
    pub edge_node: sparkplug::Id,
    /// `sparkplug_primary_host_id`: births wait for this host's STATE online.
    pub primary_host: Option<sparkplug::Id>,
}

/// TLS files of a broker connection (`auth: tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificate(s) (PEM) the broker's certificate is verified against.
    pub ca_certificate: PathBuf,
    /// Client certificate and key (PEM), both or neither.
    pub client_auth: Option<(PathBuf, PathBuf)>,
    /// `tls_insecure`: skip verifying the broker's certificate (logged loudly).
    pub insecure: bool,
}

/// The Last Will the broker publishes when the publisher vanishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: Topic,
    pub message: String,
    pub qos: Qos,
    pub retain: bool,
}

/// A broker the publisher forwards to.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttDevice {
    pub host: String,
    pub port: u16,
    /// `client_id`; when empty the publisher uses `fieldbridge-<hostname>-<device_alias>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub auth: Auth,
    pub tls: Option<TlsConfig>,
    pub qos: Qos,
    pub retain: bool,
    /// Drop a value equal to the last one published for its signal.
    pub enable_threshold: bool,
    pub last_will: Option<LastWill>,
    pub transport: Transport,
    pub ws_path: String,
    pub ws_subprotocol: WsSubprotocol,
    pub version: MqttVersion,
    pub keepalive: Duration,
    pub clean_session: bool,
    pub payload_format: PayloadFormat,
    /// `topic_alias` (MQTT 5 only): publish with Topic Aliases, up to the broker's Topic
    /// Alias Maximum.
    pub topic_alias: bool,
    /// The batch payload formats' settings.
    pub batch: BatchSettings,
    /// Some exactly when `payload_format` is `sparkplug`.
    pub sparkplug: Option<SparkplugSettings>,
    /// `max_inflight` (default 20, mosquitto's `max_inflight_messages`): the most QoS 1/2
    /// publishes awaiting the broker's acknowledgement; with MQTT 5 the broker's Receive
    /// Maximum lowers it further.
    pub max_inflight: u16,
    /// The command path (MQTT -> `out` tags): topics and age/timeout limits.
    pub commands: CommandSettings,
}

/// Device-level settings of MQTT commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSettings {
    /// `command_topic_template` (default `<topic>/set`): the command topic of a writable
    /// signal without a `command_topic`.
    pub topic_template: CommandTopicTemplate,
    /// `command_max_age_ms` (default 10 s): a command older than this is refused.
    pub max_age: Duration,
    /// `command_result_timeout_s` (default 30): how long the client waits for the driver's
    /// result before it answers `timeout`.
    pub timeout: Duration,
}

/// A command topic template: text with at least one of the placeholders `<topic>` (the
/// signal's topic), `<signal_alias>`, `<source_device_alias>`, `<source_signal_alias>`; no
/// wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTopicTemplate(String);

/// The placeholders of a [`CommandTopicTemplate`].
pub const COMMAND_TOPIC_PLACEHOLDERS: [&str; 4] = [
    "<topic>",
    "<signal_alias>",
    "<source_device_alias>",
    "<source_signal_alias>",
];

impl CommandTopicTemplate {
    /// The default, `<topic>/set`.
    pub const DEFAULT: &'static str = "<topic>/set";

    /// Validates a template.
    pub fn new(s: &str) -> Result<Self, String> {
        if !COMMAND_TOPIC_PLACEHOLDERS.iter().any(|p| s.contains(p)) {
            return Err(format!(
                "{s:?} has none of the placeholders {} (every signal needs its own topic)",
                COMMAND_TOPIC_PLACEHOLDERS.join(", ")
            ));
        }
        if s.contains(['+', '#', '\0']) {
            return Err(format!("{s:?} contains a wildcard (+ or #) or NUL"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The command topic of a signal: the placeholders replaced.
    pub fn apply(
        &self,
        topic: &Topic,
        signal_alias: &contract::Alias,
        source: &TagKey,
    ) -> Result<Topic, String> {
        let t = self
            .0
            .replace("<topic>", topic.as_str())
            .replace("<signal_alias>", signal_alias.as_str())
            .replace("<source_device_alias>", source.device.as_str())
            .replace("<source_signal_alias>", source.signal.as_str());
        Topic::new(&t)
    }
}

impl Default for CommandTopicTemplate {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

/// `command_result_timeout_s`: how long the client waits for the driver's result.
pub const COMMAND_RESULT_TIMEOUT_S: IntColumn = IntColumn {
    name: "command_result_timeout_s",
    min: 1,
    max: 600,
    default: Some(30),
};

/// The default of `max_inflight`: mosquitto's default `max_inflight_messages`.
pub const DEFAULT_MAX_INFLIGHT: u16 = 20;

/// A signal forwarded to a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSignal {
    /// The tag read: `tag/<source_device_alias>/<source_signal_alias>/in`.
    pub source: TagKey,
    /// The topic published on (`topic`, default: the source tag's key).
    pub topic: Topic,
    /// `writable` (default 0): commands from MQTT may reach the source signal's `out` tag.
    pub writable: bool,
    /// `command_topic`: the topic commands arrive on; None: the device's
    /// `command_topic_template` applied (the mqtt-client resolves it).
    pub command_topic: Option<Topic>,
    /// `deadband` / `deadband_percent` / `max_interval_s` (see [`crate::report`]).
    pub report: Reporting,
}

/// The MQTT columns of a signal row, before the source reference is checked.
#[derive(Debug, Clone)]
pub(crate) struct SignalColumns {
    topic: Option<Topic>,
    writable: bool,
    command_topic: Option<Topic>,
    report: Reporting,
}

fn qos_from(r: &mut RowReader<'_>, column: &'static str) -> Option<Qos> {
    r.int_or(column, 0, 0, 2)
        .and_then(|n| u8::try_from(n).ok())
        .and_then(Qos::from_u8)
}

fn topic_from(r: &mut RowReader<'_>, column: &'static str) -> Option<Option<Topic>> {
    let Some(s) = r.opt_string(column) else {
        return Some(None);
    };
    match Topic::new(s.trim()) {
        Ok(t) => Some(Some(t)),
        Err(e) => {
            r.error(Some(column), e);
            None
        }
    }
}

pub(crate) fn read_device(r: &mut RowReader<'_>) -> Option<MqttDevice> {
    let host = r.req_string("ip").map(|s| s.trim().to_owned());
    if host
        .as_deref()
        .is_some_and(|h| h.contains(char::is_whitespace))
    {
        r.error(Some("ip"), "a host name or address has no spaces");
    }
    let port = r
        .int_or("port", 1883, 1, 65_535)
        .and_then(|p| u16::try_from(p).ok());
    let client_id = r.opt_string("client_id").map(|s| s.trim().to_owned());
    if client_id.as_deref().is_some_and(|c| c.len() > 65_535) {
        r.error(Some("client_id"), "longer than 65535 bytes");
    }
    let username = r.opt_string("username");
    let password = r.opt_string("password").map(Secret::new);
    let auth = r.parse_or("auth", Auth::None, "none, password or tls");
    let qos = qos_from(r, "mqtt_qos");
    let retain = r.bool_or("mqtt_retain", false);
    let enable_threshold = r.bool_or("enable_threshold", true);
    let use_last_will = r.bool_or("use_last_will", false);
    let lw_topic = topic_from(r, "last_will_topic");
    let lw_message = r.opt_string("last_will_message").unwrap_or_default();
    let lw_qos = qos_from(r, "last_will_qos");
    let lw_retain = r.bool_or("last_will_retain", false);
    let transport = r.parse_or("transport", Transport::Tcp, "tcp or ws");
    let ws_path = r.string_or("ws_path", "/mqtt");
    if !ws_path.starts_with('/') {
        r.error(
            Some("ws_path"),
            format!("{ws_path:?} does not start with '/'"),
        );
    }
    let version = r.parse_or("mqtt_version", MqttVersion::V311, "3.1, 3.1.1 or 5");
    let explicit = r.has("ws_subprotocol");
    let ws_subprotocol = r.parse_or("ws_subprotocol", WsSubprotocol::Mqtt, "mqtt or mqttv3.1");
    let ws_subprotocol = match (explicit, version) {
        (false, Some(v)) => Some(WsSubprotocol::of(v)),
        _ => ws_subprotocol,
    };
    r.computed_default(
        "ws_subprotocol",
        "mqttv3.1 with mqtt_version 3.1, else mqtt",
    );
    if version == Some(MqttVersion::V5) && ws_subprotocol == Some(WsSubprotocol::MqttV31) {
        r.error(
            Some("ws_subprotocol"),
            "mqttv3.1 names MQTT 3.1; MQTT 5 over WebSocket uses mqtt",
        );
    }
    if version == Some(MqttVersion::V31) {
        match client_id.as_deref().filter(|c| !c.is_empty()) {
            None => r.error(
                Some("client_id"),
                format!("required with mqtt_version 3.1: its client ids are 1 to {MQTT31_MAX_CLIENT_ID} bytes, shorter than the default fieldbridge-<hostname>-<device_alias>"),
            ),
            Some(c) if c.len() > MQTT31_MAX_CLIENT_ID => r.error(
                Some("client_id"),
                format!("{} bytes; MQTT 3.1 allows at most {MQTT31_MAX_CLIENT_ID}", c.len()),
            ),
            Some(_) => {}
        }
    }
    let keepalive = r.int_or("keepalive_s", 60, 5, 65_535);
    let clean_session = r.bool_or("clean_session", true);
    let payload_format = r.parse_or(
        "payload_format",
        PayloadFormat::Csv,
        "csv, json, json_batch, csv_batch or sparkplug",
    );
    let topic_alias = r.bool_or("topic_alias", false);
    if topic_alias == Some(true) && version.is_some_and(|v| v != MqttVersion::V5) {
        r.error(
            Some("topic_alias"),
            "topic aliases are an MQTT 5 feature: set mqtt_version to 5",
        );
    }
    let batch_ms = r.int(&BATCH_MS);
    let batch_max = r.int(&BATCH_MAX);
    r.computed_default("batch_topic", BatchSettings::DEFAULT_TOPIC);
    let batch_topic = topic_from(r, "batch_topic");
    let batch_compression = r.parse_or("batch_compression", BatchCompression::None, "none or zlib");
    if batch_compression == Some(BatchCompression::Zlib)
        && payload_format.is_some_and(|f| !f.is_batch())
    {
        r.error(
            Some("batch_compression"),
            "compresses batches: only with payload_format json_batch or csv_batch",
        );
    }
    let insecure = r.bool_or("tls_insecure", false);
    let max_inflight = r
        .int_or("max_inflight", i64::from(DEFAULT_MAX_INFLIGHT), 1, 65_535)
        .and_then(|n| u16::try_from(n).ok());
    r.computed_default("command_topic_template", CommandTopicTemplate::DEFAULT);
    let template = match r.opt_string("command_topic_template") {
        None => Some(CommandTopicTemplate::default()),
        Some(t) => match CommandTopicTemplate::new(t.trim()) {
            Ok(t) => Some(t),
            Err(e) => {
                r.error(Some("command_topic_template"), e);
                None
            }
        },
    };
    let command_max_age = r.int(&COMMAND_MAX_AGE_MS);
    let command_timeout = r.int(&COMMAND_RESULT_TIMEOUT_S);

    let ca = r.opt_string("ca_certificate").map(PathBuf::from);
    let cert = r.opt_string("client_certificate").map(PathBuf::from);
    let key = r.opt_string("client_key").map(PathBuf::from);
    let mut tls = None;
    match auth {
        Some(Auth::Tls) => match &ca {
            None => r.error(Some("ca_certificate"), "required when auth is tls"),
            Some(ca) => {
                let client_auth = match (&cert, &key) {
                    (Some(c), Some(k)) => Some((c.clone(), k.clone())),
                    (None, None) => None,
                    (Some(_), None) => {
                        r.error(Some("client_key"), "required with client_certificate");
                        None
                    }
                    (None, Some(_)) => {
                        r.error(Some("client_certificate"), "required with client_key");
                        None
                    }
                };
                tls = Some(TlsConfig {
                    ca_certificate: ca.clone(),
                    client_auth,
                    insecure: insecure.unwrap_or(false),
                });
            }
        },
        Some(Auth::Password) if username.is_none() => {
            r.error(Some("username"), "required when auth is password");
        }
        _ => {}
    }

    let mut last_will = None;
    if use_last_will == Some(true) {
        match lw_topic.clone().flatten() {
            Some(topic) => {
                last_will = Some(LastWill {
                    topic,
                    message: lw_message,
                    qos: lw_qos.unwrap_or(Qos::AtMostOnce),
                    retain: lw_retain.unwrap_or(false),
                });
            }
            None if lw_topic.is_some() => {
                r.error(Some("last_will_topic"), "required when use_last_will is 1");
            }
            None => {}
        }
    }

    let sparkplug = read_sparkplug(
        r,
        payload_format == Some(PayloadFormat::Sparkplug),
        &SparkplugChecks {
            version,
            clean_session,
            use_last_will,
            qos,
            retain,
            topic_alias,
        },
    );

    let (username, password) = match auth {
        Some(Auth::None) => (None, None),
        _ => (username, password),
    };
    Some(MqttDevice {
        host: host?,
        port: port?,
        client_id: client_id.filter(|c| !c.is_empty()),
        username,
        password,
        auth: auth?,
        tls,
        qos: qos?,
        retain: retain?,
        enable_threshold: enable_threshold?,
        last_will,
        transport: transport?,
        ws_path,
        ws_subprotocol: ws_subprotocol?,
        version: version?,
        keepalive: Duration::from_secs(u64::try_from(keepalive?).ok()?),
        clean_session: clean_session?,
        payload_format: payload_format?,
        topic_alias: topic_alias?,
        batch: BatchSettings {
            linger: Duration::from_millis(u64::try_from(batch_ms?).ok()?),
            max_values: u16::try_from(batch_max?).ok()?,
            topic: batch_topic?,
            compression: batch_compression?,
        },
        sparkplug: sparkplug?,
        max_inflight: max_inflight?,
        commands: CommandSettings {
            topic_template: template?,
            max_age: Duration::from_millis(u64::try_from(command_max_age?).ok()?),
            timeout: Duration::from_secs(u64::try_from(command_timeout?).ok()?),
        },
    })
    .filter(|_| {
        lw_qos.is_some() && lw_retain.is_some() && use_last_will.is_some() && insecure.is_some()
    })
}

/// What a Sparkplug device row must also satisfy: the other columns it depends on.
struct SparkplugChecks {
    version: Option<MqttVersion>,
    clean_session: Option<bool>,
    use_last_will: Option<bool>,
    qos: Option<Qos>,
    retain: Option<bool>,
    topic_alias: Option<bool>,
}

/// The Sparkplug columns: ids required and valid with `payload_format: sparkplug` (and the
/// rules Sparkplug 3.0 puts on the connection), refused without it. `Some(None)`: not a
/// Sparkplug device.
fn read_sparkplug(
    r: &mut RowReader<'_>,
    enabled: bool,
    c: &SparkplugChecks,
) -> Option<Option<SparkplugSettings>> {
    let id = |r: &mut RowReader<'_>, column: &'static str| -> Option<Option<sparkplug::Id>> {
        let text = r.opt_string(column).map(|s| s.trim().to_owned());
        match text.map(|t| sparkplug::Id::new(&t)) {
            None => Some(None),
            Some(_) if !enabled => {
                r.error(Some(column), "only with payload_format: sparkplug");
                None
            }
            Some(Ok(id)) => Some(Some(id)),
            Some(Err(e)) => {
                r.error(Some(column), e.to_string());
                None
            }
        }
    };
    let group = id(r, "sparkplug_group_id");
    let edge_node = id(r, "sparkplug_edge_node_id");
    let primary_host = id(r, "sparkplug_primary_host_id");
    if !enabled {
        return group.and(edge_node).and(primary_host).map(|_| None);
    }
    let mut ok = true;
    let mut refuse = |r: &mut RowReader<'_>, column: &str, why: &str| {
        r.error(Some(column), format!("payload_format sparkplug: {why}"));
        ok = false;
    };
    if c.version
        .is_some_and(|v| !matches!(v, MqttVersion::V311 | MqttVersion::V5))
    {
        refuse(r, "mqtt_version", "needs MQTT 3.1.1 or 5");
    }
    if c.clean_session == Some(false) {
        refuse(
            r,
            "clean_session",
            "Sparkplug 3.0 requires a clean session (Clean Start with MQTT 5)",
        );
    }
    if c.use_last_will == Some(true) {
        refuse(
            r,
            "use_last_will",
            "the Last Will is the NDEATH; leave use_last_will 0",
        );
    }
    if c.qos.is_some_and(|q| q != Qos::AtMostOnce) {
        refuse(
            r,
            "mqtt_qos",
            "births and data are QoS 0 by the specification; leave mqtt_qos 0",
        );
    }
    if c.topic_alias == Some(true) {
        refuse(
            r,
            "topic_alias",
            "Sparkplug DATA messages carry metric aliases already; leave topic_alias 0",
        );
    }
    if c.retain == Some(true) {
        refuse(
            r,
            "mqtt_retain",
            "an edge node retains nothing; leave mqtt_retain 0",
        );
    }
    for (column, value) in [
        ("sparkplug_group_id", &group),
        ("sparkplug_edge_node_id", &edge_node),
    ] {
        if matches!(value, Some(None)) {
            refuse(r, column, "required");
        }
    }
    match (group.flatten(), edge_node.flatten(), primary_host) {
        (Some(group), Some(edge_node), Some(primary_host)) if ok => Some(Some(SparkplugSettings {
            group,
            edge_node,
            primary_host,
        })),
        _ => None,
    }
}

/// Reads the MQTT columns of a signal row; the source reference is checked by the caller.
pub(crate) fn read_signal(
    r: &mut RowReader<'_>,
) -> Option<(contract::Alias, contract::Alias, SignalColumns)> {
    let dev = r.req_alias("source_device_alias");
    let sig = r.req_alias("source_signal_alias");
    let topic = topic_from(r, "topic");
    r.computed_default("topic", "the source tag's key");
    let writable = r.bool_or("writable", false);
    let command_topic = topic_from(r, "command_topic");
    let report = crate::report::read(r);
    Some((
        dev?,
        sig?,
        SignalColumns {
            topic: topic?,
            writable: writable?,
            command_topic: command_topic?,
            report: report?,
        },
    ))
}

/// Builds the signal once the source is known to exist.
pub(crate) fn make_signal(
    dev: contract::Alias,
    sig: contract::Alias,
    columns: SignalColumns,
) -> MqttSignal {
    let source = TagKey::new(dev, sig, Direction::In);
    let topic = columns.topic.unwrap_or_else(|| Topic::from_tag(&source));
    MqttSignal {
        source,
        topic,
        writable: columns.writable,
        command_topic: columns.command_topic,
        report: columns.report,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::{validate, Applet, RawConfig, SignalKind};

    /// The MQTT device `alias` of a validated config.
    fn mqtt_device(config: &crate::Config, alias: &str) -> MqttDevice {
        match &config
            .devices
            .iter()
            .find(|d| d.alias.as_str() == alias)
            .unwrap()
            .kind
        {
            crate::DeviceKind::Mqtt(m) => m.clone(),
            _ => unreachable!(),
        }
    }

    /// The columns of the mqtt-client's errors of a config, and the errors printed.
    fn error_columns(text: &str) -> (Vec<String>, String) {
        let v = validate(&RawConfig::parse(text).unwrap());
        let errors = v.errors_for(Applet::MqttClient);
        let cols = errors
            .iter()
            .map(|e| e.path.column.clone().unwrap_or_default())
            .collect();
        (cols, format!("{errors:?}"))
    }

    #[test]
    fn command_columns() {
        let text = r#"{"devices": [
            {"name": "R", "device_alias": "r", "protocol": "iec104-master", "ip": "h", "asdu_address": 1},
            {"name": "C", "device_alias": "c", "protocol": "mqtt", "ip": "b",
             "command_topic_template": "cmd/<signal_alias>", "command_max_age_ms": 5000, "command_result_timeout_s": 3},
            {"name": "D", "device_alias": "d", "protocol": "mqtt", "ip": "b"}
        ], "signals": [
            {"signal_name": "x", "device_alias": "r", "signal_alias": "x", "info_address": 1, "type_id": "C_SC_NA_1"},
            {"signal_name": "x", "device_alias": "c", "signal_alias": "x", "source_device_alias": "r", "source_signal_alias": "x", "writable": 1, "command_topic": "a/b"},
            {"signal_name": "x", "device_alias": "d", "signal_alias": "x", "source_device_alias": "r", "source_signal_alias": "x"}
        ]}"#;
        let v = validate(&RawConfig::parse(text).unwrap());
        assert!(v.errors.is_empty() && v.warnings.is_empty(), "{v:?}");
        let dev = |a: &str| mqtt_device(&v.config, a);
        let c = dev("c").commands;
        assert_eq!(c.topic_template.as_str(), "cmd/<signal_alias>");
        assert_eq!((c.max_age.as_secs(), c.timeout.as_secs()), (5, 3));
        let d = dev("d").commands;
        assert_eq!(d.topic_template.as_str(), "<topic>/set");
        assert_eq!((d.max_age.as_secs(), d.timeout.as_secs()), (10, 30));
        let sigs: Vec<&MqttSignal> = v
            .config
            .signals
            .iter()
            .filter_map(|s| match &s.kind {
                SignalKind::Mqtt(m) => Some(&**m),
                _ => None,
            })
            .collect();
        assert!(sigs[0].writable);
        assert_eq!(sigs[0].command_topic.as_ref().unwrap().as_str(), "a/b");
        assert!(!sigs[1].writable && sigs[1].command_topic.is_none());
        let t = CommandTopicTemplate::default()
            .apply(&sigs[1].topic, &"x".parse().unwrap(), &sigs[1].source)
            .unwrap();
        assert_eq!(t.as_str(), "tag/r/x/in/set");

        let bad = text
            .replace("cmd/<signal_alias>", "cmd/fixed")
            .replace(r#""writable": 1"#, r#""writable": 7"#)
            .replace(r#""command_topic": "a/b""#, r#""command_topic": "a/+""#);
        let (cols, errors) = error_columns(&bad);
        assert_eq!(
            cols,
            ["command_topic_template", "writable", "command_topic"],
            "{errors}"
        );
    }

    #[test]
    fn uplink_columns() {
        let text = r#"{"devices": [
            {"name": "R", "device_alias": "r", "protocol": "iec104-master", "ip": "h", "asdu_address": 1},
            {"name": "C", "device_alias": "c", "protocol": "mqtt", "ip": "b", "mqtt_version": "5",
             "topic_alias": 1, "payload_format": "csv_batch", "batch_ms": 250, "batch_max": 50,
             "batch_compression": "zlib"},
            {"name": "D", "device_alias": "d", "protocol": "mqtt", "ip": "b", "payload_format": "json_batch",
             "batch_topic": "site/7/values"},
            {"name": "E", "device_alias": "e", "protocol": "mqtt", "ip": "b", "batch_compression": "none"}
        ], "signals": []}"#;
        let v = validate(&RawConfig::parse(text).unwrap());
        assert!(v.errors.is_empty(), "{v:?}");
        let dev = |a: &str| mqtt_device(&v.config, a);
        let c = dev("c");
        assert!(c.topic_alias && c.payload_format == PayloadFormat::CsvBatch);
        assert_eq!((c.batch.linger.as_millis(), c.batch.max_values), (250, 50));
        assert_eq!(c.batch.compression, BatchCompression::Zlib);
        assert_eq!(
            c.batch.topic_for(&"c".parse().unwrap()).unwrap().as_str(),
            "fieldbridge/c/batch"
        );
        let d = dev("d");
        assert!(!d.topic_alias && d.payload_format.is_batch());
        assert_eq!(
            (d.batch.linger.as_millis(), d.batch.max_values),
            (1000, 1000)
        );
        assert_eq!(d.batch.compression, BatchCompression::None);
        assert_eq!(
            d.batch.topic_for(&"d".parse().unwrap()).unwrap().as_str(),
            "site/7/values"
        );

        // topic aliases need MQTT 5; the batch ranges are checked; compression needs a
        // batch format and a known name
        let bad = text
            .replace(r#""mqtt_version": "5","#, "")
            .replace(r#""batch_ms": 250"#, r#""batch_ms": 0"#)
            .replace(r#""batch_max": 50"#, r#""batch_max": 10001"#)
            .replace(r#""zlib""#, r#""gzip""#)
            .replace("site/7/values", "site/+/values")
            .replace(
                r#""batch_compression": "none""#,
                r#""batch_compression": "zlib""#,
            );
        let (cols, errors) = error_columns(&bad);
        assert_eq!(
            cols,
            [
                "topic_alias",
                "batch_ms",
                "batch_max",
                "batch_compression",
                "batch_topic",
                "batch_compression"
            ],
            "{errors}"
        );
        assert!(errors.contains("none or zlib") && errors.contains("json_batch or csv_batch"));
    }

    #[test]
    fn mqtt31_and_websocket_subprotocol_pairs() {
        let device = |cells: &str| {
            format!(
                r#"{{"devices": [{{"name": "C", "device_alias": "c", "protocol": "mqtt", "ip": "b", "transport": "ws"{cells}}}], "signals": []}}"#
            )
        };
        let ok = |cells: &str| {
            let v = validate(&RawConfig::parse(&device(cells)).unwrap());
            assert!(v.errors.is_empty(), "{cells}: {:?}", v.errors);
            match &v.config.devices[0].kind {
                crate::DeviceKind::Mqtt(m) => (m.version, m.ws_subprotocol),
                _ => unreachable!(),
            }
        };
        use MqttVersion::*;
        use WsSubprotocol::*;
        assert_eq!(ok(""), (V311, Mqtt));
        assert_eq!(
            ok(r#", "mqtt_version": "3.1", "client_id": "gw1""#),
            (V31, MqttV31)
        );
        assert_eq!(
            ok(r#", "mqtt_version": 3.1, "client_id": "12345678901234567890123""#),
            (V31, MqttV31),
            "a number cell, and 23 bytes"
        );
        // Mixing is accepted (mosquitto takes either name for either version).
        assert_eq!(
            ok(r#", "mqtt_version": "3.1", "client_id": "gw1", "ws_subprotocol": "mqtt""#),
            (V31, Mqtt)
        );
        assert_eq!(ok(r#", "ws_subprotocol": "mqttv3.1""#), (V311, MqttV31));
        assert_eq!(ok(r#", "mqtt_version": 5"#), (V5, Mqtt));

        for (cells, column, message) in [
            (
                r#", "mqtt_version": 5, "ws_subprotocol": "mqttv3.1""#,
                "ws_subprotocol",
                "mqttv3.1 names MQTT 3.1; MQTT 5 over WebSocket uses mqtt",
            ),
            (
                r#", "ws_subprotocol": "mqttv5""#,
                "ws_subprotocol",
                "expected mqtt or mqttv3.1, got \"mqttv5\"",
            ),
            (
                r#", "mqtt_version": "3.1""#,
                "client_id",
                "required with mqtt_version 3.1",
            ),
            (
                r#", "mqtt_version": "3.1", "client_id": "123456789012345678901234""#,
                "client_id",
                "24 bytes; MQTT 3.1 allows at most 23",
            ),
            (
                r#", "mqtt_version": "3.2""#,
                "mqtt_version",
                "expected 3.1, 3.1.1 or 5",
            ),
        ] {
            let v = validate(&RawConfig::parse(&device(cells)).unwrap());
            assert_eq!(v.errors.len(), 1, "{cells}: {:?}", v.errors);
            let e = &v.errors[0];
            assert_eq!(e.path.column.as_deref(), Some(column), "{cells}");
            assert!(e.message.contains(message), "{cells}: {}", e.message);
        }
    }
}

#[cfg(test)]
mod sparkplug_tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::{validate, Applet, RawConfig};

    fn errors(device: &str) -> (Vec<String>, Option<MqttDevice>) {
        let text = format!(
            r#"{{"devices": [{{"name": "C", "device_alias": "c", "protocol": "mqtt", "ip": "b" {device}}}], "signals": []}}"#
        );
        let v = validate(&RawConfig::parse(&text).unwrap());
        let cols = v
            .errors_for(Applet::MqttClient)
            .iter()
            .map(|e| e.path.column.clone().unwrap_or_default())
            .collect();
        let dev = v.config.devices.first().and_then(|d| match &d.kind {
            crate::DeviceKind::Mqtt(m) => Some(m.clone()),
            _ => None,
        });
        (cols, dev)
    }

    #[test]
    fn sparkplug_columns() {
        let (cols, dev) = errors(
            r#", "payload_format": "sparkplug", "sparkplug_group_id": "plant", "sparkplug_edge_node_id": "gw 1", "sparkplug_primary_host_id": "scada""#,
        );
        assert!(cols.is_empty(), "{cols:?}");
        let s = dev.unwrap().sparkplug.unwrap();
        assert_eq!((s.group.as_str(), s.edge_node.as_str()), ("plant", "gw 1"));
        assert_eq!(s.primary_host.unwrap().as_str(), "scada");

        let (cols, _) = errors(
            r#", "payload_format": "sparkplug", "sparkplug_group_id": "a/b", "sparkplug_primary_host_id": "x+""#,
        );
        assert_eq!(
            cols,
            [
                "sparkplug_group_id",
                "sparkplug_primary_host_id",
                "sparkplug_edge_node_id"
            ]
        );
        let (cols, _) = errors(
            r#", "payload_format": "sparkplug", "sparkplug_group_id": "g", "sparkplug_edge_node_id": "e",
               "clean_session": 0, "use_last_will": 1, "last_will_topic": "lw", "mqtt_qos": 1, "mqtt_retain": 1"#,
        );
        assert_eq!(
            cols,
            ["clean_session", "use_last_will", "mqtt_qos", "mqtt_retain"]
        );
        let (cols, dev) = errors(r#", "sparkplug_group_id": "g""#);
        assert_eq!(cols, ["sparkplug_group_id"]);
        assert!(dev.is_none());
        let (cols, dev) = errors("");
        assert!(cols.is_empty());
        assert!(dev.unwrap().sparkplug.is_none());
    }
}
