//! The subset of apk's version syntax this tool writes: `N(.N)*(-rN)?`, e.g. `0.1.0-r1`
//! (OpenWrt's `PKG_RELEASE` becomes `-rN`), compared as apk compares such versions: numeric
//! components left to right, a missing component lower, then the release.

use std::cmp::Ordering;

fn split(v: &str) -> Option<(Vec<u64>, u64)> {
    let (main, release) = match v.split_once("-r") {
        Some((m, r)) => (m, r.parse::<u64>().ok()?),
        None => (v, 0),
    };
    let parts = main
        .split('.')
        .map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse::<u64>().ok()
            }
        })
        .collect::<Option<Vec<u64>>>()?;
    Some((parts, release))
}

/// Whether `v` is of the form this tool accepts.
pub fn valid(v: &str) -> bool {
    split(v).is_some()
}

/// apk's ordering of two versions of the accepted form; others compare bytewise.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (split(a), split(b)) {
        (Some((pa, ra)), Some((pb, rb))) => pa.cmp(&pb).then(ra.cmp(&rb)),
        _ => a.as_bytes().cmp(b.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_releases_and_components() {
        assert!(valid("0.1.0-r1") && valid("1") && valid("2.10"));
        for bad in ["", "0.1.0-1", "0..1", "v1", "1.0-r", "1.0_rc1"] {
            assert!(!valid(bad), "{bad}");
        }
        assert_eq!(compare("0.1.0-r1", "0.1.0-r2"), Ordering::Less);
        assert_eq!(compare("0.1.0-r10", "0.1.0-r9"), Ordering::Greater);
        assert_eq!(compare("0.2.0-r1", "0.1.9-r9"), Ordering::Greater);
        assert_eq!(compare("1.0", "1.0.1"), Ordering::Less);
        assert_eq!(compare("1.0-r0", "1.0"), Ordering::Equal);
    }
}
