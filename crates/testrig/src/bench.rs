//! What the benchmark examples share: their command line and the figures they read from
//! `/proc`.

/// The value after `--name` on the command line, or `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i.saturating_add(1)).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// A field of `/proc/<pid>/status` (e.g. `VmHWM:`) as written there (`12345 kB`), or `?`.
pub fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

/// A `kB` field of `/proc/<pid>/status` as a number (0 when unreadable).
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    proc_status(pid, field)
        .trim_end_matches(" kB")
        .parse()
        .unwrap_or(0)
}
