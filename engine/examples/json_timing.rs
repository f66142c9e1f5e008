//! Times each stage of reading and writing FHIR JSON over a directory of files (native build):
//! `cargo run --release -p hearth-engine --example json_timing -- DIR`.
use std::time::Instant;

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::json::reader::{parse, Limits};
use hearth_engine::json::write::{write_resource, Style};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| String::from("../shared/corpus/synthea"));
    let mut inputs = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|ext| ext == "json") {
            inputs.push(std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    let total: usize = inputs.iter().map(Vec::len).sum();
    let mb = total as f64 / 1e6;
    let rounds = 5;
    let time = |label: &str, f: &dyn Fn(&[u8]) -> usize| {
        let start = Instant::now();
        let mut sink = 0;
        for _ in 0..rounds {
            for input in &inputs {
                sink += f(input);
            }
        }
        let secs = start.elapsed().as_secs_f64() / f64::from(rounds);
        println!("{label:<28} {:>8.1} MB/s  (sink {sink})", mb / secs);
    };
    time("reader::parse", &|bytes| {
        parse(bytes, Limits::default())
            .map(|node| node.offset)
            .unwrap_or(1)
    });
    time("parse_resource", &|bytes| {
        parse_resource(bytes)
            .map(|res| res.fields.len())
            .unwrap_or(1)
    });
    time("parse_resource + write", &|bytes| {
        parse_resource(bytes)
            .map(|res| write_resource(&res, Style::Compact).len())
            .unwrap_or(1)
    });
}
