//! `shoal-loadgen transport` end to end: argument errors (one line, exit code 2) and the JSON
//! report of a short real run of each workload (server and client processes on loopback).
//!
//! The runs take the machine's cores (server and client pinned), so they run one at a time.

use std::process::{Command, Output};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

/// The fixed keys of the JSON report, in order.
const KEYS: [&str; 20] = [
    "workload",
    "shards",
    "connections",
    "size_bytes",
    "duration_s",
    "handshakes_per_s",
    "tls_only_handshakes_per_s",
    "auth_ratio",
    "msgs_per_s",
    "gbit_per_s",
    "rtt_p50_us",
    "rtt_p99_us",
    "rtt_p999_us",
    "cpu_s",
    "peak_rss_bytes",
    "bytes_per_idle_connection",
    "baseline_handshakes_per_s",
    "baseline_msgs_per_s",
    "baseline_gbit_per_s",
    "ratio_to_baseline",
];

/// One benchmark at a time: each run pins a server and a client process to the machine's
/// cores, so runs in parallel starve each other (an rtt run beside another workload once
/// recorded no round trip at all).
static MACHINE: Mutex<()> = Mutex::new(());

fn loadgen(args: &[&str]) -> Output {
    let _machine = MACHINE.lock().unwrap_or_else(PoisonError::into_inner);
    Command::new(env!("CARGO_BIN_EXE_shoal-loadgen"))
        .arg("transport")
        .args(args)
        .output()
        .expect("the load generator runs")
}

fn refused(args: &[&str], mentions: &str) {
    let output = loadgen(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?} must exit 2; stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one readable line, got: {stderr}");
    assert!(stderr.contains(mentions), "{args:?}: expected {mentions:?} in {stderr:?}");
    assert!(output.stdout.is_empty(), "nothing on stdout for an error");
}

/// Runs a workload with `--json`; the report, checked for the fixed keys.
fn report(args: &[&str]) -> serde_json::Map<String, Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = loadgen(&all);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{all:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.trim_end().lines().count(), 1, "one JSON object: {stdout}");
    let value: Value = serde_json::from_str(&stdout).expect("valid JSON");
    let object = value.as_object().expect("a JSON object").clone();
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    for key in KEYS {
        assert!(keys.contains(&key), "missing key {key} in {stdout}");
    }
    object
}

fn positive(report: &serde_json::Map<String, Value>, key: &str) -> f64 {
    let value = report[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number: {report:?}"));
    assert!(value > 0.0, "{key} = {value} must be > 0");
    value
}

fn null(report: &serde_json::Map<String, Value>, key: &str) {
    assert!(report[key].is_null(), "{key} must be null: {:?}", report[key]);
}

#[test]
fn bad_arguments_are_one_line_and_exit_2() {
    refused(&["--workload", "teleport"], "--workload");
    refused(&["--workload", "messages", "--duration", "0"], "--duration");
    refused(&["--workload", "messages", "--duration", "nan"], "--duration");
    refused(&["--workload", "messages", "--connections", "2"], "--connections");
    refused(&["--workload", "handshake", "--connections", "0"], "--connections");
    refused(&["--workload", "handshake", "--size", "64"], "--size");
    refused(&["--workload", "rtt", "--size", "8"], "--size");
    refused(&["--workload", "bulk", "--size", "2000000"], "--size");
    refused(&["--workload", "bulk", "--rate", "1000"], "--rate");
    refused(&["--workload", "rtt", "--rate=-5"], "--rate");
    refused(&["--workload", "messages", "--idle-connections", "10"], "--idle-connections");
    refused(&["--workload", "messages", "--shards", "0"], "--shards");
    refused(&["--workload", "rtt", "--lanes", "2"], "--lanes");
}

#[test]
fn help_describes_the_method() {
    let output = loadgen(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in ["Workloads:", "handshake", "half that rate", "Placement:", "--baseline"] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn handshake_reports_rate_and_idle_memory() {
    let r = report(&[
        "--workload",
        "handshake",
        "--duration",
        "1",
        "--connections",
        "8",
        "--idle-connections",
        "200",
    ]);
    assert_eq!(r["workload"], "handshake");
    assert_eq!(r["connections"], 8);
    null(&r, "size_bytes");
    positive(&r, "handshakes_per_s");
    positive(&r, "tls_only_handshakes_per_s");
    positive(&r, "auth_ratio");
    positive(&r, "cpu_s");
    positive(&r, "peak_rss_bytes");
    positive(&r, "bytes_per_idle_connection");
    null(&r, "msgs_per_s");
    null(&r, "rtt_p99_us");
    null(&r, "ratio_to_baseline");
}

#[test]
fn messages_with_baseline_reports_rate_and_ratio() {
    let r = report(&["--workload", "messages", "--duration", "1", "--baseline"]);
    assert_eq!(r["size_bytes"], 64);
    positive(&r, "msgs_per_s");
    positive(&r, "baseline_msgs_per_s");
    positive(&r, "ratio_to_baseline");
    positive(&r, "cpu_s");
    null(&r, "baseline_handshakes_per_s");
    null(&r, "handshakes_per_s");
    null(&r, "tls_only_handshakes_per_s");
    null(&r, "auth_ratio");
}

#[test]
fn bulk_reports_gbit() {
    let r = report(&["--workload", "bulk", "--duration", "1", "--no-pin"]);
    assert_eq!(r["size_bytes"], 65_536);
    assert_eq!(r["pinned"], false);
    positive(&r, "gbit_per_s");
    null(&r, "baseline_gbit_per_s");
}

#[test]
fn rtt_reports_percentiles_under_load() {
    let r = report(&["--workload", "rtt", "--duration", "1"]);
    let p50 = positive(&r, "rtt_p50_us");
    let p99 = positive(&r, "rtt_p99_us");
    let p999 = positive(&r, "rtt_p999_us");
    assert!(p50 <= p99 && p99 <= p999, "percentiles in order: {p50} {p99} {p999}");
    positive(&r, "rtt_load_msgs_per_s");
    positive(&r, "rtt_samples");
    null(&r, "ratio_to_baseline");
}
