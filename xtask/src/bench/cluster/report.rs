//! The tables of `bench cluster`: each system's rows, then the side-by-side
//! comparison with the ratios and the targets.

use super::load::Workload;
use super::{ClusterBenchArgs, Results};

pub fn header(args: &ClusterBenchArgs) {
    println!(
        "bench cluster: {} keys of 8 bytes, {}-byte values, warm-up {:.1} s and {:.1} s measured per row, \
         closed loop; load generator: this process, 2 tokio worker threads",
        args.shape.keys,
        args.shape.value_bytes,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64()
    );
}

fn system_table(r: &Results) {
    println!();
    println!("### {}", r.name);
    println!();
    println!("| workload | clients |    ops/s | p50 µs | p90 µs | p99 µs | p99.9 µs | errors | server CPU µs/op (each process) | client CPU µs/op |");
    println!("|----------|--------:|---------:|-------:|-------:|-------:|---------:|-------:|---------------------------------|-----------------:|");
    for (w, c, row) in &r.rows {
        let server: Vec<String> =
            row.server_cpu_us.iter().filter(|(_, us)| *us >= 0.5).map(|(n, us)| format!("{n} {us:.0}")).collect();
        println!(
            "| {:<8} | {:>7} | {:>8.0} | {:>6.0} | {:>6.0} | {:>6.0} | {:>8.0} | {:>6} | {} | {:>16.0} |",
            w.name(),
            c,
            row.ops_per_sec,
            row.us(0.50),
            row.us(0.90),
            row.us(0.99),
            row.us(0.999),
            row.errors,
            server.join(", "),
            row.client_cpu_us
        );
    }
    println!();
    let rss: Vec<String> =
        r.rss.iter().map(|(n, b)| format!("{n} {:.1} MiB", *b as f64 / f64::from(1 << 20))).collect();
    println!("RSS at the end: {}", rss.join(", "));
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

pub fn print(args: &ClusterBenchArgs, ours: &Results, theirs: Option<&Results>) {
    system_table(ours);
    let Some(theirs) = theirs else { return };
    system_table(theirs);
    println!();
    println!("### side by side ({} / {})", ours.name, theirs.name);
    println!();
    println!("| workload | clients | ours ops/s | etcd ops/s | ratio | ours p50 | etcd p50 | ours p99 | etcd p99 |");
    println!("|----------|--------:|-----------:|-----------:|------:|---------:|---------:|---------:|---------:|");
    for &w in &args.workloads {
        for &c in &args.clients {
            let (Some(a), Some(b)) = (ours.row(w, c), theirs.row(w, c)) else { continue };
            println!(
                "| {:<8} | {:>7} | {:>10.0} | {:>10.0} | {:>4.2}× | {:>8.0} | {:>8.0} | {:>8.0} | {:>8.0} |",
                w.name(),
                c,
                a.ops_per_sec,
                b.ops_per_sec,
                a.ops_per_sec / b.ops_per_sec.max(1e-9),
                a.us(0.50),
                b.us(0.50),
                a.us(0.99),
                b.us(0.99)
            );
        }
    }
    println!();
    println!("Targets (latencies in µs):");
    for c in [64, 256] {
        if let (Some(a), Some(b)) = (ours.row(Workload::Put, c), theirs.row(Workload::Put, c)) {
            let ratio = a.ops_per_sec / b.ops_per_sec.max(1e-9);
            let ok = ratio >= 2.0 && a.us(0.99) <= b.us(0.99);
            println!(
                "- put, {c} clients: {ratio:.2}× etcd (≥ 2×), p99 {:.0} vs {:.0} (≤): {}",
                a.us(0.99),
                b.us(0.99),
                verdict(ok)
            );
        }
        if let (Some(a), Some(b)) = (ours.row(Workload::Get, c), theirs.row(Workload::Get, c)) {
            let ratio = a.ops_per_sec / b.ops_per_sec.max(1e-9);
            println!("- linearizable get, {c} clients: {ratio:.2}× etcd (≥ 2×): {}", verdict(ratio >= 2.0));
        }
    }
    if let (Some(a), Some(b)) = (ours.row(Workload::Put, 1), theirs.row(Workload::Put, 1)) {
        println!(
            "- put, 1 client: p50 {:.0} vs {:.0} (≤): {}",
            a.us(0.50),
            b.us(0.50),
            verdict(a.us(0.50) <= b.us(0.50))
        );
    }
}
