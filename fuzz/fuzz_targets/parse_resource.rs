//! Any bytes: reading a resource never panics, and whatever reads writes back to JSON that
//! reads to the same resource.
#![no_main]

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::json::write::{write_resource, Style};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(resource) = parse_resource(bytes) {
        for style in [Style::Compact, Style::Pretty] {
            let text = write_resource(&resource, style);
            let again = parse_resource(text.as_bytes());
            assert_eq!(again.ok().as_ref(), Some(&resource), "{text}");
        }
    }
});
