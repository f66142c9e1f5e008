//! Hostile input on stable Rust, in every test run: the committed `cargo fuzz` corpus is
//! replayed, and a fixed-seed mutation loop over small R4 examples feeds the reader bytes it
//! has never seen. Reading must never panic, and whatever reads must write back to JSON that
//! reads to the same resource.

use std::fs;
use std::path::{Path, PathBuf};

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::json::write::{write_resource, Style};

fn check(bytes: &[u8]) -> bool {
    match parse_resource(bytes) {
        Ok(resource) => {
            for style in [Style::Compact, Style::Pretty] {
                let text = write_resource(&resource, style);
                let again = parse_resource(text.as_bytes());
                assert_eq!(
                    again.ok().as_ref(),
                    Some(&resource),
                    "input {:?} wrote {text}",
                    String::from_utf8_lossy(bytes)
                );
            }
            true
        }
        Err(_) => false,
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut res: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    res.sort();
    res
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    let mut accepted = 0;
    for target in ["parse_resource", "json_reader"] {
        for file in files(&root.join(target)) {
            total += 1;
            if check(&fs::read(&file).unwrap_or_default()) {
                accepted += 1;
            }
        }
    }
    println!("fuzz corpus: {total} inputs replayed, {accepted} read as resources, no panic");
    assert!(
        total >= 50,
        "expected a committed fuzz corpus, found {total} inputs"
    );
}

/// The committed `fhirpath` fuzz corpus: compiling and evaluating each input on a Patient ends
/// in a result or an error. Runs on a thread with a larger stack: unoptimised builds use far
/// bigger frames than the release and Wasm builds, whose depth limits the inputs test.
#[test]
fn fhirpath_fuzz_corpus_replays_without_panic() {
    let handle = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            use hearth_engine::fhirpath::{self, LocalResolver, Options};
            let patient = parse_resource(
                br##"{"resourceType":"Patient","id":"p1","name":[{"use":"official","family":"Chalmers","given":["Peter"]}],
                "birthDate":"1974-12-25","contained":[{"resourceType":"Organization","id":"o","name":"Acme"}],
                "managingOrganization":{"reference":"#o"}}"##,
            )
            .unwrap_or_else(|err| panic!("{err}"));
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/fhirpath");
            let (mut total, mut evaluated) = (0, 0);
            for file in files(&root) {
                total += 1;
                let text = String::from_utf8_lossy(&fs::read(&file).unwrap_or_default()).into_owned();
                let _ = fhirpath::compile_for_type(&text, "Patient");
                if let Ok(expression) = fhirpath::compile(&text) {
                    let resolver = LocalResolver::new(&patient);
                    let options = Options { resolver: Some(&resolver), ..Options::default() };
                    if expression.evaluate(&patient, &options).is_ok() {
                        evaluated += 1;
                    }
                }
            }
            (total, evaluated)
        })
        .unwrap_or_else(|err| panic!("{err}"));
    let (total, evaluated) = handle
        .join()
        .unwrap_or_else(|_| panic!("an input made FHIRPath panic"));
    println!("fhirpath fuzz corpus: {total} expressions replayed, {evaluated} evaluated, no panic");
    assert!(
        total >= 15,
        "expected a committed fhirpath fuzz corpus, found {total} inputs"
    );
}

/// xorshift64*: a small deterministic generator, so that a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"true",
    b"0",
    b"-1.50e3",
    b"\"_",
    b"\\u00e9",
    b"\\ud800",
    b"\"resourceType\"",
    b"\"extension\":[",
    b"\"valueQuantity\":{",
    b"\"_given\":[null,",
    b"\"contained\":[{",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut res = seed.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(res.len() + 1);
        match rng.below(4) {
            0 if !res.is_empty() => {
                let at = at.min(res.len() - 1);
                res[at] = rng.next() as u8;
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                res.splice(at..at, token.iter().copied());
            }
            2 => {
                let end = (at + rng.below(16)).min(res.len());
                res.drain(at..end);
            }
            _ => {
                let end = (at + rng.below(64)).min(res.len());
                let copy: Vec<u8> = res[at..end].to_vec();
                let to = rng.below(res.len() + 1);
                res.splice(to..to, copy);
            }
        }
    }
    res
}

#[test]
fn mutated_examples_never_panic() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/examples");
    let seeds: Vec<Vec<u8>> = files(&examples)
        .into_iter()
        .map(|file| fs::read(file).unwrap_or_default())
        .filter(|bytes| bytes.len() < 3000)
        .collect();
    assert!(
        seeds.len() > 100,
        "expected small R4 examples as seeds, found {}",
        seeds.len()
    );
    let mut rng = Rng(0x4845_4152_5448);
    let rounds = 20_000;
    let mut accepted = 0;
    for _ in 0..rounds {
        let seed = &seeds[rng.below(seeds.len())];
        if check(&mutate(&mut rng, seed)) {
            accepted += 1;
        }
    }
    println!("mutation: {rounds} mutated examples read, {accepted} still valid, no panic");
}
