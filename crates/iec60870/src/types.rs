//! Protocol primitives: type identification, cause of transmission, addresses, qualities, sizes.

use std::fmt;

macro_rules! type_ids {
    ($( $(#[$m:meta])* $name:ident = $val:expr ),* $(,)?) => {
        /// Type identification (the first octet of the ASDU).
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum TypeId {
            $( $(#[$m])* $name = $val, )*
        }

        impl TypeId {
            /// Every type identification this crate encodes and decodes.
            pub const ALL: &'static [TypeId] = &[ $( TypeId::$name, )* ];

            /// Parses a type identification octet; `None` for types this crate does not know.
            pub fn from_u8(v: u8) -> Option<Self> {
                match v {
                    $( $val => Some(TypeId::$name), )*
                    _ => None,
                }
            }

            /// The standard mnemonic, e.g. `M_SP_NA_1`.
            pub fn name(self) -> &'static str {
                match self {
                    $( TypeId::$name => stringify!($name), )*
                }
            }
        }
    };
}

type_ids! {
    /// Single-point information.
    M_SP_NA_1 = 1,
    /// Single-point information with CP24 time tag.
    M_SP_TA_1 = 2,
    /// Double-point information.
    M_DP_NA_1 = 3,
    /// Double-point information with CP24 time tag.
    M_DP_TA_1 = 4,
    /// Step position information.
    M_ST_NA_1 = 5,
    /// Step position information with CP24 time tag.
    M_ST_TA_1 = 6,
    /// Bitstring of 32 bits.
    M_BO_NA_1 = 7,
    /// Bitstring of 32 bits with CP24 time tag.
    M_BO_TA_1 = 8,
    /// Measured value, normalised.
    M_ME_NA_1 = 9,
    /// Measured value, normalised, with CP24 time tag.
    M_ME_TA_1 = 10,
    /// Measured value, scaled.
    M_ME_NB_1 = 11,
    /// Measured value, scaled, with CP24 time tag.
    M_ME_TB_1 = 12,
    /// Measured value, short floating point.
    M_ME_NC_1 = 13,
    /// Measured value, short floating point, with CP24 time tag.
    M_ME_TC_1 = 14,
    /// Integrated totals.
    M_IT_NA_1 = 15,
    /// Integrated totals with CP24 time tag.
    M_IT_TA_1 = 16,
    /// Event of protection equipment with CP24 time tag.
    M_EP_TA_1 = 17,
    /// Packed start events of protection equipment with CP24 time tag.
    M_EP_TB_1 = 18,
    /// Packed output circuit information of protection equipment with CP24 time tag.
    M_EP_TC_1 = 19,
    /// Packed single-point information with status change detection.
    M_PS_NA_1 = 20,
    /// Measured value, normalised, without quality descriptor.
    M_ME_ND_1 = 21,
    /// Single-point information with CP56 time tag.
    M_SP_TB_1 = 30,
    /// Double-point information with CP56 time tag.
    M_DP_TB_1 = 31,
    /// Step position information with CP56 time tag.
    M_ST_TB_1 = 32,
    /// Bitstring of 32 bits with CP56 time tag.
    M_BO_TB_1 = 33,
    /// Measured value, normalised, with CP56 time tag.
    M_ME_TD_1 = 34,
    /// Measured value, scaled, with CP56 time tag.
    M_ME_TE_1 = 35,
    /// Measured value, short floating point, with CP56 time tag.
    M_ME_TF_1 = 36,
    /// Integrated totals with CP56 time tag.
    M_IT_TB_1 = 37,
    /// Event of protection equipment with CP56 time tag.
    M_EP_TD_1 = 38,
    /// Packed start events of protection equipment with CP56 time tag.
    M_EP_TE_1 = 39,
    /// Packed output circuit information of protection equipment with CP56 time tag.
    M_EP_TF_1 = 40,
    /// Single command.
    C_SC_NA_1 = 45,
    /// Double command.
    C_DC_NA_1 = 46,
    /// Regulating step command.
    C_RC_NA_1 = 47,
    /// Set-point command, normalised value.
    C_SE_NA_1 = 48,
    /// Set-point command, scaled value.
    C_SE_NB_1 = 49,
    /// Set-point command, short floating point value.
    C_SE_NC_1 = 50,
    /// Bitstring of 32 bits command.
    C_BO_NA_1 = 51,
    /// Single command with CP56 time tag.
    C_SC_TA_1 = 58,
    /// Double command with CP56 time tag.
    C_DC_TA_1 = 59,
    /// Regulating step command with CP56 time tag.
    C_RC_TA_1 = 60,
    /// Set-point command, normalised value, with CP56 time tag.
    C_SE_TA_1 = 61,
    /// Set-point command, scaled value, with CP56 time tag.
    C_SE_TB_1 = 62,
    /// Set-point command, short floating point value, with CP56 time tag.
    C_SE_TC_1 = 63,
    /// Bitstring of 32 bits command with CP56 time tag.
    C_BO_TA_1 = 64,
    /// End of initialisation.
    M_EI_NA_1 = 70,
    /// Interrogation command.
    C_IC_NA_1 = 100,
    /// Counter interrogation command.
    C_CI_NA_1 = 101,
    /// Read command.
    C_RD_NA_1 = 102,
    /// Clock synchronisation command.
    C_CS_NA_1 = 103,
    /// Test command.
    C_TS_NA_1 = 104,
    /// Reset process command.
    C_RP_NA_1 = 105,
    /// Delay acquisition command.
    C_CD_NA_1 = 106,
    /// Test command with CP56 time tag.
    C_TS_TA_1 = 107,
    /// Parameter of measured value, normalised.
    P_ME_NA_1 = 110,
    /// Parameter of measured value, scaled.
    P_ME_NB_1 = 111,
    /// Parameter of measured value, short floating point.
    P_ME_NC_1 = 112,
    /// Parameter activation.
    P_AC_NA_1 = 113,
}

/// Which time tag an object of a type carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTagKind {
    /// No time tag.
    None,
    /// CP24Time2a (three octets).
    Cp24,
    /// CP56Time2a (seven octets).
    Cp56,
}

impl TypeId {
    /// The time tag carried by every object of this type.
    pub fn time_tag(self) -> TimeTagKind {
        use TypeId::*;
        match self {
            M_SP_TA_1 | M_DP_TA_1 | M_ST_TA_1 | M_BO_TA_1 | M_ME_TA_1 | M_ME_TB_1 | M_ME_TC_1
            | M_IT_TA_1 | M_EP_TA_1 | M_EP_TB_1 | M_EP_TC_1 => TimeTagKind::Cp24,
            M_SP_TB_1 | M_DP_TB_1 | M_ST_TB_1 | M_BO_TB_1 | M_ME_TD_1 | M_ME_TE_1 | M_ME_TF_1
            | M_IT_TB_1 | M_EP_TD_1 | M_EP_TE_1 | M_EP_TF_1 | C_SC_TA_1 | C_DC_TA_1 | C_RC_TA_1
            | C_SE_TA_1 | C_SE_TB_1 | C_SE_TC_1 | C_BO_TA_1 | C_TS_TA_1 => TimeTagKind::Cp56,
            _ => TimeTagKind::None,
        }
    }

    /// True for process information in the monitor direction (1-40).
    pub fn is_monitor(self) -> bool {
        (self as u8) <= 40
    }

    /// True for process commands (45-64).
    pub fn is_command(self) -> bool {
        (45..=64).contains(&(self as u8))
    }

    /// True for set-point commands (48-50, 61-63).
    pub fn is_setpoint(self) -> bool {
        use TypeId::*;
        matches!(
            self,
            C_SE_NA_1 | C_SE_NB_1 | C_SE_NC_1 | C_SE_TA_1 | C_SE_TB_1 | C_SE_TC_1
        )
    }

    /// True for parameters (110-113).
    pub fn is_parameter(self) -> bool {
        (110..=113).contains(&(self as u8))
    }

    /// The CP56 time-tagged form of an untagged monitor or command type (e.g. `M_SP_NA_1` ->
    /// `M_SP_TB_1`, `C_SC_NA_1` -> `C_SC_TA_1`); time-tagged types map to their CP56 form.
    pub fn with_cp56(self) -> Option<Self> {
        use TypeId::*;
        Some(match self.without_time() {
            M_SP_NA_1 => M_SP_TB_1,
            M_DP_NA_1 => M_DP_TB_1,
            M_ST_NA_1 => M_ST_TB_1,
            M_BO_NA_1 => M_BO_TB_1,
            M_ME_NA_1 => M_ME_TD_1,
            M_ME_NB_1 => M_ME_TE_1,
            M_ME_NC_1 => M_ME_TF_1,
            M_IT_NA_1 => M_IT_TB_1,
            M_EP_TA_1 | M_EP_TD_1 => M_EP_TD_1,
            M_EP_TB_1 | M_EP_TE_1 => M_EP_TE_1,
            M_EP_TC_1 | M_EP_TF_1 => M_EP_TF_1,
            C_SC_NA_1 => C_SC_TA_1,
            C_DC_NA_1 => C_DC_TA_1,
            C_RC_NA_1 => C_RC_TA_1,
            C_SE_NA_1 => C_SE_TA_1,
            C_SE_NB_1 => C_SE_TB_1,
            C_SE_NC_1 => C_SE_TC_1,
            C_BO_NA_1 => C_BO_TA_1,
            _ => return None,
        })
    }

    /// The same information without a time tag (e.g. `M_SP_TB_1` -> `M_SP_NA_1`), as sent in
    /// an interrogation answer. Protection events keep their type (they have no untagged form).
    pub fn without_time(self) -> Self {
        use TypeId::*;
        match self {
            M_SP_TA_1 | M_SP_TB_1 => M_SP_NA_1,
            M_DP_TA_1 | M_DP_TB_1 => M_DP_NA_1,
            M_ST_TA_1 | M_ST_TB_1 => M_ST_NA_1,
            M_BO_TA_1 | M_BO_TB_1 => M_BO_NA_1,
            M_ME_TA_1 | M_ME_TD_1 => M_ME_NA_1,
            M_ME_TB_1 | M_ME_TE_1 => M_ME_NB_1,
            M_ME_TC_1 | M_ME_TF_1 => M_ME_NC_1,
            M_IT_TA_1 | M_IT_TB_1 => M_IT_NA_1,
            C_SC_TA_1 => C_SC_NA_1,
            C_DC_TA_1 => C_DC_NA_1,
            C_RC_TA_1 => C_RC_NA_1,
            C_SE_TA_1 => C_SE_NA_1,
            C_SE_TB_1 => C_SE_NB_1,
            C_SE_TC_1 => C_SE_NC_1,
            C_BO_TA_1 => C_BO_NA_1,
            other => other,
        }
    }
}

impl TypeId {
    /// The largest qualifier of a command type: QU (5 bits, 0-31) of single, double and
    /// regulating step commands, QL (7 bits, 0-127) of set-points; `None` for types without
    /// one (bitstring commands, non-commands).
    pub fn max_qualifier(self) -> Option<u8> {
        use TypeId::*;
        match self.without_time() {
            C_SC_NA_1 | C_DC_NA_1 | C_RC_NA_1 => Some(31),
            C_SE_NA_1 | C_SE_NB_1 | C_SE_NC_1 => Some(127),
            _ => None,
        }
    }

    /// Fails when `qualifier` does not fit the type's qualifier field (any but 0 for a type
    /// without one).
    pub fn check_qualifier(self, qualifier: u8) -> Result<(), BadQualifier> {
        match self.max_qualifier() {
            Some(max) if qualifier > max => Err(BadQualifier {
                type_id: self,
                qualifier,
                max: Some(max),
            }),
            None if qualifier != 0 => Err(BadQualifier {
                type_id: self,
                qualifier,
                max: None,
            }),
            _ => Ok(()),
        }
    }

    /// True for the command types with an S/E (select/execute) bit: every process command
    /// but the bitstring command.
    pub fn has_select(self) -> bool {
        self.is_command() && self.without_time() != TypeId::C_BO_NA_1
    }
}

/// A command qualifier (QU/QL) that does not fit its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadQualifier {
    /// The type.
    pub type_id: TypeId,
    /// The qualifier.
    pub qualifier: u8,
    /// The largest the type takes (`None`: it has no qualifier).
    pub max: Option<u8>,
}

impl fmt::Display for BadQualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) => write!(
                f,
                "{} is out of range 0..={max} for {}",
                self.qualifier,
                self.type_id.name()
            ),
            None => write!(f, "{} has no qualifier: 0 or empty", self.type_id.name()),
        }
    }
}

