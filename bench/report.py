#!/usr/bin/env python3
"""Turns the `key value` figures of bench/run into its markdown table (stdout).

Usage: report.py FIGURES.kv PACKAGING_README.md
"""
import math
import re
import sys

BACKLOG = 200_000


def load(path):
    kv = {}
    for line in open(path, encoding="utf-8"):
        k, _, v = line.rstrip("\n").partition(" ")
        kv[k] = v
    return kv


def num(kv, k):
    try:
        x = float(kv[k].split()[0])
        return None if math.isnan(x) else x
    except (KeyError, ValueError, IndexError):
        return None


def f(x, fmt="{:.0f}", none="n/a"):
    return none if x is None else fmt.format(x)


def mb(kb):
    return None if kb is None else kb / 1024.0


def verdict(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**MISSED**")


def mqtt_table(w, qs, g, arrived):
    """The publisher's rows per QoS from the figures `g(q, key)` (shared or pinned layout);
    `arrived`: with the column of latency values that arrived."""
    def ms3(q, who):
        return " / ".join(f(g(q, f"{who}_{p}"), "{:.2f}") for p in ("p50", "p99", "p999"))
    head = ["QoS", "ceiling values/s", "fieldbridge values/s", "ratio",
            "p50 / p99 / p99.9 ms @10k/s", "raw client p50 / p99 / p99.9 ms @10k/s"]
    head += ["arrived @10k/s"] if arrived else []
    head += ["CPU us/value", "peak RSS MB"]
    w("| " + " | ".join(head) + " |")
    w("|" + "---|" * len(head))
    for q in qs:
        raw, fb = g(q, "raw"), g(q, "fb")
        cells = [str(q), f(raw), f(fb), f(fb / raw if fb and raw else None, "{:.2f}"),
                 ms3(q, "fb"), ms3(q, "raw")]
        cells += [f"{f(g(q, 'fb_lat_arrived'))} of {f(g(q, 'fb_lat_sent'))}"] if arrived else []
        cells += [f(g(q, "fb_cpu_us"), "{:.2f}"), f(mb(g(q, "fb_rss_kb")), "{:.1f}")]
        w("| " + " | ".join(cells) + " |")


# The payload options of the uplink table, as bench.rs's `uplink::options` names them
# (`uplink.<id>.<figure>`: the name without spaces and `+`); a new option is one more entry.
UPLINK_OPTIONS = [
    ("csv", "CSV (today's)"),
    ("csvtopicaliases", "CSV + MQTT 5 topic aliases"),
    ("json_batch", "json_batch"),
    ("csv_batch", "csv_batch"),
    ("json_batchzlib", "json_batch + zlib"),
    ("csv_batchzlib", "csv_batch + zlib"),
    ("sparkplug", "Sparkplug B"),
]
UPLINK_BATCHED = ("json_batch", "csv_batch", "json_batchzlib", "csv_batchzlib")


def uplink_table(w, kv, targets):
    """Bytes per value per payload option (bench.rs, `BENCH_UPLINK`), and its targets."""
    u = lambda o, k: num(kv, f"uplink.{o}.{k}")  # noqa: E731
    opts = [(o, name) for o, name in UPLINK_OPTIONS if u(o, "live_up") is not None]
    if not opts:
        return
    w("## The cellular uplink: bytes per value by payload option")
    w("")
    w("QoS 1, one run, one mosquitto (`max_topic_alias 65535`). The publisher connects through a "
      "counting TCP proxy on loopback; over plain TCP its bytes are the MQTT packets (up: gateway "
      "to broker, what `$SYS/broker/bytes/received` counts; both: PUBACKs and the rest down "
      "too), over TLS the TLS records. 100 signals: 100 signals at 1 change/s each for 10 s "
      "(batch_ms 1000, batch_max 1000: the defaults). Drain: 200,000 values over 10,000 signals "
      "already in the stream; values/s is the arrival rate, first value to last; CPU as in the "
      "table above (the plain-TCP drain).")
    w("")
    w("| option | 100 signals: MQTT up B/value | MQTT both | TLS both | drain: MQTT up | MQTT both | TLS both | drain values/s | TLS values/s | CPU us/value |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for o, name in opts:
        cells = [name] + [f(u(o, k), "{:.1f}") for k in (
            "live_up", "live_both", "live_tls_both", "drain_up", "drain_both", "drain_tls_both")]
        cells += [f(u(o, "drain_rate")), f(u(o, "drain_tls_rate")), f(u(o, "cpu_us"), "{:.2f}")]
        w("| " + " | ".join(cells) + " |")
    w("")
    best = min((u(o, "live_up"), name) for o, name in opts)
    targets.append((f"<= 12 B/value at the MQTT layer, 100 signals, best option ({best[1]})",
                    f(best[0], "{:.1f} B"), best[0] <= 12))
    today = u("csv", "drain_rate")
    for o in UPLINK_BATCHED:
        r, c = u(o, "drain_rate"), u(o, "cpu_us")
        if r is not None and today is not None:
            targets.append((f"drain with {o} >= today's CSV ({today:.0f}/s)", f(r), r >= today))
        if c is not None:
            targets.append((f"CPU <= 5 us/value at QoS 1 with {o}", f(c, "{:.2f} us"), c <= 5))


def main():
    kv = load(sys.argv[1])
    pkg_readme = open(sys.argv[2], encoding="utf-8").read() if len(sys.argv) > 2 else ""
    out = []
    w = out.append
    w("# fieldbridge benchmark (`bench/run`)")
    w("")
    w(f"Run {kv.get('date', '?')} at commit {kv.get('commit', '?')} on {kv.get('nproc', '?')} x "
      f"{kv.get('cpu', '?')}; load average {kv.get('load_start', '?')} at the start, "
      f"{kv.get('load_end', '?')} at the end (a shared machine: absolute figures are noisy, the "
      f"ratios from one run less so). redis {kv.get('redis', '?')}, mosquitto "
      f"{kv.get('mosquitto', '?')}, MQTT in-flight window {kv.get('window', '?')}, subscriber at "
      f"QoS 0 (a blocking reader on its own thread, reading once a millisecond while a drain is "
      f"measured, at once while latency is); the whole run took {kv.get('elapsed_s', '?')} s, of which "
      f"{kv.get('build_s', '?')} s building.")
    w("")

    qs = [0, 1, 2]
    g = lambda q, k: num(kv, f"q{q}.{k}")  # noqa: E731

    def lost(q, who):
        if who == "fb":
            rec, sent = g(q, "fb_received"), BACKLOG
        else:
            rec, sent = g(q, "py_received"), g(q, "py_sent")
        la, ls = g(q, f"{who}_lat_arrived"), g(q, f"{who}_lat_sent")
        if None in (rec, sent, la, ls):
            return None, None
        return int(sent - rec + ls - la), int(sent + ls)

    w("## Ratios (same run, same broker)")
    w("")
    w("| QoS | fieldbridge / raw client ceiling | target | fieldbridge / Python bridge | target | values lost: fieldbridge | values lost: Python |")
    w("|---|---|---|---|---|---|---|")
    targets = []
    for q in qs:
        raw, fb, py = g(q, "raw"), g(q, "fb"), g(q, "py")
        r = fb / raw if fb and raw else None
        rp = fb / py if fb and py else None
        want = 0.8 if q == 2 else 0.75
        fl, ft = lost(q, "fb")
        pl, pt = lost(q, "py")
        w(f"| {q} | {f(r, '{:.2f}')} | >= {want} {verdict(None if r is None else r >= want)} | "
          f"{f(rp, '{:.1f}x')} | {'>= 4x ' + verdict(None if rp is None else rp >= 4) if q < 2 else '-'} | "
          f"{f(fl, '{:.0f}')} of {f(ft, '{:.0f}')} | {f(pl, '{:.0f}')} of {f(pt, '{:.0f}')} |")
        targets.append((f"QoS {q}: fieldbridge >= {want} of the ceiling", f(r, "{:.2f}"),
                        None if r is None else r >= want))
        if q < 2:
            targets.append((f"QoS {q}: fieldbridge >= 4x Python", f(rp, "{:.1f}x"),
                            None if rp is None else rp >= 4))
            targets.append((f"QoS {q}: 0 values lost (fieldbridge)", f(fl, "{:.0f}"),
                            None if fl is None else fl == 0))
    w("")

    w("## MQTT publisher: 200,000 values over 10,000 signals")
    w("")
    w("Ceiling: one raw rumqttc client (its own process) publishing the 200,000 values itself "
      "(same window). fieldbridge: `mqtt-client` started with the 200,000 values already in the "
      "tag bus stream, until the subscriber has them all. Both rates are arrival rates at the "
      "subscriber, first value to last (the publisher's start-up, ~0.1 s with its 20,000-row "
      "config, is left out; `fb_from_start` in the figures has it in). Latency: Redis write -> subscriber at a steady "
      "10,000 values/s for 5 s, each value stamped just before its batch goes to Redis; the raw "
      "client's is MQTT alone (stamped as it is handed to rumqttc), the floor under the "
      "publisher's. CPU: utime+stime of the publisher while draining, minus what "
      "loading its 10,000-signal config took, per value. RSS: VmHWM of the process.")
    w("")
    mqtt_table(w, qs, g, arrived=True)
    w("")

    if any(g(q, "raw") is not None for q in qs) and kv.get("pinned.q0.raw"):
        gp = lambda q, k: num(kv, f"pinned.q{q}.{k}")  # noqa: E731
        w("### Pinned: the broker side on CPU 0, the sender side on CPU 1")
        w("")
        w("The same measurement with mosquitto and the subscriber on one CPU and the sender "
          "(the raw client, or the publisher with its redis-server) on the other, as when the "
          "broker is another machine: the raw client is then bound by the broker, the publisher "
          "by its own cost per value (stream read, XACK, Redis itself) on one core.")
        w("")
        mqtt_table(w, qs, gp, arrived=False)
        w("")

    uplink_table(w, kv, targets)

    w("## The Python alternative (`bench/python_bridge.py`: redis-py + paho-mqtt 2)")
    w("")
    w("It follows the live PUBLISH feed (there is no backlog for it to drain), so the same "
      "200,000 values are written to the tag bus as fast as the tag writer goes while it runs; "
      "then the same steady 10,000/s. Lost = sent - received by the subscriber; refused = "
      "publishes paho refused (its own count at exit).")
    w("")
    w("| QoS | values/s | arrived of 200,000 | lost (both phases) | refused by paho | p50 / p99 / p99.9 ms @10k/s | arrived @10k/s | CPU us/value | peak RSS MB |")
    w("|---|---|---|---|---|---|---|---|---|")
    for q in qs:
        pl, pt = lost(q, "py")
        w(f"| {q} | {f(g(q, 'py'))} | {f(g(q, 'py_received'))} | {f(pl)} of {f(pt)} | "
          f"{kv.get(f'q{q}.py_refused', 'n/a')} | "
          f"{f(g(q, 'py_p50'), '{:.2f}')} / {f(g(q, 'py_p99'), '{:.2f}')} / {f(g(q, 'py_p999'), '{:.2f}')} | "
          f"{f(g(q, 'py_lat_arrived'))} of {f(g(q, 'py_lat_sent'))} | {f(g(q, 'py_cpu_us'), '{:.2f}')} | "
          f"{f(mb(g(q, 'py_rss_kb')), '{:.1f}')} |")
    w("")

    w("## IEC 104 ingest")
    w("")
    w("| outstation | objects/s into `in` tags | iec104-master peak RSS MB |")
    w("|---|---|---|")
    w(f"| iec60870's outstation (this repo), 1000 points, M_ME_TF_1 spontaneous | "
      f"{f(num(kv, 'iec104_objs'))} | {f(mb(num(kv, 'iec104_rss_kb')), '{:.1f}')} |")
    if "iec104_tls_objs" in kv:
        w(f"| the same over IEC 62351-3 TLS (a TLS relay in front of the outstation), "
          f"ratio TLS / TCP {f(num(kv, 'iec104_tls_ratio'), '{:.2f}')} | "
          f"{f(num(kv, 'iec104_tls_objs'))} | {f(mb(num(kv, 'iec104_tls_rss_kb')), '{:.1f}')} |")
    if "c104_objs" in kv:
        sent = kv.get("c104_sent", "? ?").split()
        w(f"| c104 2.2.1 server (lib60870), same points, open loop: {f(num(kv, 'c104_arrived'))} of "
          f"{sent[0]} transmits arrived (lib60870 drops the oldest when its queue is full) | "
          f"{f(num(kv, 'c104_objs'))} | {f(mb(num(kv, 'c104_rss_kb')), '{:.1f}')} |")
    else:
        w("| c104 2.2.1 server | not measured (BENCH_SKIP_PYTHON) | - |")
    w("")

    w("## IEC 104 slave toward SCADA")
    w("")
    w("The real `iec104-slave` (release binary) serving points from a real redis-server to the "
      "stack's own master in the bench process; the reference is the stack's outstation fed "
      "directly (`OutstationHandle::update`), the same master, in the same run.")
    w("")
    w("| figure | value | goal |")
    w("|---|---|---|")
    w(f"| general interrogation of {f(num(kv, 'slave.gi_points'))} points (C_IC -> ACT_TERM) | "
      f"{f(num(kv, 'slave.gi_ms'))} ms | - |")
    w(f"| spontaneous throughput, tag writes -> objects at the master | "
      f"{f(num(kv, 'slave.values_per_s'))}/s | - |")
    w(f"| the stack's outstation fed directly | {f(num(kv, 'outstation.values_per_s'))}/s | - |")
    w(f"| ratio slave / outstation | {f(num(kv, 'slave.ratio'), '{:.2f}')} | - |")
    if "slave_tls.values_per_s" in kv:
        w(f"| spontaneous throughput over IEC 62351-3 TLS | "
          f"{f(num(kv, 'slave_tls.values_per_s'))}/s | - |")
        w(f"| ratio TLS / TCP | {f(num(kv, 'slave.tls_ratio'), '{:.2f}')} | - |")
        w(f"| GI over TLS; latency p50 / p99 over TLS | {f(num(kv, 'slave_tls.gi_ms'))} ms; "
          f"{f(num(kv, 'slave_tls.p50_ms'), '{:.1f}')} / {f(num(kv, 'slave_tls.p99_ms'), '{:.1f}')} ms | - |")
    w(f"| latency at 1,000 changes/s, p50 / p99 ({f(num(kv, 'slave.latency_values'))} values) | "
      f"{f(num(kv, 'slave.p50_ms'), '{:.1f}')} / {f(num(kv, 'slave.p99_ms'), '{:.1f}')} ms | - |")
    hwm = num(kv, "slave.hwm_kb")
    ok = None if hwm is None else hwm / 1024 <= 12
    w(f"| applet RSS after the run / peak | {f(mb(num(kv, 'slave.rss_kb')), '{:.1f}')} / "
      f"{f(mb(hwm), '{:.1f}')} MB | peak <= 12 MB {verdict(ok)} |")
    targets.append(("iec104-slave peak RSS <= 12 MB", f(mb(hwm), "{:.1f} MB"), ok))
    w("")

    w("## Footprint")
    w("")
    w("| item | size | where the figure comes from |")
    w("|---|---|---|")
    x = num(kv, "bin_x86_64")
    w(f"| binary, x86_64, release profile (stripped) | {f(x / 1e6 if x else None, '{:.2f}')} MB | this run's `target/release/fieldbridge` |")
    arm = kv.get("bin_armv7")
    ipk = kv.get("ipk_armv7")
    rows = re.findall(r"^\| ([^|]+) \| ([0-9.]+ MB) \| ([0-9.]+ MB) \|$", pkg_readme, re.M)
    if arm:
        s, _, p = arm.partition(" ")
        path, _, when = p.partition(" of ")
        w(f"| binary, armv7 musl (stripped) | {int(s) / 1e6:.2f} MB | `{path}`, left by `packaging/build-ipk.sh` {when} (not rebuilt by this run) |")
    elif rows:
        rec = "; ".join(f"{n.strip()}: {b} / `.ipk` {i}" for n, b, i in rows)
        w(f"| binary, armv7 musl (stripped) | not built by this run | packaging/README.md's recorded figures (binary / `.ipk`), each measured on the branch its row names, none on the current main with every applet merged (expect more): {rec} |")
    if ipk:
        s, _, p = ipk.partition(" ")
        path, _, when = p.partition(" of ")
        w(f"| `.ipk`, armv7 | {int(s) / 1e6:.2f} MB | `{path}`, left by `packaging/build-ipk.sh` {when} (not rebuilt by this run) |")
    elif rows:
        w("| `.ipk`, armv7 | not built by this run | see the row above |")
    w("")
    w("Idle RSS (VmRSS 3 s after start, `config/example.json` pointed at this run's redis-server "
      "and at a closed loopback port, so every driver keeps retrying its links):")
    w("")
    w("| applet | idle RSS MB | target <= 8 MB |")
    w("|---|---|---|")
    for a in ["supervise", "iec104-master", "iec104-slave", "modbus-master", "mqtt-client"]:
        v = num(kv, f"idle_rss_kb.{a}")
        ok = None if v is None else v / 1024 <= 8
        w(f"| {a} | {f(mb(v), '{:.1f}', kv.get(f'idle_rss_kb.{a}', 'n/a'))} | {verdict(ok)} |")
        targets.append((f"{a} idle <= 8 MB", f(mb(v), "{:.1f} MB"), ok))
    kids = kv.get("idle_rss_kb.supervise_children", "")
    if kids:
        s, _, n = kids.partition(" ")
        w(f"| (the {n} applets supervise started, together) | {int(s) / 1024:.1f} | - |")
    w("")

    for q in (0, 1):
        p99 = g(q, "fb_p99")
        targets.append((f"p99 <= 1 ms at 10,000/s, QoS {q}", f(p99, "{:.2f} ms"),
                        None if p99 is None else p99 <= 1))
    p999 = g(1, "fb_p999")
    targets.append(("p99.9 <= 5 ms at 10,000/s, QoS 1", f(p999, "{:.2f} ms"),
                    None if p999 is None else p999 <= 5))
    rss = [g(q, "fb_rss_kb") for q in qs if g(q, "fb_rss_kb") is not None]
    m = max(rss) / 1024 if rss else None
    targets.append(("mqtt-client RSS <= 20 MB with a 200,000 backlog", f(m, "{:.1f} MB"),
                    None if m is None else m <= 20))
    cpu = [g(q, "fb_cpu_us") for q in qs if g(q, "fb_cpu_us") is not None]
    c = max(cpu) if cpu else None
    targets.append(("CPU <= 5 us/value draining (worst QoS)", f(c, "{:.2f} us"),
                    None if c is None else c <= 5))
    w("## Targets")
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    for name, val, ok in targets:
        w(f"| {name} | {val} | {verdict(ok)} |")
    w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
