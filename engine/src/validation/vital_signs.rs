//! The vital signs profiles of the core specification (R4 §observation-vitalsigns: "If a
//! vital sign observation has one of the LOINC codes in the table, it SHALL conform to the
//! corresponding profile"), applied to every Observation that carries one of those codes.
//!
//! The profiles ship with the engine (`model::VITAL_SIGNS_DEFINITIONS`) and are read the first
//! time an Observation needs them.

use alloc::format;
use alloc::rc::Rc;

use super::{Profiles, Validator, Walk};
use crate::model;
use crate::outcome::Severity;
use crate::resource::Object;

const LOINC: &str = "http://loinc.org";
const SNOMED_CT: &str = "http://snomed.info/sct";

/// SNOMED CT concepts for the same measurements as the profiles' LOINC codes. An Observation
/// in the vital-signs category coded with one of these is a vital sign too, so it must carry
/// the profile's LOINC code as well ("additional codes that translate or map to this code are
/// allowed", Observation.code in each profile).
const SNOMED_CT_CODES: [(&str, &str); 9] = [
    ("27113001", "bodyweight"),  // Body weight
    ("276885007", "bodytemp"),   // Core body temperature
    ("363812007", "headcircum"), // Head circumference
    ("364075005", "heartrate"),  // Heart rate
    ("386725007", "bodytemp"),   // Body temperature
    ("50373000", "bodyheight"),  // Body height measure
    ("60621009", "bmi"),         // Body mass index
    ("75367002", "bp"),          // Blood pressure
    ("86290005", "resprate"),    // Respiratory rate
];

/// The vital signs profile an Observation must conform to, by its code. An Observation
/// entered in error ("this electronic record should never have existed", R4 ObservationStatus)
/// measured nothing, so no profile applies to it.
fn vital_sign_profile(observation: &Object) -> Option<&'static str> {
    if observation.text("status") == Some("entered-in-error") {
        return None;
    }
    let codings = observation
        .objects("code")
        .flat_map(|code| code.objects("coding"));
    let mut by_snomed_ct = None;
    for coding in codings {
        let Some(code) = coding.text("code") else {
            continue;
        };
        match coding.text("system") {
            Some(LOINC) => {
                if let Ok(idx) =
                    model::VITAL_SIGNS_CODES.binary_search_by(|(known, _)| known.cmp(&code))
                {
                    return model::VITAL_SIGNS_CODES.get(idx).map(|(_, url)| *url);
                }
            }
            Some(SNOMED_CT) => {
                by_snomed_ct = by_snomed_ct.or_else(|| {
                    SNOMED_CT_CODES
                        .iter()
                        .find(|(known, _)| *known == code)
                        .map(|(_, id)| *id)
                });
            }
            _ => {}
        }
    }
    let id = by_snomed_ct?;
    let vital_signs_category = observation
        .objects("category")
        .flat_map(|category| category.objects("coding"))
        .any(|coding| coding.text("code") == Some("vital-signs"));
    if !vital_signs_category {
        return None;
    }
    model::VITAL_SIGNS_CODES
        .iter()
        .map(|(_, url)| *url)
        .find(|url| url.strip_prefix(model::CORE_DEFINITIONS) == Some(id))
}

impl Validator {
    /// The vital signs profiles, read on first use.
    fn vital_sign_profiles(&mut self) -> Rc<Profiles> {
        self.vital_signs
            .get_or_insert_with(|| {
                let mut profiles = Profiles::new();
                let definitions = model::VITAL_SIGNS_DEFINITIONS.as_bytes();
                if let Ok(bundle) = crate::json::fhir::parse_resource(definitions) {
                    profiles.load(&bundle);
                }
                Rc::new(profiles)
            })
            .clone()
    }
}

impl Walk<'_> {
    /// Checks an Observation (at `path`, with `root` as `%rootResource`) against the vital
    /// signs profile its code calls for, if any.
    pub(super) fn vital_signs(&mut self, observation: &Object, root: &Object, path: &str) {
        let Some(url) = vital_sign_profile(observation) else {
            return;
        };
        let profiles = self.validator.vital_sign_profiles();
        let before = self.findings.len();
        self.profile_at(&profiles, observation, root, url, Severity::Error, path);
        for finding in self.findings.iter_mut().skip(before) {
            finding.message = format!(
                "{}; the vital signs profile {url} applies to this code",
                finding.message
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// The error messages for `json`.
    fn errors(json: &str) -> Vec<String> {
        let resource = crate::json::fhir::parse_resource(json.as_bytes())
            .unwrap_or_else(|err| panic!("{err}"));
        crate::validation::validate(&resource)
            .into_iter()
            .filter(|finding| finding.severity == Severity::Error)
            .map(|finding| format!("{}: {}", finding.path, finding.message))
            .collect()
    }

    const TEMPERATURE: &str = r#"{"resourceType":"Observation","status":"final",
        "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
        "code":{"coding":[CODINGS]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2020-06-30",
        "valueQuantity":{"value":36.0,"unit":"Cel","system":"http://unitsofmeasure.org","code":"UNIT"}}"#;

    fn temperature(codings: &str, unit: &str) -> String {
        TEMPERATURE
            .replace("CODINGS", codings)
            .replace("UNIT", unit)
    }

    #[test]
    fn the_definitions_load() {
        let profiles = Validator::new().vital_sign_profiles();
        assert_eq!(profiles.urls().count(), 11);
        for (_, url) in &model::VITAL_SIGNS_CODES {
            assert!(profiles.urls().any(|loaded| loaded == *url), "{url}");
        }
    }

    #[test]
    fn a_conforming_temperature_passes() {
        let loinc = r#"{"system":"http://loinc.org","code":"8310-5"},{"system":"http://snomed.info/sct","code":"276885007"}"#;
        assert_eq!(errors(&temperature(loinc, "Cel")), Vec::<String>::new());
    }

    #[test]
    fn a_temperature_in_an_unknown_unit_fails() {
        let loinc = r#"{"system":"http://loinc.org","code":"8310-5"}"#;
        let found = errors(&temperature(loinc, "K"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .contains("vital signs profile http://hl7.org/fhir/StructureDefinition/bodytemp"),
            "{found:?}"
        );
    }

    #[test]
    fn a_vital_sign_coded_in_snomed_ct_only_lacks_the_loinc_code() {
        let snomed_ct = r#"{"system":"http://snomed.info/sct","code":"276885007"}"#;
        let found = errors(&temperature(snomed_ct, "Cel"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("Observation.code: "), "{found:?}");
        // Entered in error: not a measurement, so no profile applies.
        let withdrawn = temperature(snomed_ct, "Cel").replace("\"final\"", "\"entered-in-error\"");
        assert_eq!(errors(&withdrawn), Vec::<String>::new());
        // Outside the vital-signs category, a SNOMED CT code alone does not call for the profile.
        let other = temperature(snomed_ct, "Cel").replace("\"vital-signs\"", "\"exam\"");
        assert_eq!(errors(&other), Vec::<String>::new());
    }
}