impl std::error::Error for BadQualifier {}

/// A text that is no type identification this crate knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTypeId;

impl std::str::FromStr for TypeId {
    type Err = UnknownTypeId;

    /// The mnemonic (`M_ME_NC_1`, case-insensitive) or the number (`13`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u8>() {
            return TypeId::from_u8(n).ok_or(UnknownTypeId);
        }
        TypeId::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or(UnknownTypeId)
    }
}

impl fmt::Display for TypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), *self as u8)
    }
}

/// Cause of transmission (six bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cause(u8);

impl Cause {
    /// Periodic, cyclic.
    pub const PERIODIC: Cause = Cause(1);
    /// Background scan.
    pub const BACKGROUND: Cause = Cause(2);
    /// Spontaneous.
    pub const SPONTANEOUS: Cause = Cause(3);
    /// Initialised.
    pub const INITIALIZED: Cause = Cause(4);
    /// Request or requested.
    pub const REQUEST: Cause = Cause(5);
    /// Activation.
    pub const ACTIVATION: Cause = Cause(6);
    /// Activation confirmation.
    pub const ACTIVATION_CON: Cause = Cause(7);
    /// Deactivation.
    pub const DEACTIVATION: Cause = Cause(8);
    /// Deactivation confirmation.
    pub const DEACTIVATION_CON: Cause = Cause(9);
    /// Activation termination.
    pub const ACTIVATION_TERMINATION: Cause = Cause(10);
    /// Return information caused by a remote command.
    pub const RETURN_REMOTE: Cause = Cause(11);
    /// Return information caused by a local command.
    pub const RETURN_LOCAL: Cause = Cause(12);
    /// File transfer.
    pub const FILE_TRANSFER: Cause = Cause(13);
    /// Interrogated by station interrogation.
    pub const INTERROGATED_BY_STATION: Cause = Cause(20);
    /// Requested by general counter request.
    pub const REQUESTED_BY_GENERAL_COUNTER: Cause = Cause(37);
    /// Unknown type identification.
    pub const UNKNOWN_TYPE_ID: Cause = Cause(44);
    /// Unknown cause of transmission.
    pub const UNKNOWN_CAUSE: Cause = Cause(45);
    /// Unknown common address of ASDU.
    pub const UNKNOWN_COMMON_ADDRESS: Cause = Cause(46);
    /// Unknown information object address.
    pub const UNKNOWN_IOA: Cause = Cause(47);

