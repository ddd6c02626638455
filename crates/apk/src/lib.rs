//! Host-side packaging tool: apk-tools v3 (ADB) packages and signed `packages.adb` indexes for
//! OpenWrt 25.12, which installs with apk only. Not linked into the device binary.
//!
//! - [`pkg::build`] writes a `.apk` from a staged directory, as `apk mkpkg --files` does;
//! - [`index::build`] writes a `packages.adb`, signed as `apk mkndx --sign-key` signs it;
//! - [`read`] parses both back (used by the tests and `fieldbridge-mkapk dump`).
//!
//! The format follows apk-tools' documentation (doc/apk-v3.5) and its writer's layout, so the
//! output is byte for byte what `apk mkpkg`/`apk mkndx` produce from the same input (checked
//! against fixtures made by apk-tools 3.0.6; the signature aside, which ECDSA randomises).

pub mod adb;
pub mod index;
pub mod pkg;
pub mod read;
pub mod sign;
pub mod version;
