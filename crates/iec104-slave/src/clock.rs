//! Setting the system clock from a master's clock synchronisation (`accept_clock_sync`).

use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::time::{clock_settime, ClockId};

/// Sets the system (realtime) clock to `ms` since the Unix epoch, UTC (a time before 1970 is
/// refused). Needs the privilege to set the clock (root or CAP_SYS_TIME).
pub fn set_system_time_ms(ms: i64) -> Result<(), nix::Error> {
    let ms = u64::try_from(ms).map_err(|_| nix::Error::EINVAL)?;
    clock_settime(
        ClockId::CLOCK_REALTIME,
        TimeSpec::from_duration(Duration::from_millis(ms)),
    )
}