    /// A cause from its six-bit value; `None` above 63.
    pub const fn new(v: u8) -> Option<Self> {
        if v <= 63 {
            Some(Cause(v))
        } else {
            None
        }
    }

    /// The six-bit value.
    pub const fn value(self) -> u8 {
        self.0
    }

    /// "Interrogated by group n" (n = 1..=16).
    pub fn interrogated_by_group(n: u8) -> Option<Self> {
        if (1..=16).contains(&n) {
            Cause::new(n.saturating_add(20))
        } else {
            None
        }
    }

    /// True for the "unknown ..." causes 44-47, which are failures whatever the P/N bit says.
    pub fn is_unknown_failure(self) -> bool {
        (44..=47).contains(&self.0)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1 => "per/cyc",
            2 => "back",
            3 => "spont",
            4 => "init",
            5 => "req",
            6 => "act",
            7 => "actcon",
            8 => "deact",
            9 => "deactcon",
            10 => "actterm",
            11 => "retrem",
            12 => "retloc",
            13 => "file",
            20 => "inrogen",
            21..=36 => "inro",
            37 => "reqcogen",
            38..=41 => "reqco",
            44 => "unknown-type",
            45 => "unknown-cause",
            46 => "unknown-ca",
            47 => "unknown-ioa",
            _ => "cot",
        };
        write!(f, "{}({})", name, self.0)
    }
}

