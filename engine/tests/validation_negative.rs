//! Invalid resources, one rule of the R4 base specification broken in each (formats,
//! cardinality, required bindings, invariants): validation must report an error with the
//! expected message at the expected element.

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::outcome::Severity;
use hearth_engine::validation::validate;

const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "date month 13",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"birthDate":"2020-13-01"}"##,
        "expected a valid date value",
        "Patient.birthDate",
    ),
    (
        "date day 32",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"birthDate":"2020-01-32"}"##,
        "expected a valid date value",
        "Patient.birthDate",
    ),
    (
        "date with time",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"birthDate":"2020-01-01T10:00:00Z"}"##,
        "expected a valid date value",
        "Patient.birthDate",
    ),
    (
        "date two-digit year",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"birthDate":"20-01-01"}"##,
        "expected a valid date value",
        "Patient.birthDate",
    ),
    (
        "date slashes",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"birthDate":"2020/01/01"}"##,
        "expected a valid date value",
        "Patient.birthDate",
    ),
    (
        "dateTime hour 25",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"deceasedDateTime":"2020-01-01T25:00:00Z"}"##,
        "expected a valid dateTime value",
        "Patient.deceased",
    ),
    (
        "dateTime no zone with seconds",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"deceasedDateTime":"2020-01-01T10:00:00"}"##,
        "expected a valid dateTime value",
        "Patient.deceased",
    ),
    (
        "dateTime minute 60",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"deceasedDateTime":"2020-01-01T10:60:00Z"}"##,
        "expected a valid dateTime value",
        "Patient.deceased",
    ),
    (
        "dateTime letters",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"deceasedDateTime":"yesterday"}"##,
        "expected a valid dateTime value",
        "Patient.deceased",
    ),
    (
        "instant without seconds",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"meta":{"lastUpdated":"2020-01-01T10:00Z"}}"##,
        "expected a valid instant value",
        "Patient.meta.lastUpdated",
    ),
    (
        "instant date only",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"meta":{"lastUpdated":"2020-01-01"}}"##,
        "expected a valid instant value",
        "Patient.meta.lastUpdated",
    ),
    (
        "instant no zone",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"meta":{"lastUpdated":"2020-01-01T10:00:00"}}"##,
        "expected a valid instant value",
        "Patient.meta.lastUpdated",
    ),
    (
        "id with space",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"id":"a b"}"##,
        "expected a valid id value",
        "Patient.id",
    ),
    (
        "id with underscore",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"id":"a_b"}"##,
        "expected a valid id value",
        "Patient.id",
    ),
    (
        "id too long",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"##,
        "expected a valid id value",
        "Patient.id",
    ),
    (
        "id with slash",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"id":"a/b"}"##,
        "expected a valid id value",
        "Patient.id",
    ),
    (
        "code with leading space",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"language":" male"}"##,
        "expected a valid code value",
        "Patient.language",
    ),
    (
        "code with trailing space",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"language":"male "}"##,
        "expected a valid code value",
        "Patient.language",
    ),
    (
        "code with double space",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"language":"a  b"}"##,
        "expected a valid code value",
        "Patient.language",
    ),
    (
        "time hour 24",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"},"valueTime":"24:00:00"}"##,
        "expected a valid time value",
        "Observation.value",
    ),
    (
        "time without seconds",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"},"valueTime":"10:00"}"##,
        "expected a valid time value",
        "Observation.value",
    ),
    (
        "uuid malformed",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"extension":[{"url":"http://x","valueUuid":"urn:uuid:1234"}]}"##,
        "expected a valid uuid value",
        "Patient.extension[0].value",
    ),
    (
        "base64 invalid",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"photo":[{"data":"@@@@"}]}"##,
        "expected a valid base64Binary value",
        "Patient.photo[0].data",
    ),
    (
        "Observation without status",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"code":{"text":"x"}}"##,
        "missing required element \"status\"",
        "Observation",
    ),
    (
        "Observation without code",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final"}"##,
        "missing required element \"code\"",
        "Observation",
    ),
    (
        "Encounter without class",
        r##"{"resourceType":"Encounter","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"finished"}"##,
        "missing required element \"class\"",
        "Encounter",
    ),
    (
        "Encounter without status",
        r##"{"resourceType":"Encounter","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"class":{"code":"AMB"}}"##,
        "missing required element \"status\"",
        "Encounter",
    ),
    (
        "Condition without subject",
        r##"{"resourceType":"Condition","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}"##,
        "missing required element \"subject\"",
        "Condition",
    ),
    (
        "Bundle without type",
        r##"{"resourceType":"Bundle"}"##,
        "missing required element \"type\"",
        "Bundle",
    ),
    (
        "Extension without url",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"extension":[{"valueString":"x"}]}"##,
        "missing required element \"url\"",
        "Patient.extension[0]",
    ),
    (
        "Narrative without status",
        r##"{"resourceType":"Patient","text":{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}"##,
        "missing required element \"status\"",
        "Patient.text",
    ),
    (
        "Narrative without div",
        r##"{"resourceType":"Patient","text":{"status":"generated"}}"##,
        "missing required element \"div\"",
        "Patient.text",
    ),
    (
        "MedicationRequest without intent",
        r##"{"resourceType":"MedicationRequest","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"active","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"}}"##,
        "missing required element \"intent\"",
        "MedicationRequest",
    ),
    (
        "MedicationRequest without medication",
        r##"{"resourceType":"MedicationRequest","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"active","intent":"order","subject":{"reference":"Patient/1"}}"##,
        "missing required element \"medication\"",
        "MedicationRequest",
    ),
    (
        "Procedure without subject",
        r##"{"resourceType":"Procedure","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"completed"}"##,
        "missing required element \"subject\"",
        "Procedure",
    ),
    (
        "Immunization without vaccineCode",
        r##"{"resourceType":"Immunization","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"completed","patient":{"reference":"Patient/1"},"occurrenceDateTime":"2020"}"##,
        "missing required element \"vaccineCode\"",
        "Immunization",
    ),
    (
        "Immunization without occurrence",
        r##"{"resourceType":"Immunization","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"completed","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/1"}}"##,
        "missing required element \"occurrence\"",
        "Immunization",
    ),
    (
        "AllergyIntolerance without patient",
        r##"{"resourceType":"AllergyIntolerance","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}"##,
        "missing required element \"patient\"",
        "AllergyIntolerance",
    ),
    (
        "Claim without patient",
        r##"{"resourceType":"Claim","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"active","type":{"text":"x"},"use":"claim","created":"2020-01-01","provider":{"reference":"Practitioner/1"},"priority":{"text":"x"},"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/1"}}]}"##,
        "missing required element \"patient\"",
        "Claim",
    ),
    (
        "Questionnaire item without type",
        r##"{"resourceType":"Questionnaire","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"active","item":[{"linkId":"1"}]}"##,
        "missing required element \"type\"",
        "Questionnaire.item[0]",
    ),
    (
        "Bundle entry request without method",
        r##"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"url":"Patient"}}]}"##,
        "missing required element \"method\"",
        "Bundle.entry[0].request",
    ),
    (
        "Coverage without beneficiary",
        r##"{"resourceType":"Coverage","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"active","payor":[{"reference":"Organization/1"}]}"##,
        "missing required element \"beneficiary\"",
        "Coverage",
    ),
    (
        "Coverage without payor",
        r##"{"resourceType":"Coverage","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"active","beneficiary":{"reference":"Patient/1"}}"##,
        "missing required element \"payor\"",
        "Coverage",
    ),
    (
        "Observation component without code",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"},"component":[{"valueString":"x"}]}"##,
        "missing required element \"code\"",
        "Observation.component[0]",
    ),
    (
        "Patient link without other",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"link":[{"type":"seealso"}]}"##,
        "missing required element \"other\"",
        "Patient.link[0]",
    ),
    (
        "Patient communication without language",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"communication":[{"preferred":true}]}"##,
        "missing required element \"language\"",
        "Patient.communication[0]",
    ),
    (
        "binding Patient.gender",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"gender":"mal"}"##,
        "administrative-gender",
        "Patient.gender",
    ),
    (
        "binding Observation.status",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"finalised","code":{"text":"x"}}"##,
        "observation-status",
        "Observation.status",
    ),
    (
        "binding Encounter.status",
        r##"{"resourceType":"Encounter","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"done","class":{"code":"AMB"}}"##,
        "encounter-status",
        "Encounter.status",
    ),
    (
        "binding Bundle.type",
        r##"{"resourceType":"Bundle","type":"list"}"##,
        "bundle-type",
        "Bundle.type",
    ),
    (
        "binding Bundle request method",
        r##"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"FETCH","url":"x"}}]}"##,
        "http-verb",
        "Bundle.entry[0].request.method",
    ),
    (
        "binding Narrative.status",
        r##"{"resourceType":"Patient","text":{"status":"made","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}"##,
        "narrative-status",
        "Patient.text.status",
    ),
    (
        "binding ContactPoint.system",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"telecom":[{"system":"pager2","value":"1"}]}"##,
        "contact-point-system",
        "Patient.telecom[0].system",
    ),
    (
        "binding ContactPoint.use",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"telecom":[{"system":"phone","value":"1","use":"office"}]}"##,
        "contact-point-use",
        "Patient.telecom[0].use",
    ),
    (
        "binding HumanName.use",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"name":[{"use":"legal","family":"x"}]}"##,
        "name-use",
        "Patient.name[0].use",
    ),
    (
        "binding Address.use",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"address":[{"use":"holiday","city":"x"}]}"##,
        "address-use",
        "Patient.address[0].use",
    ),
    (
        "binding Identifier.use",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"identifier":[{"use":"primary","value":"1"}]}"##,
        "identifier-use",
        "Patient.identifier[0].use",
    ),
    (
        "binding Quantity.comparator",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"},"valueQuantity":{"value":1,"comparator":"=="}}"##,
        "quantity-comparator",
        "Observation.value.comparator",
    ),
    (
        "binding MedicationRequest.intent",
        r##"{"resourceType":"MedicationRequest","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"active","intent":"wish","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"}}"##,
        "medicationrequest-intent",
        "MedicationRequest.intent",
    ),
    (
        "binding Condition.clinicalStatus coding",
        r##"{"resourceType":"Condition","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"cured"}]},"subject":{"reference":"Patient/1"}}"##,
        "condition-clinical",
        "Condition.clinicalStatus",
    ),
    (
        "binding Questionnaire item type",
        r##"{"resourceType":"Questionnaire","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"active","item":[{"linkId":"1","type":"number"}]}"##,
        "item-type",
        "Questionnaire.item[0].type",
    ),
    (
        "binding Appointment.status",
        r##"{"resourceType":"Appointment","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"planned","participant":[{"status":"accepted","actor":{"reference":"Patient/1"}}]}"##,
        "appointmentstatus",
        "Appointment.status",
    ),
    (
        "binding AllergyIntolerance.criticality",
        r##"{"resourceType":"AllergyIntolerance","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"patient":{"reference":"Patient/1"},"criticality":"severe"}"##,
        "allergy-intolerance-criticality",
        "AllergyIntolerance.criticality",
    ),
    (
        "pat-1",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"contact":[{"gender":"male"}]}"##,
        "pat-1",
        "Patient.contact[0]",
    ),
    (
        "per-1",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"name":[{"family":"x","period":{"start":"2020-01-02","end":"2020-01-01"}}]}"##,
        "per-1",
        "Patient.name[0].period",
    ),
    (
        "ext-1",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"extension":[{"url":"http://x","valueString":"a","extension":[{"url":"http://y","valueString":"b"}]}]}"##,
        "ext-1",
        "Patient.extension[0]",
    ),
    (
        "ext-1 neither",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"extension":[{"url":"http://x"}]}"##,
        "ext-1",
        "Patient.extension[0]",
    ),
    (
        "dom-2",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"contained":[{"resourceType":"Organization","id":"o","contained":[{"resourceType":"Patient","id":"p"}]}]}"##,
        "dom-2",
        "Patient",
    ),
    (
        "dom-3",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"contained":[{"resourceType":"Organization","id":"o","name":"x"}]}"##,
        "dom-3",
        "Patient",
    ),
    (
        "dom-4",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"contained":[{"resourceType":"Organization","id":"o","meta":{"versionId":"1"}}],"managingOrganization":{"reference":"#o"}}"##,
        "dom-4",
        "Patient",
    ),
    (
        "dom-5",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"contained":[{"resourceType":"Organization","id":"o","meta":{"security":[{"code":"R"}]}}],"managingOrganization":{"reference":"#o"}}"##,
        "dom-5",
        "Patient",
    ),
    (
        "ref-1",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"managingOrganization":{"reference":"#missing"}}"##,
        "ref-1",
        "Patient.managingOrganization",
    ),
    (
        "obs-6",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"},"valueString":"x","dataAbsentReason":{"text":"unknown"}}"##,
        "obs-6",
        "Observation",
    ),
    (
        "obs-7",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"1"}]},"valueString":"x","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"1"}]},"valueString":"y"}]}"##,
        "obs-7",
        "Observation",
    ),
    (
        "obs-3",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"},"referenceRange":[{"type":{"text":"x"}}]}"##,
        "obs-3",
        "Observation.referenceRange[0]",
    ),
    (
        "qty-3",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"},"valueQuantity":{"value":1,"code":"mg"}}"##,
        "qty-3",
        "Observation.value",
    ),
    (
        "cpt-2",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"telecom":[{"value":"555"}]}"##,
        "cpt-2",
        "Patient.telecom[0]",
    ),
    (
        "txt-2 empty narrative",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"> </div>"}}"##,
        "txt-2",
        "Patient.text.div",
    ),
    (
        "txt-1 script",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x<script>alert(1)</script></div>"}}"##,
        "txt-1",
        "Patient.text.div",
    ),
    (
        "que-1 group without items",
        r##"{"resourceType":"Questionnaire","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"active","item":[{"linkId":"1","type":"group"}]}"##,
        "que-1",
        "Questionnaire.item[0]",
    ),
    (
        "que-6 display with required",
        r##"{"resourceType":"Questionnaire","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"active","item":[{"linkId":"1","type":"display","text":"x","required":true}]}"##,
        "que-6",
        "Questionnaire.item[0]",
    ),
    (
        "bdl-1 total in document",
        r##"{"resourceType":"Bundle","type":"document","total":1}"##,
        "bdl-1",
        "Bundle",
    ),
    (
        "bdl-3 entry request in collection",
        r##"{"resourceType":"Bundle","type":"collection","entry":[{"request":{"method":"GET","url":"x"}}]}"##,
        "bdl-3",
        "Bundle",
    ),
    (
        "bdl-7 duplicate fullUrl",
        r##"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Basic","code":{"text":"x"}}},{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Basic","code":{"text":"y"}}}]}"##,
        "bdl-7",
        "Bundle",
    ),
    (
        "per-1 Encounter period",
        r##"{"resourceType":"Encounter","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"finished","class":{"code":"AMB"},"period":{"start":"2020-02-01","end":"2020-01-01"}}"##,
        "per-1",
        "Encounter.period",
    ),
    (
        "con-4 abatement without clinicalStatus",
        r##"{"resourceType":"Condition","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"subject":{"reference":"Patient/1"},"abatementDateTime":"2020"}"##,
        "con-4",
        "Condition",
    ),
    (
        "age-1 negative age",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"extension":[{"url":"http://x","valueAge":{"value":-3,"unit":"a","system":"http://unitsofmeasure.org","code":"a"}}]}"##,
        "age-1",
        "Patient.extension[0].value",
    ),
    (
        "imm-1 education",
        r##"{"resourceType":"Immunization","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"completed","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/1"},"occurrenceDateTime":"2020","education":[{"presentationDate":"2020"}]}"##,
        "imm-1",
        "Immunization.education[0]",
    ),
    (
        "fullUrl not absolute",
        r##"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"Patient/1","resource":{"resourceType":"Patient","id":"1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}}]}"##,
        "expected fullUrl to be an absolute URL",
        "Bundle.entry[0]",
    ),
    (
        "RESTful fullUrl with another id",
        r##"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"http://a.org/fhir/Patient/2","resource":{"resourceType":"Patient","id":"1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}}]}"##,
        "must end with the resource's type and id",
        "Bundle.entry[0]",
    ),
    (
        "link relation twice",
        r##"{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"http://a.org/Patient"},{"relation":"self","url":"http://a.org/Patient"}]}"##,
        "the link relation \"self\" can only occur once",
        "Bundle.link[1]",
    ),
    (
        "search match without id",
        r##"{"resourceType":"Bundle","type":"searchset","entry":[{"fullUrl":"urn:uuid:5b3c2a1e-8f4d-4b2a-9c1d-2e3f4a5b6c7d","resource":{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}},"search":{"mode":"match"}}]}"##,
        "search results must have ids",
        "Bundle.entry[0].resource",
    ),
    (
        "search match of another type",
        r##"{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"http://a.org/fhir/Patient?name=x"}],"entry":[{"fullUrl":"http://a.org/fhir/Observation/1","resource":{"resourceType":"Observation","id":"1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"}},"search":{"mode":"match"}}]}"##,
        "a match of a search for Patient cannot be an Observation",
        "Bundle.entry[0].resource",
    ),
    (
        "reference to a type the element does not allow",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"},"subject":{"reference":"Medication/x"}}"##,
        "expected a reference to a Patient, a Group, a Device or a Location, found a reference to a Medication \"Medication/x\"",
        "Observation.subject.reference",
    ),
    (
        "absolute reference with _history to a type the element does not allow",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"},"encounter":{"reference":"http://example.org/fhir/Patient/1/_history/2"}}"##,
        "expected a reference to an Encounter, found a reference to a Patient",
        "Observation.encounter.reference",
    ),
    (
        "conditional reference to a type the element does not allow",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"text":"x"},"subject":{"reference":"Organization?identifier=x"}}"##,
        "found a reference to an Organization",
        "Observation.subject.reference",
    ),
    (
        "search outcome not an OperationOutcome",
        r##"{"resourceType":"Bundle","type":"searchset","entry":[{"fullUrl":"http://a.org/fhir/Patient/1","resource":{"resourceType":"Patient","id":"1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}},"search":{"mode":"outcome"}}]}"##,
        "must be an OperationOutcome",
        "Bundle.entry[0].resource",
    ),
    (
        "Coding.system relative",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"coding":[{"system":"loinc","code":"1-8"}]}}"##,
        "expected Coding.system to be an absolute URI",
        "Observation.code.coding[0]",
    ),
    (
        "Coding.system a value set",
        r##"{"resourceType":"Observation","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final","code":{"coding":[{"system":"http://hl7.org/fhir/ValueSet/observation-codes","code":"1-8"}]}}"##,
        "found the value set",
        "Observation.code.coding[0]",
    ),
    (
        "attachment size differs from data",
        r##"{"resourceType":"Media","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"completed","content":{"contentType":"text/plain","data":"aGVsbG8=","size":6}}"##,
        "does not match the size of its data, 5 bytes",
        "Media.content",
    ),
    (
        "narrative with an HTML entity",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">caf&eacute;</div>"}}"##,
        "the entity \"&eacute;\"",
        "Patient.text",
    ),
    (
        "composite search parameter with one component",
        r##"{"resourceType":"SearchParameter","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"url":"http://a.org/SearchParameter/x","name":"x","status":"draft","description":"x","code":"x","base":["Observation"],"type":"composite","expression":"Observation","component":[{"definition":"http://hl7.org/fhir/SearchParameter/clinical-code","expression":"code"}]}"##,
        "two or more components",
        "SearchParameter",
    ),
    (
        "capability search parameter of the wrong type",
        r##"{"resourceType":"CapabilityStatement","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"draft","date":"2020-01-01","kind":"instance","fhirVersion":"4.0.1","format":["json"],"implementation":{"description":"x"},"rest":[{"mode":"server","resource":[{"type":"Patient","searchParam":[{"name":"birthdate","definition":"http://hl7.org/fhir/SearchParameter/individual-birthdate","type":"string"}]}]}]}"##,
        "is of type date, but is declared here as string",
        "CapabilityStatement.rest[0].resource[0].searchParam[0]",
    ),
    (
        "que-12 two enableWhen without enableBehavior",
        r##"{"resourceType":"Questionnaire","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"draft","item":[{"linkId":"a","type":"boolean"},{"linkId":"b","type":"string","enableWhen":[{"question":"a","operator":"=","answerBoolean":true},{"question":"a","operator":"exists","answerBoolean":true}]}]}"##,
        "que-12",
        "Questionnaire.item[1]",
    ),
    (
        "search parameter derived with another type",
        r##"{"resourceType":"SearchParameter","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"url":"http://a.org/SearchParameter/x","name":"x","derivedFrom":"http://hl7.org/fhir/SearchParameter/Organization-name","status":"draft","description":"x","code":"x","base":["Organization"],"type":"token","expression":"Organization.name"}"##,
        "differs from the type string",
        "SearchParameter",
    ),
    (
        "search parameter derived for another base",
        r##"{"resourceType":"SearchParameter","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"url":"http://a.org/SearchParameter/x","name":"x","derivedFrom":"http://hl7.org/fhir/SearchParameter/Organization-name","status":"draft","description":"x","code":"x","base":["Patient"],"type":"string","expression":"Patient.name"}"##,
        "the base Patient is not a base of",
        "SearchParameter",
    ),
    (
        "core extension outside its context",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"name":[{"family":"Family","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/humanname-mothers-family","valueString":"Mother"}]}]}"##,
        "is not allowed here (this element is HumanName, Patient.name; it is allowed on HumanName.family)",
        "Patient.name[0].extension[0]",
    ),
    (
        "core extension with a value of the wrong type",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace","valueString":"Leeds"}]}"##,
        "takes a value of type Address, found string",
        "Patient.extension[0].value",
    ),
    (
        "core extension made of sub-extensions, with a value",
        r##"{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-nationality","valueCode":"GB"}]}"##,
        "has sub-extensions and no value, found a code value",
        "Patient.extension[0].value",
    ),
];

