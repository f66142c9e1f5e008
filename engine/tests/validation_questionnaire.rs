//! QuestionnaireResponses checked against their Questionnaire: one rule broken in each case,
//! and the same response without the break validating clean.

use std::fs;
use std::path::{Path, PathBuf};

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::outcome::Severity;
use hearth_engine::resource::Object;
use hearth_engine::validation::{Finding, Profiles, ValidateOptions, Validator};

const URL: &str = "http://example.org/Questionnaire/intake";

fn read(text: &str) -> Object {
    parse_resource(text.as_bytes()).unwrap_or_else(|err| panic!("{err}\n{text}"))
}

/// The profiles with one Questionnaire, at [`URL`], holding `items`.
fn questionnaire(items: &str) -> Profiles {
    let mut profiles = Profiles::new();
    let loaded = profiles.load(&read(&format!(
        r#"{{"resourceType":"Questionnaire","url":"{URL}","status":"active","item":[{items}]}}"#
    )));
    assert_eq!(loaded, 1);
    profiles
}

fn findings(profiles: &Profiles, response: &str) -> Vec<Finding> {
    let options = ValidateOptions {
        profiles: Some(profiles),
        ..ValidateOptions::default()
    };
    Validator::new().validate_with(&read(response), &options)
}

/// The errors for a response with `status` and `items`, answering the Questionnaire at [`URL`].
fn errors_with_status(profiles: &Profiles, status: &str, items: &str) -> Vec<String> {
    let response = format!(
        r#"{{"resourceType":"QuestionnaireResponse","questionnaire":"{URL}","status":"{status}","item":[{items}]}}"#
    );
    findings(profiles, &response)
        .into_iter()
        .filter(|finding| finding.severity == Severity::Error)
        .map(|finding| format!("{} @ {}", finding.message, finding.path))
        .collect()
}

fn errors(profiles: &Profiles, items: &str) -> Vec<String> {
    errors_with_status(profiles, "completed", items)
}

/// Exactly one error, containing `expected`.
#[track_caller]
fn assert_one(found: &[String], expected: &str) {
    assert!(
        found.len() == 1 && found[0].contains(expected),
        "expected one error with {expected:?}, found {found:#?}"
    );
}

#[track_caller]
fn assert_clean(found: &[String]) {
    assert!(found.is_empty(), "expected no errors, found {found:#?}");
}

#[test]
fn an_unknown_link_id_is_an_error() {
    let profiles = questionnaire(r#"{"linkId":"q1","type":"string"}"#);
    let found = errors(
        &profiles,
        r#"{"linkId":"q2","answer":[{"valueString":"a"}]}"#,
    );
    assert_one(
        &found,
        "no item with linkId \"q2\" @ QuestionnaireResponse.item[0]",
    );
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"q1","answer":[{"valueString":"a"}]}"#,
    ));
}

#[test]
fn items_nest_as_the_questionnaire_nests_them() {
    let profiles = questionnaire(
        r#"{"linkId":"g1","type":"group","item":[{"linkId":"q1","type":"string"}]},
           {"linkId":"q2","type":"boolean","item":[{"linkId":"q3","type":"string"}]}"#,
    );
    // q1 belongs in g1, not at the top level.
    let found = errors(
        &profiles,
        r#"{"linkId":"q1","answer":[{"valueString":"a"}]}"#,
    );
    assert_one(&found, "has it at another place");
    // A question's children go under its answers.
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"g1","item":[{"linkId":"q1","answer":[{"valueString":"a"}]}]},
           {"linkId":"q2","answer":[{"valueBoolean":true,"item":[{"linkId":"q3","answer":[{"valueString":"b"}]}]}]}"#,
    ));
    let found = errors(
        &profiles,
        r#"{"linkId":"q2","answer":[{"valueBoolean":true,"item":[{"linkId":"q1","answer":[{"valueString":"b"}]}]}]}"#,
    );
    assert_one(&found, "@ QuestionnaireResponse.item[0].answer[0].item[0]");
}

