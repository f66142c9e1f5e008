//! Any text as a FHIRPath expression: compiling (plain and checked against Patient) and
//! evaluating on a fixed Patient never panics, and ends within the step budget.
#![no_main]

use std::sync::OnceLock;

use hearth_engine::fhirpath::{self, LocalResolver, Options};
use hearth_engine::json::fhir::parse_resource;
use hearth_engine::resource::Object;
use libfuzzer_sys::fuzz_target;

const PATIENT: &str = r##"{"resourceType":"Patient","id":"p1","active":true,
"name":[{"use":"official","family":"Chalmers","given":["Peter","James"]},{"use":"usual","given":["Jim"]}],
"birthDate":"1974-12-25","_birthDate":{"extension":[{"url":"http://example.org/t","valueDateTime":"1974-12-25T14:35:45-05:00"}]},
"contained":[{"resourceType":"Organization","id":"o","name":"Acme"}],"managingOrganization":{"reference":"#o"},
"multipleBirthInteger":2,"extension":[{"url":"http://example.org/q","valueQuantity":{"value":1.50,"unit":"mg","code":"mg"}}]}"##;

fn patient() -> &'static Object {
    static PATIENT_OBJECT: OnceLock<Object> = OnceLock::new();
    PATIENT_OBJECT.get_or_init(|| parse_resource(PATIENT.as_bytes()).expect("the fixed Patient reads"))
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let _ = fhirpath::compile_for_type(text, "Patient");
    if let Ok(expression) = fhirpath::compile(text) {
        let resource = patient();
        let resolver = LocalResolver::new(resource);
        let options = Options { resolver: Some(&resolver), ..Options::default() };
        if let Ok(result) = expression.evaluate(resource, &options) {
            let _ = fhirpath::to_json(&result);
        }
    }
});
