//! `onegrid bench-sync`, run small: every phase runs against a real `onegrid serve` it starts,
//! and prints a figure that adds up. The figures themselves are for BENCHMARKS.md, not for a test.
// In tests a panic is the failure report: unwrap means "this must succeed".
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onegrid"))
        .arg("bench-sync")
        .args(args)
        .env("ONEGRID_CACHE_DIR", common::cache_dir())
        .output()
        .expect("run the onegrid binary")
}

/// The numbers in `line`, in order (a thousands separator never appears).
fn numbers(line: &str) -> Vec<f64> {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|word| word.trim_matches('.').parse().ok())
        .collect()
}

/// The one line of `text` that starts with `prefix`.
fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    let found: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one line starting {prefix:?} in:\n{text}");
    found[0]
}

#[test]
fn every_phase_runs_and_reports() {
    let output = bench(&[
        "--clients",
        "6",
        "--batch",
        "5",
        "--seconds",
        "0.5",
        "--idle",
        "20",
        "--catchup-keys",
        "2000",
        "--catchup-changed",
        "200",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "failed:\n{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(line(&text, "onegrid bench-sync: ws://127.0.0.1:").contains("6 clients"), "{text}");

    // "...: R/s (W in S s); ... p50 A ms, p99 B ms, max C ms"
    let acked = numbers(&line(&text, "acknowledged (durable) writes: ").replace("p50", "").replace("p99", ""));
    let [rate, writes, secs, p50, p99, max] = acked[..] else { panic!("{acked:?}") };
    assert!(writes >= 6.0 * 5.0 && writes % 5.0 == 0.0, "whole batches from every client: {acked:?}");
    assert!(secs >= 0.5 && (rate - writes / secs).abs() <= 1.0 + rate * 0.01, "{acked:?}");
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{acked:?}");

    // "...: R/s taken in and acknowledged (W written in S s, all acknowledged after D s)"
    let fired = numbers(line(&text, "fire-and-forget writes: "));
    let [rate, writes, window, drained] = fired[..] else { panic!("{fired:?}") };
    assert!(writes >= 6.0 * 5.0 && window >= 0.5 && drained >= window, "{fired:?}");
    assert!((rate - writes / drained).abs() <= 1.0 + rate * 0.01, "{fired:?}");

    let caught = numbers(line(&text, "catch-up after offline: "));
    assert_eq!(caught[..2], [200.0, 2000.0], "{caught:?}");
    assert!(caught[2] > 0.0, "{caught:?}");

    let idle = line(&text, "idle connections: ");
    assert_eq!(numbers(idle)[0], 20.0, "{idle}");
    assert!(idle.contains("KB per connection"), "{idle}");
}

#[test]
fn bad_options_are_refused_with_the_reason() {
    for (args, reason) in [
        (&["--clients", "0"][..], "--clients and --batch must be at least 1"),
        (&["--seconds", "-1"][..], "--seconds \"-1\" is not a positive number"),
        (&["--batch", "ten"][..], "--batch"),
        (&["--db", "x.db"][..], "unexpected argument `--db` for `onegrid bench-sync`"),
    ] {
        let output = bench(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was taken");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}