#[test]
fn a_required_item_needs_an_answer_unless_the_response_is_in_progress() {
    let profiles = questionnaire(
        r#"{"linkId":"q1","type":"string","required":true},{"linkId":"q2","type":"string"}"#,
    );
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"q2","answer":[{"valueString":"a"}]}"#,
        ),
        "required item \"q1\" is missing",
    );
    assert_one(
        &errors(&profiles, r#"{"linkId":"q1"}"#),
        "required item \"q1\" has no answer @ QuestionnaireResponse.item[0]",
    );
    assert_clean(&errors_with_status(
        &profiles,
        "in-progress",
        r#"{"linkId":"q2","answer":[{"valueString":"a"}]}"#,
    ));
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"q1","answer":[{"valueString":"a"}]}"#,
    ));
}

#[test]
fn a_required_group_needs_an_answered_item() {
    let profiles = questionnaire(
        r#"{"linkId":"g1","type":"group","required":true,"item":[{"linkId":"q1","type":"string"}]}"#,
    );
    assert_one(
        &errors(&profiles, r#"{"linkId":"g1"}"#),
        "required group \"g1\" has no answered items",
    );
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"g1","item":[{"linkId":"q1","answer":[{"valueString":"a"}]}]}"#,
    ));
}

#[test]
fn an_item_that_does_not_repeat_has_one_answer() {
    let profiles = questionnaire(
        r#"{"linkId":"q1","type":"string"},{"linkId":"q2","type":"string","repeats":true}"#,
    );
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"q1","answer":[{"valueString":"a"},{"valueString":"b"}]}"#,
        ),
        "does not repeat",
    );
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"q2","answer":[{"valueString":"a"},{"valueString":"b"}]}"#,
    ));
}

#[test]
fn a_group_that_does_not_repeat_appears_once() {
    let profiles = questionnaire(
        r#"{"linkId":"g1","type":"group","item":[{"linkId":"q1","type":"string"}]},
           {"linkId":"g2","type":"group","repeats":true,"item":[{"linkId":"q2","type":"string"}]}"#,
    );
    let answered = |link: &str, inner: &str| {
        format!(
            r#"{{"linkId":"{link}","item":[{{"linkId":"{inner}","answer":[{{"valueString":"a"}}]}}]}}"#
        )
    };
    assert_one(
        &errors(
            &profiles,
            &format!("{},{}", answered("g1", "q1"), answered("g1", "q1")),
        ),
        "group \"g1\" does not repeat",
    );
    assert_clean(&errors(
        &profiles,
        &format!("{},{}", answered("g2", "q2"), answered("g2", "q2")),
    ));
}

