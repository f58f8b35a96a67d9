//! The whole front end on arbitrary bytes: lossy UTF-8 → parse → plan with a few build args.
//! Any input must give a plan or a typed error, never a panic, a hang or unbounded memory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stratum_builder::dockerfile::{BuildOptions, parse, plan};

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    let Ok(dockerfile) = parse(&source, "Dockerfile") else { return };
    let mut options = BuildOptions::default();
    for (name, value) in [("VERSION", "1.2.3"), ("BASE", "alpine:3.20"), ("EMPTY", "")] {
        options.build_args.insert(name.to_owned(), value.to_owned());
    }
    let _ = plan(&dockerfile, &options);
});
