//! Every WGSL kernel (with the shared prelude) parses and validates with naga; needs no adapter.

use margin_wgpu::kernels::{COMMON, SOURCES, full_source};

fn validate(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
}

#[test]
fn prelude_validates() {
    validate("common", COMMON);
}

#[test]
fn every_kernel_validates() {
    for (name, _) in SOURCES {
        let src = full_source(name).unwrap();
        validate(name, &src);
    }
}

#[test]
fn every_shader_file_is_listed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shaders/wgsl");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.extension().and_then(|e| e.to_str()) == Some("wgsl") && stem != "common" {
            assert!(
                SOURCES.iter().any(|(n, _)| *n == stem),
                "{stem}.wgsl is not in kernels::SOURCES"
            );
        }
    }
}