/// Each item type with an answer of its type, and one of another type.
#[test]
fn answers_have_the_type_the_item_type_calls_for() {
    let cases = [
        (
            "boolean",
            r#""valueBoolean":true"#,
            r#""valueString":"yes""#,
        ),
        ("decimal", r#""valueDecimal":1.5"#, r#""valueInteger":1"#),
        ("integer", r#""valueInteger":3"#, r#""valueDecimal":3.0"#),
        (
            "date",
            r#""valueDate":"2024-01-02""#,
            r#""valueDateTime":"2024-01-02T10:00:00Z""#,
        ),
        (
            "dateTime",
            r#""valueDateTime":"2024-01-02T10:00:00Z""#,
            r#""valueDate":"2024-01-02""#,
        ),
        (
            "time",
            r#""valueTime":"10:00:00""#,
            r#""valueString":"10:00""#,
        ),
        (
            "string",
            r#""valueString":"a""#,
            r#""valueCoding":{"code":"a"}"#,
        ),
        (
            "text",
            r#""valueString":"a\nb""#,
            r#""valueUri":"http://a""#,
        ),
        (
            "url",
            r#""valueUri":"http://example.org""#,
            r#""valueString":"http://example.org""#,
        ),
        (
            "choice",
            r#""valueCoding":{"system":"http://s","code":"a"}"#,
            r#""valueString":"a""#,
        ),
        (
            "open-choice",
            r#""valueString":"free text""#,
            r#""valueInteger":1"#,
        ),
        (
            "attachment",
            r#""valueAttachment":{"contentType":"text/plain","data":"YQ=="}"#,
            r#""valueString":"a""#,
        ),
        (
            "reference",
            r#""valueReference":{"reference":"Patient/1"}"#,
            r#""valueUri":"Patient/1""#,
        ),
        (
            "quantity",
            r#""valueQuantity":{"value":1,"unit":"kg"}"#,
            r#""valueDecimal":1"#,
        ),
    ];
    for (item_type, right, wrong) in cases {
        let profiles = questionnaire(&format!(r#"{{"linkId":"q1","type":"{item_type}"}}"#));
        let answer = |value: &str| format!(r#"{{"linkId":"q1","answer":[{{{value}}}]}}"#);
        assert_clean(&errors(&profiles, &answer(right)));
        let found = errors(&profiles, &answer(wrong));
        assert_one(&found, &format!("(type \"{item_type}\")"));
    }
    let profiles = questionnaire(r#"{"linkId":"q1","type":"open-choice"}"#);
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"q1","answer":[{"valueCoding":{"code":"a"}}]}"#,
    ));
}

#[test]
fn display_and_group_items_have_no_answers() {
    let profiles = questionnaire(
        r#"{"linkId":"d1","type":"display","text":"Note"},
           {"linkId":"g1","type":"group","item":[{"linkId":"q1","type":"string"}]}"#,
    );
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"d1","answer":[{"valueString":"a"}]}"#,
        ),
        "is a display item, which has no answers",
    );
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"g1","answer":[{"valueString":"a"}]}"#,
        ),
        "is a group item, which has no answers",
    );
    assert_clean(&errors(&profiles, r#"{"linkId":"d1"}"#));
}

#[test]
fn choice_answers_are_among_the_answer_options() {
    let profiles = questionnaire(
        r#"{"linkId":"q1","type":"choice","answerOption":[{"valueCoding":{"system":"http://s","code":"a"}},{"valueCoding":{"system":"http://s","code":"b"}}]},
           {"linkId":"q2","type":"integer","answerOption":[{"valueInteger":1},{"valueInteger":2}]},
           {"linkId":"q3","type":"open-choice","answerOption":[{"valueCoding":{"system":"http://s","code":"a"}}]}"#,
    );
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"q1","answer":[{"valueCoding":{"system":"http://s","code":"c"}}]}"#,
        ),
        "is not one of the answerOption values",
    );
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"q2","answer":[{"valueInteger":3}]}"#,
        ),
        "is not one of the answerOption values",
    );
    // open-choice takes free text besides its options.
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"q1","answer":[{"valueCoding":{"system":"http://s","code":"b","display":"B"}}]},
           {"linkId":"q2","answer":[{"valueInteger":2}]},
           {"linkId":"q3","answer":[{"valueString":"something else"}]}"#,
    ));
}

#[test]
fn choice_answers_are_in_a_loaded_or_core_answer_value_set() {
    let mut profiles = questionnaire(
        r#"{"linkId":"q1","type":"choice","answerValueSet":"http://example.org/ValueSet/yes-no"},
           {"linkId":"q2","type":"choice","answerValueSet":"http://hl7.org/fhir/ValueSet/administrative-gender"},
           {"linkId":"q3","type":"choice","answerValueSet":"http://example.org/ValueSet/not-loaded"}"#,
    );
    profiles.load(&read(
        r#"{"resourceType":"ValueSet","url":"http://example.org/ValueSet/yes-no","status":"active","compose":{"include":[{"system":"http://s","concept":[{"code":"yes"},{"code":"no"}]}]}}"#,
    ));
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"q1","answer":[{"valueCoding":{"system":"http://s","code":"maybe"}}]}"#,
        ),
        "is not in the value set http://example.org/ValueSet/yes-no",
    );
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"q2","answer":[{"valueCoding":{"system":"http://hl7.org/fhir/administrative-gender","code":"woman"}}]}"#,
        ),
        "administrative-gender",
    );
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"q1","answer":[{"valueCoding":{"system":"http://s","code":"no"}}]},
           {"linkId":"q2","answer":[{"valueCoding":{"system":"http://hl7.org/fhir/administrative-gender","code":"female"}}]},
           {"linkId":"q3","answer":[{"valueCoding":{"system":"http://s","code":"anything"}}]}"#,
    ));
}

