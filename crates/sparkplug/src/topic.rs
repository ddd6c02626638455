//! Sparkplug B topics: `spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]` and
//! the primary host's `spBv1.0/STATE/<host_id>`.

use std::fmt;

/// The namespace of every Sparkplug B topic.
pub const NAMESPACE: &str = "spBv1.0";

/// The metric of the node's birth/death certificate sequence.
pub const BD_SEQ: &str = "bdSeq";
/// The node control metric a host writes `true` to for a rebirth.
pub const NODE_CONTROL_REBIRTH: &str = "Node Control/Rebirth";

/// A group, edge node, device or host id: non-empty UTF-8 without `/`, `+` or `#` (they
/// separate topic levels or are MQTT wildcards), validated when built.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(String);

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("a Sparkplug id is empty")]
    Empty,
    #[error("Sparkplug id {0:?} contains '/', '+' or '#'")]
    Reserved(String),
}

impl Id {
    /// Validates an id.
    pub fn new(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.contains(['/', '+', '#']) {
            return Err(IdError::Reserved(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Id {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

/// The message types of an edge node's topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    NBirth,
    NDeath,
    DBirth,
    DDeath,
    NData,
    DData,
    NCmd,
    DCmd,
}

impl MessageType {
    /// The topic level.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::NData => "NDATA",
            MessageType::DData => "DDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DCmd => "DCMD",
        }
    }
    /// Whether the topic names a device (`D*`).
    pub fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        )
    }
    fn parse(s: &str) -> Option<Self> {
        use MessageType::*;
        [NBirth, NDeath, DBirth, DDeath, NData, DData, NCmd, DCmd]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// The topic of an edge node's message: a node message (`device` None) or a device message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    pub group: Id,
    pub kind: MessageType,
    pub edge_node: Id,
    /// Some exactly for the `D*` types.
    pub device: Option<Id>,
}

impl Topic {
    /// A node topic: `spBv1.0/<group>/<kind>/<edge_node>` (`kind` an `N*` type).
    pub fn node(group: &Id, kind: MessageType, edge_node: &Id) -> Self {
        Self {
            group: group.clone(),
            kind,
            edge_node: edge_node.clone(),
            device: None,
        }
    }
    /// A device topic: `spBv1.0/<group>/<kind>/<edge_node>/<device>` (`kind` a `D*` type).
    pub fn device(group: &Id, kind: MessageType, edge_node: &Id, device: &Id) -> Self {
        Self {
            group: group.clone(),
            kind,
            edge_node: edge_node.clone(),
            device: Some(device.clone()),
        }
    }
    /// Parses an edge node topic; `None` for anything else (STATE included).
    pub fn parse(s: &str) -> Option<Self> {
        let mut levels = s.split('/');
        if levels.next()? != NAMESPACE {
            return None;
        }
        let group = Id::new(levels.next()?).ok()?;
        let kind = MessageType::parse(levels.next()?)?;
        let edge_node = Id::new(levels.next()?).ok()?;
        let device = levels.next().map(Id::new).transpose().ok()?;
        if levels.next().is_some() || device.is_some() != kind.is_device() {
            return None;
        }
        Some(Self {
            group,
            kind,
            edge_node,
            device,
        })
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{NAMESPACE}/{}/{}/{}",
            self.group,
            self.kind.as_str(),
            self.edge_node
        )?;
        if let Some(d) = &self.device {
            write!(f, "/{d}")?;
        }
        Ok(())
    }
}

/// The primary host application's state topic: `spBv1.0/STATE/<host_id>` (Sparkplug 3.0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateTopic(pub Id);

impl fmt::Display for StateTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{NAMESPACE}/STATE/{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    #[test]
    fn topics_render_and_parse() {
        let (g, e, d) = (id("plant"), id("gw1"), id("rtu1"));
        let t = Topic::node(&g, MessageType::NBirth, &e);
        assert_eq!(t.to_string(), "spBv1.0/plant/NBIRTH/gw1");
        assert_eq!(Topic::parse("spBv1.0/plant/NBIRTH/gw1"), Some(t));
        let t = Topic::device(&g, MessageType::DCmd, &e, &d);
        assert_eq!(t.to_string(), "spBv1.0/plant/DCMD/gw1/rtu1");
        assert_eq!(Topic::parse("spBv1.0/plant/DCMD/gw1/rtu1"), Some(t));
        assert_eq!(StateTopic(id("scada")).to_string(), "spBv1.0/STATE/scada");
        for bad in [
            "spBv1.0/plant/DCMD/gw1",
            "spBv1.0/plant/NCMD/gw1/rtu1",
            "spBv1.0/plant/XCMD/gw1",
            "spAv1.0/plant/NCMD/gw1",
            "spBv1.0/plant/DCMD/gw1/rtu1/x",
            "spBv1.0/STATE/scada",
            "spBv1.0//NCMD/gw1",
        ] {
            assert_eq!(Topic::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_refuse_separators_and_wildcards() {
        assert_eq!(Id::new(""), Err(IdError::Empty));
        for bad in ["a/b", "a+", "#"] {
            assert!(matches!(Id::new(bad), Err(IdError::Reserved(_))), "{bad}");
        }
        assert_eq!(id("Line 1.ü").as_str(), "Line 1.ü");
    }
}
