//! A lean load generator for bench/match.sh, beside the Python one (match_load.py).
//!
//! The Python generator spends more CPU per request than the server answers with, and
//! on a 2-core machine the two share the cores, so it measures mostly itself. This
//! one is plain Rust with the standard library only (bench/match.sh compiles it with
//! rustc, no crates): CONNECTIONS threads, one keep-alive connection each, POST a
//! random record of QUERIES to http://ADDR/match for SECONDS.
//!
//! Usage: match_load ADDR QUERIES SECONDS CONNECTIONS [SERVER_PID]
//! Prints JSON: lookups, lookups/s, p50/p99 ms, and with SERVER_PID the server's and
//! this generator's CPU seconds, and the server's CPU microseconds per lookup.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: match_load ADDR QUERIES SECONDS CONNECTIONS [SERVER_PID]");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let text = std::fs::read_to_string(&args[2]).unwrap_or_else(|e| fail(&args[2], e));
    let lines: Arc<Vec<String>> = Arc::new(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
    );
    if lines.is_empty() {
        fail(&args[2], "no records");
    }
    let seconds: f64 = args[3].parse().unwrap_or_else(|e| fail("SECONDS", e));
    let connections: usize = args[4].parse().unwrap_or_else(|e| fail("CONNECTIONS", e));
    let server_pid = args.get(5).cloned();

    let server_before = server_pid.as_deref().map(cpu_seconds);
    let self_before = cpu_seconds("self");
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            let (addr, lines) = (addr.clone(), Arc::clone(&lines));
            std::thread::spawn(move || worker(&addr, &lines, end, i as u64 + 1))
        })
        .collect();
    let mut latencies: Vec<u32> = Vec::new();
    for w in workers {
        latencies.extend(w.join().expect("a load thread panicked"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = server_pid
        .as_deref()
        .zip(server_before)
        .map(|(pid, before)| cpu_seconds(pid) - before);
    let self_cpu = cpu_seconds("self") - self_before;
    latencies.sort_unstable();
    let pick = |q: f64| {
        let i = ((q * latencies.len() as f64) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).map_or(0.0, |&us| us as f64 / 1000.0)
    };
    let n = latencies.len();
    let mut out = format!(
        "{{\n  \"lookups\": {n},\n  \"lookups_per_second\": {},\n  \"p50_ms\": {:.3},\n  \"p99_ms\": {:.3},\n  \"load_cpu_seconds\": {:.2}",
        (n as f64 / elapsed).round(),
        pick(0.50),
        pick(0.99),
        self_cpu
    );
    if let Some(cpu) = server_cpu {
        let per = if n == 0 { 0.0 } else { cpu * 1e6 / n as f64 };
        out.push_str(&format!(
            ",\n  \"server_cpu_seconds\": {cpu:.2},\n  \"server_cpu_us_per_lookup\": {per:.1}"
        ));
    }
    println!("{out}\n}}");
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("match_load: {what}: {e}");
    std::process::exit(2);
}

/// Latencies in microseconds of one connection's lookups until `end`.
fn worker(addr: &str, lines: &[String], end: Instant, seed: u64) -> Vec<u32> {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| fail(addr, e));
    stream.set_nodelay(true).ok();
    let mut writer = stream.try_clone().unwrap_or_else(|e| fail(addr, e));
    let mut reader = BufReader::new(stream);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut latencies = Vec::new();
    let mut request = Vec::new();
    let mut line = String::new();
    let mut body = Vec::new();
    while Instant::now() < end {
        // xorshift64: a fixed sequence per connection, no crate needed.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let record = &lines[(state % lines.len() as u64) as usize];
        request.clear();
        write!(
            request,
            "POST /match HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{record}",
            record.len()
        )
        .expect("writing to a Vec");
        let t = Instant::now();
        writer.write_all(&request).unwrap_or_else(|e| fail(addr, e));
        let mut status = 0u16;
        let mut length = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or_else(|e| fail(addr, e)) == 0 {
                fail(addr, "the server closed the connection");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(rest) = l.strip_prefix("HTTP/1.1 ") {
                status = rest.get(..3).and_then(|s| s.parse().ok()).unwrap_or(0);
            } else if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        body.resize(length, 0);
        reader
            .read_exact(&mut body)
            .unwrap_or_else(|e| fail(addr, e));
        latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if status != 200 {
            fail(addr, format!("status {status}: {}", String::from_utf8_lossy(&body)));
        }
    }
    latencies
}

/// User plus system CPU seconds of a process (`self` or a pid), from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}