#[test]
fn every_invalid_resource_is_reported_at_its_element() {
    let mut failures = Vec::new();
    let long_text = format!(
        r##"{{"resourceType":"Patient","text":{{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}},"name":[{{"text":"{}"}}]}}"##,
        "x".repeat(1024 * 1024 + 1)
    );
    let generated = [(
        "string over 1 MB",
        long_text.as_str(),
        "FHIR strings are at most 1 MB",
        "Patient.name[0].text",
    )];
    for (name, input, message, path) in CASES.iter().chain(&generated) {
        let resource = match parse_resource(input.as_bytes()) {
            Ok(resource) => resource,
            Err(err) => {
                failures.push(format!("{name}: does not read: {err}"));
                continue;
            }
        };
        let findings = validate(&resource);
        let found = findings.iter().any(|finding| {
            finding.severity == Severity::Error
                && finding.message.contains(message)
                && finding.path == *path
        });
        if !found {
            let errors: Vec<String> = findings
                .iter()
                .map(|f| format!("{:?} {} at {}", f.severity, f.message, f.path))
                .collect();
            failures.push(format!(
                "{name}: expected an error containing {message:?} at {path}, found {errors:?}"
            ));
        }
    }
    println!(
        "validation negative: {} invalid resources, {} reported as expected",
        CASES.len() + generated.len(),
        CASES.len() + generated.len() - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        CASES.len() >= 80,
        "expected at least 80 cases, found {}",
        CASES.len()
    );
}
