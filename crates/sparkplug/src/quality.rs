//! The quality of a value as a Sparkplug metric property.
//!
//! Every metric of a birth carries the property [`QUALITY_PROPERTY`] (`Quality`, Int32) with
//! an OPC DA quality code, the convention Ignition and other Sparkplug hosts read. DATA
//! messages carry it when the code is not Good (192), and once more when a metric returns
//! to Good, so a host that treats a missing property as Good always shows the right one.
//!
//! | our flags (first match)      | code | OPC DA meaning                 |
//! |------------------------------|------|--------------------------------|
//! | `nolink` (the gateway's mark)| 24   | Bad, communication failure     |
//! | `iv`                         | 0    | Bad                            |
//! | `nt`                         | 68   | Uncertain, last usable value   |
//! | `ov`                         | 84   | Uncertain, EU units exceeded   |
//! | `sb`                         | 216  | Good, local override           |
//! | anything else                | 192  | Good                           |
//!
//! So a value is Good (>= 192) exactly when its WCC Lite quality is 1.

use contract::{Flag, Flags};

/// The property name of a metric's quality.
pub const QUALITY_PROPERTY: &str = "Quality";

/// The code of a good value.
pub const GOOD: i32 = 192;

/// The OPC DA quality code of a value's flags (see the module table).
pub fn quality_code(flags: &Flags) -> i32 {
    const MAP: [(&str, i32); 5] = [
        (Flag::NOLINK, 24),
        (Flag::IV, 0),
        (Flag::NT, 68),
        (Flag::OV, 84),
        (Flag::SB, 216),
    ];
    MAP.into_iter()
        .find(|(flag, _)| flags.contains(flag))
        .map_or(GOOD, |(_, code)| code)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use contract::TagValue;

    #[test]
    fn codes_follow_the_flags_and_agree_with_wcc_quality() {
        for (text, code) in [
            ("1,1,", 192),
            ("1,1,gt", 192),
            ("1,1,sb bl", 216),
            ("1,1,ov", 84),
            ("1,1,nt", 68),
            ("1,1,iv nt", 0),
            ("1,1,nt nolink", 24),
            ("1,1,iv nt nolink", 24),
        ] {
            let v: TagValue = text.parse().unwrap();
            assert_eq!(quality_code(&v.flags), code, "{text}");
            assert_eq!(code >= GOOD, v.quality() == 1, "{text}");
        }
    }
}