/// Cause of transmission field: cause, P/N and T bits, originator address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cot {
    /// The cause.
    pub cause: Cause,
    /// P/N bit: negative confirmation.
    pub negative: bool,
    /// T bit: test.
    pub test: bool,
    /// Originator address (second octet; 0 when the COT is one octet).
    pub originator: u8,
}

impl Cot {
    /// A positive, non-test COT with originator 0.
    pub const fn new(cause: Cause) -> Self {
        Self {
            cause,
            negative: false,
            test: false,
            originator: 0,
        }
    }

    /// The first COT octet.
    pub fn octet(&self) -> u8 {
        (self.cause.0 & 0x3F)
            | if self.negative { 0x40 } else { 0 }
            | if self.test { 0x80 } else { 0 }
    }

    /// Parses the first COT octet plus an originator address.
    pub fn from_octets(first: u8, originator: u8) -> Self {
        Self {
            cause: Cause(first & 0x3F),
            negative: first & 0x40 != 0,
            test: first & 0x80 != 0,
            originator,
        }
    }
}

/// Common address of ASDU (station address). 65535 (or 255 with one octet) is broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommonAddress(pub u16);

impl CommonAddress {
    /// The two-octet broadcast address.
    pub const BROADCAST: CommonAddress = CommonAddress(0xFFFF);