#[test]
fn answers_are_within_max_length() {
    let profiles = questionnaire(r#"{"linkId":"q1","type":"string","maxLength":3}"#);
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"q1","answer":[{"valueString":"abcd"}]}"#,
        ),
        "at most 3 characters long (maxLength); found 4",
    );
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"q1","answer":[{"valueString":"abc"}]}"#,
    ));
}

#[test]
fn a_disabled_item_has_no_answers_and_is_not_required() {
    let profiles = questionnaire(
        r#"{"linkId":"smoker","type":"boolean"},
           {"linkId":"packs","type":"integer","required":true,
            "enableWhen":[{"question":"smoker","operator":"=","answerBoolean":true}]}"#,
    );
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"smoker","answer":[{"valueBoolean":false}]},{"linkId":"packs","answer":[{"valueInteger":2}]}"#,
        ),
        "item \"packs\" is not enabled",
    );
    // Disabled, so not required.
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"smoker","answer":[{"valueBoolean":false}]}"#,
    ));
    // Enabled, so required.
    assert_one(
        &errors(
            &profiles,
            r#"{"linkId":"smoker","answer":[{"valueBoolean":true}]}"#,
        ),
        "required item \"packs\" is missing",
    );
}

#[test]
fn enable_behavior_all_needs_every_condition() {
    let items = |behavior: &str| {
        format!(
            r#"{{"linkId":"a","type":"integer"}},{{"linkId":"b","type":"integer"}},
               {{"linkId":"c","type":"string","required":true,"enableBehavior":"{behavior}",
                 "enableWhen":[{{"question":"a","operator":"=","answerInteger":1}},{{"question":"b","operator":"=","answerInteger":1}}]}}"#
        )
    };
    let response = r#"{"linkId":"a","answer":[{"valueInteger":1}]},{"linkId":"b","answer":[{"valueInteger":0}]}"#;
    assert_clean(&errors(&questionnaire(&items("all")), response));
    assert_one(
        &errors(&questionnaire(&items("any")), response),
        "required item \"c\" is missing",
    );
}

