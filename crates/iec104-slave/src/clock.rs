//! Setting the system clock from a master's clock synchronisation (`accept_clock_sync`).

use nix::sys::time::TimeSpec;
use nix::time::{clock_settime, ClockId};

/// Sets the system (realtime) clock to `ms` since the Unix epoch, UTC. Needs the privilege
/// to set the clock (root or CAP_SYS_TIME).
pub fn set_system_time_ms(ms: i64) -> Result<(), nix::Error> {
    let secs = ms.div_euclid(1000);
    let nanos = ms.rem_euclid(1000).saturating_mul(1_000_000);
    clock_settime(ClockId::CLOCK_REALTIME, TimeSpec::new(secs, nanos))
}