    /// True when this is the broadcast address for the given size.
    pub fn is_broadcast(self, sizes: &AsduSizes) -> bool {
        match sizes.ca {
            CaSize::One => self.0 == 0xFF,
            CaSize::Two => self.0 == 0xFFFF,
        }
    }
}

impl fmt::Display for CommonAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Information object address (up to 24 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ioa(pub u32);

impl fmt::Display for Ioa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Size of the cause of transmission field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CotSize {
    /// One octet: no originator address.
    One,
    /// Two octets: with originator address (default).
    Two,
}

/// Size of the common address field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaSize {
    /// One octet.
    One,
    /// Two octets (default).
    Two,
}

/// Size of the information object address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoaSize {
    /// One octet.
    One,
    /// Two octets.
    Two,
    /// Three octets (default).
    Three,
}

/// Sizes of the variable ASDU header fields; the 104 defaults are 2/2/3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AsduSizes {
    /// Cause of transmission: 1 or 2 octets.
    pub cot: CotSize,
    /// Common address: 1 or 2 octets.
    pub ca: CaSize,
    /// Information object address: 1, 2 or 3 octets.
    pub ioa: IoaSize,
}

impl Default for AsduSizes {
    fn default() -> Self {
        Self {
            cot: CotSize::Two,
            ca: CaSize::Two,
            ioa: IoaSize::Three,
        }
    }
}

/// An octet count that is no valid size of an ASDU field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSize {
    /// The field (`COT`, `common address`, `IOA`).
    pub field: &'static str,
    /// The valid counts, as text (`1 or 2`).
    pub valid: &'static str,
}

impl fmt::Display for BadSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} size must be {} octets", self.field, self.valid)
    }
}

impl std::error::Error for BadSize {}

/// The octet count of a field that is one or two octets long (COT, common address).
macro_rules! one_or_two_octets {
    ($size:ident, $field:literal) => {
        impl $size {
            /// Its octet count.
            pub fn octets(self) -> u8 {
                match self {
                    Self::One => 1,
                    Self::Two => 2,
                }
            }

            /// From its octet count (1 or 2).
            pub fn from_octets(n: u8) -> Result<Self, BadSize> {
                match n {
                    1 => Ok(Self::One),
                    2 => Ok(Self::Two),
                    _ => Err(BadSize {
                        field: $field,
                        valid: "1 or 2",
                    }),
                }
            }
        }
    };
}

one_or_two_octets!(CotSize, "COT");
one_or_two_octets!(CaSize, "common address");

impl IoaSize {
    /// Its octet count.
    pub fn octets(self) -> u8 {
        match self {
            Self::One => 1,
            Self::Two => 2,
            Self::Three => 3,
        }
    }

    /// From its octet count (1, 2 or 3).
    pub fn from_octets(n: u8) -> Result<Self, BadSize> {
        match n {
            1 => Ok(Self::One),
            2 => Ok(Self::Two),
            3 => Ok(Self::Three),
            _ => Err(BadSize {
                field: "IOA",
                valid: "1, 2 or 3",
            }),
        }
    }
}

impl AsduSizes {
    /// Builds sizes from octet counts (cot 1|2, ca 1|2, ioa 1|2|3); `None` when invalid.
    pub fn from_octets(cot: u8, ca: u8, ioa: u8) -> Option<Self> {
        Some(Self {
            cot: CotSize::from_octets(cot).ok()?,
            ca: CaSize::from_octets(ca).ok()?,
            ioa: IoaSize::from_octets(ioa).ok()?,
        })
    }