/// Each enableWhen operator, with an answer that enables the item and one that does not.
#[test]
fn enable_when_operators_compare_answers() {
    let cases = [
        (
            "exists",
            r#""answerBoolean":true"#,
            r#"{"valueInteger":5}"#,
            None,
        ),
        (
            "=",
            r#""answerInteger":5"#,
            r#"{"valueInteger":5}"#,
            Some(r#"{"valueInteger":4}"#),
        ),
        (
            "!=",
            r#""answerInteger":5"#,
            r#"{"valueInteger":4}"#,
            Some(r#"{"valueInteger":5}"#),
        ),
        (
            ">",
            r#""answerInteger":5"#,
            r#"{"valueInteger":6}"#,
            Some(r#"{"valueInteger":5}"#),
        ),
        (
            "<",
            r#""answerInteger":5"#,
            r#"{"valueInteger":4}"#,
            Some(r#"{"valueInteger":5}"#),
        ),
        (
            ">=",
            r#""answerInteger":5"#,
            r#"{"valueInteger":5}"#,
            Some(r#"{"valueInteger":4}"#),
        ),
        (
            "<=",
            r#""answerInteger":5"#,
            r#"{"valueInteger":5}"#,
            Some(r#"{"valueInteger":6}"#),
        ),
        (
            "=",
            r#""answerCoding":{"system":"http://s","code":"x"}"#,
            r#"{"valueCoding":{"system":"http://s","code":"x","display":"X"}}"#,
            Some(r#"{"valueCoding":{"system":"http://s","code":"y"}}"#),
        ),
        (
            ">",
            r#""answerDate":"2020-01-01""#,
            r#"{"valueDate":"2021-03-04"}"#,
            Some(r#"{"valueDate":"2019-12-31"}"#),
        ),
    ];
    for (operator, expected, enabling, disabling) in cases {
        let value_type = if expected.contains("Coding") {
            "choice"
        } else if expected.contains("Date") {
            "date"
        } else {
            "integer"
        };
        let profiles = questionnaire(&format!(
            r#"{{"linkId":"a","type":"{value_type}"}},
               {{"linkId":"b","type":"string","enableWhen":[{{"question":"a","operator":"{operator}",{expected}}}]}}"#
        ));
        let response = |answer: Option<&str>| {
            let answers = answer.map_or(String::new(), |answer| format!(r#","answer":[{answer}]"#));
            format!(
                r#"{{"linkId":"a"{answers}}},{{"linkId":"b","answer":[{{"valueString":"s"}}]}}"#
            )
        };
        assert_clean(&errors(&profiles, &response(Some(enabling))));
        let found = errors(&profiles, &response(disabling));
        assert_one(&found, "item \"b\" is not enabled");
    }
}

#[test]
fn enable_when_conditions_that_refer_to_each_other_end() {
    let profiles = questionnaire(
        r#"{"linkId":"a","type":"string","enableWhen":[{"question":"b","operator":"exists","answerBoolean":true}]},
           {"linkId":"b","type":"string","enableWhen":[{"question":"a","operator":"exists","answerBoolean":true}]}"#,
    );
    assert_clean(&errors(
        &profiles,
        r#"{"linkId":"a","answer":[{"valueString":"x"}]},{"linkId":"b","answer":[{"valueString":"y"}]}"#,
    ));
}

#[test]
fn bounds_from_core_extensions_are_checked() {
    let ext = "http://hl7.org/fhir/StructureDefinition/";
    let profiles = questionnaire(&format!(
        r#"{{"linkId":"n","type":"integer","extension":[{{"url":"{ext}minValue","valueInteger":1}},{{"url":"{ext}maxValue","valueInteger":10}}]}},
           {{"linkId":"d","type":"decimal","extension":[{{"url":"{ext}maxDecimalPlaces","valueInteger":1}}]}},
           {{"linkId":"e","type":"string","extension":[{{"url":"{ext}regex","valueString":"[a-z]+@[a-z]+"}}]}},
           {{"linkId":"u","type":"quantity","extension":[{{"url":"{ext}questionnaire-unitOption","valueCoding":{{"system":"http://unitsofmeasure.org","code":"kg"}}}}]}},
           {{"linkId":"r","type":"reference","extension":[{{"url":"{ext}questionnaire-referenceResource","valueCode":"Patient"}}]}}"#
    ));
    let clean = r#"{"linkId":"n","answer":[{"valueInteger":10}]},{"linkId":"d","answer":[{"valueDecimal":1.5}]},
                   {"linkId":"e","answer":[{"valueString":"a@b"}]},
                   {"linkId":"u","answer":[{"valueQuantity":{"value":3,"system":"http://unitsofmeasure.org","code":"kg"}}]},
                   {"linkId":"r","answer":[{"valueReference":{"reference":"Patient/1"}}]}"#;
    assert_clean(&errors(&profiles, clean));
    let broken = [
        (
            r#"{"linkId":"n","answer":[{"valueInteger":11}]}"#,
            "above 10 (maxValue)",
        ),
        (
            r#"{"linkId":"n","answer":[{"valueInteger":0}]}"#,
            "below 1 (minValue)",
        ),
        (
            r#"{"linkId":"d","answer":[{"valueDecimal":1.25}]}"#,
            "(maxDecimalPlaces)",
        ),
        (
            r#"{"linkId":"e","answer":[{"valueString":"ab"}]}"#,
            "does not match the regex",
        ),
        (
            r#"{"linkId":"u","answer":[{"valueQuantity":{"value":3,"system":"http://unitsofmeasure.org","code":"g"}}]}"#,
            "questionnaire-unitOption",
        ),
        (
            r#"{"linkId":"r","answer":[{"valueReference":{"reference":"Group/1"}}]}"#,
            "refers to a Group",
        ),
    ];
    for (items, expected) in broken {
        assert_one(&errors(&profiles, items), expected);
    }
}

#[test]
fn a_questionnaire_that_is_not_loaded_adds_only_information() {
    let profiles = questionnaire(r#"{"linkId":"q1","type":"string"}"#);
    let response = r#"{"resourceType":"QuestionnaireResponse","questionnaire":"http://example.org/Questionnaire/other","status":"completed","item":[{"linkId":"zz","answer":[{"valueInteger":1}]}]}"#;
    let found = findings(&profiles, response);
    assert!(found
        .iter()
        .all(|finding| finding.severity != Severity::Error));
    assert!(found
        .iter()
        .any(|finding| finding.message.contains("is not loaded")));
}

#[test]
fn versioned_and_contained_questionnaires_are_found() {
    let mut profiles = Profiles::new();
    profiles.load(&read(&format!(
        r#"{{"resourceType":"Questionnaire","url":"{URL}","version":"2","status":"active","item":[{{"linkId":"q1","type":"integer"}}]}}"#
    )));
    let response = |canonical: &str| {
        format!(
            r#"{{"resourceType":"QuestionnaireResponse","questionnaire":"{canonical}","status":"completed","item":[{{"linkId":"q1","answer":[{{"valueString":"x"}}]}}]}}"#
        )
    };
    let n_errors = |response: &str| {
        findings(&profiles, response)
            .iter()
            .filter(|finding| finding.severity == Severity::Error)
            .count()
    };
    assert_eq!(n_errors(&response(&format!("{URL}|2"))), 1);
    assert_eq!(n_errors(&response(&format!("{URL}|3"))), 0);
    assert_eq!(n_errors(&response("Questionnaire/intake")), 1);
    let contained = r##"{"resourceType":"QuestionnaireResponse","contained":[{"resourceType":"Questionnaire","id":"q","status":"active","item":[{"linkId":"q1","type":"integer"}]}],"questionnaire":"#q","status":"completed","item":[{"linkId":"q1","answer":[{"valueString":"x"}]}]}"##;
    assert_eq!(n_errors(contained), 1);
}

fn examples() -> PathBuf {
    match std::env::var_os("HEARTH_CORPUS") {
        Some(dir) => PathBuf::from(dir).join("examples"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/examples"),
    }
}

/// The R4 examples' QuestionnaireResponses, checked against the example Questionnaires they
/// name, break no rule.
#[test]
fn r4_example_responses_agree_with_their_questionnaires() {
    let mut profiles = Profiles::new();
    let mut responses = Vec::new();
    for entry in fs::read_dir(examples()).into_iter().flatten().flatten() {
        let Ok(resource) = parse_resource(&fs::read(entry.path()).unwrap_or_default()) else {
            continue;
        };
        match resource.type_def().name {
            "Questionnaire" => {
                profiles.load(&resource);
            }
            "QuestionnaireResponse" => responses.push(resource),
            _ => {}
        }
    }
    let options = ValidateOptions {
        profiles: Some(&profiles),
        ..ValidateOptions::default()
    };
    let mut n_checked = 0;
    for response in &responses {
        let found = Validator::new().validate_with(response, &options);
        let checked = response.text("questionnaire").is_some()
            && !found
                .iter()
                .any(|finding| finding.message.contains("is not loaded"));
        n_checked += usize::from(checked);
        let errors: Vec<String> = found
            .iter()
            .filter(|finding| finding.severity == Severity::Error)
            .map(|finding| format!("{} @ {}", finding.message, finding.path))
            .collect();
        assert!(errors.is_empty(), "{:?}: {errors:#?}", response.id());
    }
    println!(
        "questionnaire: {} example responses, {n_checked} checked against their questionnaire",
        responses.len()
    );
    assert!(n_checked >= 1 || responses.is_empty());
}