    /// Largest IOA the configured size can carry.
    pub fn max_ioa(&self) -> u32 {
        match self.ioa {
            IoaSize::One => 0xFF,
            IoaSize::Two => 0xFFFF,
            IoaSize::Three => 0xFF_FFFF,
        }
    }

    /// Largest common address the configured size can carry.
    pub fn max_common_address(&self) -> u16 {
        match self.ca {
            CaSize::One => 0xFF,
            CaSize::Two => 0xFFFF,
        }
    }

    /// Octets of an IOA.
    pub fn ioa_len(&self) -> usize {
        match self.ioa {
            IoaSize::One => 1,
            IoaSize::Two => 2,
            IoaSize::Three => 3,
        }
    }
}

/// Quality descriptor bits (QDS, the quality part of SIQ/DIQ, QDP and SEP).
///
/// Which bits a field can carry depends on the element: SIQ/DIQ carry IV/NT/SB/BL, QDS adds OV,
/// QDP and SEP add EI instead. Bits an element cannot carry are dropped when encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Quality(pub u8);

impl Quality {
    /// No flag set: a good value.
    pub const GOOD: Quality = Quality(0);
    /// OV: overflow.
    pub const OV: Quality = Quality(0x01);
    /// EI: elapsed time invalid (protection events).
    pub const EI: Quality = Quality(0x08);
    /// BL: blocked.
    pub const BL: Quality = Quality(0x10);
    /// SB: substituted.
    pub const SB: Quality = Quality(0x20);
    /// NT: not topical.
    pub const NT: Quality = Quality(0x40);
    /// IV: invalid.
    pub const IV: Quality = Quality(0x80);

    /// True when all bits of `other` are set.
    pub fn contains(self, other: Quality) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no flag is set.
    pub fn is_good(self) -> bool {
        self.0 == 0
    }

    /// IV bit.
    pub fn invalid(self) -> bool {
        self.contains(Self::IV)
    }

    /// NT bit.
    pub fn not_topical(self) -> bool {
        self.contains(Self::NT)
    }

    /// SB bit.
    pub fn substituted(self) -> bool {
        self.contains(Self::SB)
    }

    /// BL bit.
    pub fn blocked(self) -> bool {
        self.contains(Self::BL)
    }

    /// OV bit.
    pub fn overflow(self) -> bool {
        self.contains(Self::OV)
    }

    /// EI bit.
    pub fn elapsed_invalid(self) -> bool {
        self.contains(Self::EI)
    }

    /// The bits with their lowercase flag codes, the tag bus spelling.
    const CODES: [(Quality, &'static str); 6] = [
        (Self::IV, "iv"),
        (Self::NT, "nt"),
        (Self::SB, "sb"),
        (Self::BL, "bl"),
        (Self::OV, "ov"),
        (Self::EI, "ei"),
    ];

    /// Lowercase flag codes (`iv nt sb bl ov ei`), the tag bus spelling.
    pub fn codes(self) -> Vec<&'static str> {
        Self::CODES
            .iter()
            .filter(|(q, _)| self.contains(*q))
            .map(|(_, c)| *c)
            .collect()
    }

    /// The bit of a flag code (`iv`, `nt`, `sb`, `bl`, `ov`, `ei`); `None` for other codes.
    pub fn from_code(code: &str) -> Option<Quality> {
        Self::CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(q, _)| *q)
    }
}

/// The standard's name for the quality descriptor.
pub type Qds = Quality;

impl std::ops::BitOr for Quality {
    type Output = Quality;
    fn bitor(self, rhs: Self) -> Self {
        Quality(self.0 | rhs.0)
    }
}

/// Double-point value (DPI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DoublePointValue {
    /// 0: intermediate state.
    Intermediate,
    /// 1: determined state OFF.
    Off,
    /// 2: determined state ON.
    On,
    /// 3: indeterminate state.
    Indeterminate,
}

impl DoublePointValue {
    /// From the two low bits.
    pub fn from_bits(v: u8) -> Self {
        match v & 0x03 {
            0 => Self::Intermediate,
            1 => Self::Off,
            2 => Self::On,
            _ => Self::Indeterminate,
        }
    }

    /// The two-bit value.
    pub fn bits(self) -> u8 {
        match self {
            Self::Intermediate => 0,
            Self::Off => 1,
            Self::On => 2,
            Self::Indeterminate => 3,
        }
    }
}
