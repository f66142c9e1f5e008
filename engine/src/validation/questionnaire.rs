//! A QuestionnaireResponse checked against the Questionnaire its `questionnaire` names, when
//! that Questionnaire is loaded in the [`Profiles`] (or contained in the response).
//!
//! R4 makes these checkable: every item's `linkId` is in the Questionnaire at that place in
//! its tree (children of groups under `item`, children of questions under `answer.item`), an
//! item that does not repeat appears once and a question that does not repeat has one answer,
//! answers have the value type that `item.type` calls for, are among `answerOption` (or in
//! `answerValueSet` when its codes are known) and within `maxLength`, display and group items
//! have no answers, items whose `enableWhen` conditions do not hold have no answers, and
//! `required` items that are enabled are answered unless the response is `in-progress` or
//! `stopped` (both partial by definition). The core extensions that constrain answers are
//! checked too: `minValue`, `maxValue`, `maxDecimalPlaces`, `minLength`, `regex`, `mimeType`,
//! `maxSize`, `questionnaire-minOccurs`, `questionnaire-maxOccurs`,
//! `questionnaire-unitOption`, `questionnaire-unitValueSet`, `questionnaire-referenceResource`
//! and `questionnaire-optionExclusive`.
//!
//! A Questionnaire that is not loaded checks nothing: one information finding says so.
//!
//! The file runs past 800 lines because the item tree, enableWhen and the answer rules share
//! one `Check` (enableWhen reads answers anywhere in the tree); how values compare is apart, in
//! `values`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::cmp::Ordering;

mod values;

use super::{child_path, Finding, Profiles, Walk};
use crate::outcome::{IssueType, Severity};
use crate::resource::{Object, Value};
use values::{
    bool_of, decoded_length, equal, extension_number, extension_objects, extensions, in_codes,
    order, referenced_type, shown, text_of, typed, value_name,
};

/// Deepest nesting of response items followed.
const MAX_DEPTH: usize = 64;

impl Walk<'_> {
    /// Checks the QuestionnaireResponse `response` (at `path`) against its Questionnaire, when
    /// that is loaded or contained.
    pub(super) fn questionnaire_response(
        &mut self,
        profiles: &Profiles,
        response: &Object,
        path: &str,
    ) {
        let Some(canonical) = response.text("questionnaire") else {
            return;
        };
        let questionnaire = match canonical.strip_prefix('#') {
            Some(id) => response.objects("contained").find(|contained| {
                contained.type_def().name == "Questionnaire" && contained.id() == Some(id)
            }),
            None => profiles.questionnaire(canonical),
        };
        let Some(questionnaire) = questionnaire else {
            let message = format!(
                "the questionnaire {canonical} is not loaded, so the answers were not checked against it"
            );
            let at = child_path(path, "questionnaire", None);
            self.find(
                Severity::Information,
                IssueType::Informational,
                message,
                &at,
            );
            return;
        };
        let complete = !matches!(response.text("status"), Some("in-progress" | "stopped"));
        let mut check = Check {
            profiles,
            questionnaire,
            complete,
            nodes: Vec::new(),
            by_link_id: Vec::new(),
            levels: Vec::new(),
            enabled: RefCell::new(Vec::new()),
            findings: Vec::new(),
        };
        let items: Vec<(&Object, String)> = response
            .objects("item")
            .enumerate()
            .map(|(idx, item)| (item, child_path(path, "item", Some(idx))))
            .collect();
        check.build(items, questionnaire.objects("item").collect(), None, 0);
        check.run();
        self.findings.append(&mut check.findings);
    }
}

/// One item of the response, with the Questionnaire item it answers.
struct Node<'a> {
    item: &'a Object,
    /// The Questionnaire item with the same `linkId` at this place; `None` when there is none.
    question: Option<&'a Object>,
    /// The response item that holds this one (directly or under one of its answers).
    parent: Option<usize>,
    depth: usize,
    path: String,
}

/// The items a Questionnaire has at one place (top level, in a group, under an answer), with
/// the response items found there.
struct Level<'a> {
    /// The response item holding the place; `None` at the top level.
    context: Option<usize>,
    questions: Vec<&'a Object>,
    nodes: Vec<usize>,
    /// Where missing items are reported.
    path: String,
}

/// Whether a response item is enabled, once worked out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Enabled {
    Unknown,
    Working,
    Known(bool),
}

struct Check<'a> {
    profiles: &'a Profiles,
    questionnaire: &'a Object,
    /// Required items must be answered (the response is not partial).
    complete: bool,
    nodes: Vec<Node<'a>>,
    /// The nodes by linkId, sorted (in document order within one linkId) once built.
    by_link_id: Vec<(&'a str, usize)>,
    levels: Vec<Level<'a>>,
    /// Per node, memoised: enableWhen conditions refer to other items, which may have
    /// conditions of their own.
    enabled: RefCell<Vec<Enabled>>,
    findings: Vec<Finding>,
}

impl<'a> Check<'a> {
    fn error(&mut self, code: IssueType, message: String, path: &str) {
        self.findings.push(Finding {
            severity: Severity::Error,
            code,
            message,
            path: String::from(path),
            constraint: None,
        });
    }

    /// Records the response items at one place, matched with `questions`, and everything below
    /// them.
    fn build(
        &mut self,
        items: Vec<(&'a Object, String)>,
        questions: Vec<&'a Object>,
        parent: Option<usize>,
        depth: usize,
    ) {
        let level_path = match parent.and_then(|idx| self.nodes.get(idx)) {
            Some(node) => node.path.clone(),
            None => items
                .first()
                .and_then(|(_, path)| path.rsplit_once(".item").map(|(base, _)| base.to_string()))
                .unwrap_or_default(),
        };
        let mut level_nodes = Vec::new();
        for (item, path) in items {
            let question = item.text("linkId").and_then(|link_id| {
                questions
                    .iter()
                    .copied()
                    .find(|question| question.text("linkId") == Some(link_id))
            });
            let idx = self.nodes.len();
            if let Some(link_id) = item.text("linkId") {
                self.by_link_id.push((link_id, idx));
            }
            self.nodes.push(Node {
                item,
                question,
                parent,
                depth,
                path: path.clone(),
            });
            level_nodes.push(idx);
            let Some(question) = question else {
                continue;
            };
            if depth >= MAX_DEPTH {
                continue;
            }
            let children: Vec<&Object> = question.objects("item").collect();
            let nested: Vec<(&Object, String)> = item
                .objects("item")
                .enumerate()
                .map(|(idx, child)| (child, child_path(&path, "item", Some(idx))))
                .collect();
            let is_group = question.text("type") == Some("group");
            if is_group || !nested.is_empty() {
                self.build(nested, children.clone(), Some(idx), depth + 1);
            }
            if is_group {
                // A group's answers are an error of their own; what is under them is not
                // matched to the group's items.
                continue;
            }
            for (answer_idx, answer) in item.objects("answer").enumerate() {
                let answer_path = child_path(&path, "answer", Some(answer_idx));
                let nested: Vec<(&Object, String)> = answer
                    .objects("item")
                    .enumerate()
                    .map(|(idx, child)| (child, child_path(&answer_path, "item", Some(idx))))
                    .collect();
                if !nested.is_empty() || !children.is_empty() {
                    self.build(nested, children.clone(), Some(idx), depth + 1);
                }
            }
        }
        self.levels.push(Level {
            context: parent,
            questions,
            nodes: level_nodes,
            path: level_path,
        });
    }

    fn run(&mut self) {
        // Within one linkId, nodes sort by index: document order.
        self.by_link_id.sort_unstable();
        *self.enabled.borrow_mut() = alloc::vec![Enabled::Unknown; self.nodes.len()];
        // Items under an unknown, disabled or answer-less item are not checked again.
        let mut active = alloc::vec![false; self.nodes.len()];
        for idx in 0..self.nodes.len() {
            let Some(node) = self.nodes.get(idx) else {
                continue;
            };
            let parent_active = node
                .parent
                .is_none_or(|parent| active.get(parent).copied().unwrap_or(false));
            if !parent_active {
                continue;
            }
            let (item, path) = (node.item, node.path.clone());
            let Some(question) = node.question else {
                self.unknown_item(item, &path);
                continue;
            };
            if !self.node_enabled(idx) {
                if has_answers(item, 0) {
                    let message = format!(
                        "item \"{}\" is not enabled (its enableWhen conditions do not hold), so it must not have answers",
                        link_id(item)
                    );
                    self.error(IssueType::Invalid, message, &path);
                }
                continue;
            }
            if let Some(slot) = active.get_mut(idx) {
                *slot = true;
            }
            self.answers(question, item, &path);
        }
        let levels = core::mem::take(&mut self.levels);
        for level in &levels {
            let context_active = level
                .context
                .is_none_or(|context| active.get(context).copied().unwrap_or(false));
            if context_active {
                self.level(level);
            }
        }
    }

    /// Reports a response item whose `linkId` the Questionnaire does not have at this place.
    fn unknown_item(&mut self, item: &Object, path: &str) {
        let Some(link_id) = item.text("linkId") else {
            return;
        };
        let url = self.questionnaire.text("url").unwrap_or("(contained)");
        let message = if find_question(self.questionnaire, link_id, 0).is_some() {
            format!(
                "item \"{link_id}\" is not expected here: the questionnaire {url} has it at another place in its tree"
            )
        } else {
            format!("the questionnaire {url} has no item with linkId \"{link_id}\"")
        };
        self.error(IssueType::Structure, message, path);
    }

    /// Checks a response item's answers against its Questionnaire item.
    fn answers(&mut self, question: &'a Object, item: &'a Object, path: &str) {
        let item_type = question.text("type").unwrap_or_default();
        let link = link_id(item);
        let answers: Vec<&Object> = item.objects("answer").collect();
        if answers.is_empty() {
            return;
        }
        if matches!(item_type, "group" | "display") {
            let message = format!(
                "item \"{link}\" is {} item, which has no answers; found {}",
                crate::outcome::with_article(item_type),
                answers.len()
            );
            self.error(IssueType::Structure, message, path);
            return;
        }
        let repeats = question
            .values("repeats")
            .any(|value| bool_of(value) == Some(true));
        if answers.len() > 1 && !repeats {
            let message = format!(
                "item \"{link}\" does not repeat, so it has at most one answer; found {}",
                answers.len()
            );
            self.error(IssueType::Structure, message, path);
        }
        if let Some(max) = extension_number(question, "questionnaire-maxOccurs") {
            if answers.len() as f64 > max {
                let message = format!(
                    "item \"{link}\" has at most {max} answers (questionnaire-maxOccurs); found {}",
                    answers.len()
                );
                self.error(IssueType::Structure, message, path);
            }
        }
        let expected = answer_types(item_type);
        let mut exclusive_chosen = false;
        for (answer_idx, answer) in answers.iter().enumerate() {
            let Some((value_type, value)) = typed(answer, "value") else {
                continue;
            };
            let answer_path = child_path(
                &child_path(path, "answer", Some(answer_idx)),
                &value_name(value_type),
                None,
            );
            if !expected.contains(&value_type) {
                let message = if expected.is_empty() {
                    format!(
                        "item \"{link}\" has type \"{item_type}\", which takes no answers; found {}",
                        crate::outcome::with_article(value_type)
                    )
                } else {
                    format!(
                        "expected an answer of type {} for item \"{link}\" (type \"{item_type}\"), found {value_type}",
                        expected.join(" or ")
                    )
                };
                self.error(IssueType::Structure, message, &answer_path);
                continue;
            }
            let free_text = item_type == "open-choice" && value_type == "string";
            if !free_text {
                if let Some(exclusive) =
                    self.answer_option(question, value_type, value, &answer_path)
                {
                    exclusive_chosen |= exclusive;
                }
                self.answer_value_set(question, value_type, value, &answer_path);
            }
            self.answer_limits(question, value_type, value, &answer_path);
        }
        if exclusive_chosen && answers.len() > 1 {
            let message = format!(
                "item \"{link}\" has an exclusive option chosen (questionnaire-optionExclusive), so it has no other answers; found {}",
                answers.len()
            );
            self.error(IssueType::Invalid, message, path);
        }
    }

    /// Checks an answer against the item's `answerOption`s; answers whether it chose an
    /// exclusive one.
    fn answer_option(
        &mut self,
        question: &Object,
        value_type: &str,
        value: &Value,
        path: &str,
    ) -> Option<bool> {
        let options: Vec<&Object> = question.objects("answerOption").collect();
        if options.is_empty() {
            return None;
        }
        let chosen = options.iter().find(|option| {
            typed(option, "value").is_some_and(|(option_type, option_value)| {
                equal(value_type, value, option_type, option_value)
            })
        });
        match chosen {
            Some(option) => Some(
                extensions(option, "questionnaire-optionExclusive")
                    .any(|value| bool_of(value) == Some(true)),
            ),
            None => {
                let message = format!(
                    "the answer {} is not one of the answerOption values of item \"{}\"",
                    shown(value_type, value),
                    question.text("linkId").unwrap_or_default()
                );
                self.error(IssueType::CodeInvalid, message, path);
                Some(false)
            }
        }
    }

    /// Checks a Coding answer against the item's `answerValueSet`, when its codes are known.
    fn answer_value_set(&mut self, question: &Object, value_type: &str, value: &Value, path: &str) {
        if value_type != "Coding" {
            return;
        }
        let (Some(url), Value::Complex(coding)) = (question.text("answerValueSet"), value) else {
            return;
        };
        let Some(codes) = self.profiles.value_set_codes(url) else {
            return;
        };
        if !in_codes(&codes, coding) {
            let message = format!(
                "the answer {} is not in the value set {url} (answerValueSet of item \"{}\")",
                shown(value_type, value),
                question.text("linkId").unwrap_or_default()
            );
            self.error(IssueType::CodeInvalid, message, path);
        }
    }

    /// `maxLength` and the core extensions that bound an answer.
    fn answer_limits(&mut self, question: &Object, value_type: &str, value: &Value, path: &str) {
        let link = question.text("linkId").unwrap_or_default().to_string();
        if let Some(text) = text_of(value) {
            let length = text.chars().count();
            if let Some(max) = question
                .text("maxLength")
                .and_then(|max| max.parse::<usize>().ok())
            {
                if length > max {
                    let message = format!(
                        "the answer to item \"{link}\" is at most {max} characters long (maxLength); found {length}"
                    );
                    self.error(IssueType::TooLong, message, path);
                }
            }
            if let Some(min) = extension_number(question, "minLength") {
                if (length as f64) < min {
                    let message = format!(
                        "the answer to item \"{link}\" is at least {min} characters long (minLength); found {length}"
                    );
                    self.error(IssueType::Value, message, path);
                }
            }
            for pattern in extensions(question, "regex").filter_map(text_of) {
                let anchored = format!("^(?:{pattern})$");
                let Ok(regex) = regex_automata::meta::Regex::new(&anchored) else {
                    continue;
                };
                if !regex.is_match(text) {
                    let message =
                        format!("the answer to item \"{link}\" does not match the regex {pattern}");
                    self.error(IssueType::Value, message, path);
                }
            }
        }
        for (name, wanted) in [
            ("minValue", Ordering::Less),
            ("maxValue", Ordering::Greater),
        ] {
            for extension in extension_objects(question, name) {
                let Some((bound_type, bound)) = typed(extension, "value") else {
                    continue;
                };
                if order(value_type, value, bound_type, bound) == Some(wanted) {
                    let message = format!(
                        "the answer {} to item \"{link}\" is {} {} ({name})",
                        shown(value_type, value),
                        if wanted == Ordering::Less {
                            "below"
                        } else {
                            "above"
                        },
                        shown(bound_type, bound)
                    );
                    self.error(IssueType::Value, message, path);
                }
            }
        }
        let object = match value {
            Value::Complex(object) => Some(object),
            _ => None,
        };
        if let Some(max) = extension_number(question, "maxDecimalPlaces") {
            let number = match (value_type, object) {
                ("decimal", _) => text_of(value),
                ("Quantity", Some(quantity)) => quantity.text("value"),
                _ => None,
            };
            let places = number
                .and_then(|number| number.split_once('.'))
                .map_or(0, |(_, fraction)| {
                    fraction.chars().take_while(char::is_ascii_digit).count()
                });
            if places as f64 > max {
                let message = format!(
                    "the answer to item \"{link}\" has at most {max} decimal places (maxDecimalPlaces); found {places}"
                );
                self.error(IssueType::Value, message, path);
            }
        }
        match (value_type, object) {
            ("Attachment", Some(attachment)) => self.attachment(question, attachment, &link, path),
            ("Quantity", Some(quantity)) => self.quantity_unit(question, quantity, &link, path),
            ("Reference", Some(reference)) => {
                self.reference_type(question, reference, &link, path);
            }
            _ => {}
        }
    }

    fn attachment(&mut self, question: &Object, attachment: &Object, link: &str, path: &str) {
        let types: Vec<&str> = extensions(question, "mimeType")
            .filter_map(text_of)
            .collect();
        if let Some(content_type) = attachment.text("contentType") {
            let bare = content_type.split(';').next().unwrap_or_default().trim();
            if !types.is_empty() && !types.contains(&bare) {
                let message = format!(
                    "the attachment for item \"{link}\" has type {content_type}; the item takes {} (mimeType)",
                    types.join(", ")
                );
                self.error(IssueType::Value, message, path);
            }
        }
        if let Some(max) = extension_number(question, "maxSize") {
            let size = attachment
                .text("data")
                .map(decoded_length)
                .or_else(|| attachment.text("size").and_then(|size| size.parse().ok()));
            if let Some(size) = size.filter(|&size| size as f64 > max) {
                let message = format!(
                    "the attachment for item \"{link}\" is {size} bytes; the item takes at most {max} (maxSize)"
                );
                self.error(IssueType::TooLong, message, path);
            }
        }
    }

    fn quantity_unit(&mut self, question: &Object, quantity: &Object, link: &str, path: &str) {
        let unit_options: Vec<&Object> = extensions(question, "questionnaire-unitOption")
            .filter_map(|value| match value {
                Value::Complex(coding) => Some(coding),
                _ => None,
            })
            .collect();
        let known_set = extensions(question, "questionnaire-unitValueSet")
            .filter_map(text_of)
            .find_map(|url| Some((url, self.profiles.value_set_codes(url)?)));
        let unit = || {
            quantity
                .text("code")
                .or_else(|| quantity.text("unit"))
                .unwrap_or("(none)")
                .to_string()
        };
        if !unit_options.is_empty() {
            let matches = unit_options.iter().any(|option| {
                option.text("code") == quantity.text("code")
                    && option
                        .text("system")
                        .zip(quantity.text("system"))
                        .is_none_or(|(wanted, found)| wanted == found)
            });
            if !matches {
                let message = format!(
                    "the unit {} of the answer to item \"{link}\" is not one of its questionnaire-unitOption units",
                    unit()
                );
                self.error(IssueType::CodeInvalid, message, path);
            }
        }
        if let Some((url, codes)) = known_set {
            if !in_codes(&codes, quantity) {
                let message = format!(
                    "the unit {} of the answer to item \"{link}\" is not in the value set {url} (questionnaire-unitValueSet)",
                    unit()
                );
                self.error(IssueType::CodeInvalid, message, path);
            }
        }
    }

    fn reference_type(&mut self, question: &Object, reference: &Object, link: &str, path: &str) {
        let allowed: Vec<&str> = extensions(question, "questionnaire-referenceResource")
            .filter_map(text_of)
            .collect();
        if allowed.is_empty() {
            return;
        }
        let found = reference
            .text("type")
            .or_else(|| reference.text("reference").and_then(referenced_type));
        if let Some(found) = found.filter(|found| !allowed.contains(found)) {
            let message = format!(
                "the answer to item \"{link}\" refers to {}; the item takes {} (questionnaire-referenceResource)",
                crate::outcome::with_article(found),
                allowed.join(", ")
            );
            self.error(IssueType::Value, message, path);
        }
    }

    /// The rules about the items at one place: which appear too often, and which are missing.
    fn level(&mut self, level: &Level<'a>) {
        // The level's nodes by the address of the Questionnaire item they answer, sorted once.
        let mut by_question: Vec<(usize, usize)> = level
            .nodes
            .iter()
            .filter_map(|&idx| {
                let question = self.nodes.get(idx)?.question?;
                Some((core::ptr::from_ref(question) as usize, idx))
            })
            .collect();
        by_question.sort_unstable();
        for &question in &level.questions {
            let key = core::ptr::from_ref(question) as usize;
            let start = by_question.partition_point(|(known, _)| *known < key);
            let present: Vec<usize> = by_question
                .get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(|(known, _)| *known == key)
                .map(|(_, idx)| *idx)
                .collect();
            let link = question.text("linkId").unwrap_or_default().to_string();
            let is_group = question.text("type") == Some("group");
            let repeats = question
                .values("repeats")
                .any(|value| bool_of(value) == Some(true));
            if present.len() > 1 && !(is_group && repeats) {
                let second = present
                    .get(1)
                    .and_then(|&idx| self.nodes.get(idx))
                    .map(|node| node.path.clone())
                    .unwrap_or_default();
                let message = if is_group {
                    format!(
                        "group \"{link}\" does not repeat, so it appears at most once here; found {}",
                        present.len()
                    )
                } else {
                    format!(
                        "item \"{link}\" appears {} times here; a question appears once, with all its answers",
                        present.len()
                    )
                };
                self.error(IssueType::Structure, message, &second);
            }
            if is_group && present.len() > 1 {
                if let Some(max) = extension_number(question, "questionnaire-maxOccurs") {
                    if present.len() as f64 > max {
                        let message = format!(
                            "group \"{link}\" appears at most {max} times (questionnaire-maxOccurs); found {}",
                            present.len()
                        );
                        self.error(IssueType::Structure, message, &level.path);
                    }
                }
            }
            if !self.complete || !self.question_enabled(question, level.context) {
                continue;
            }
            let n_answered = present
                .iter()
                .filter(|&&idx| {
                    self.nodes.get(idx).is_some_and(|node| {
                        if is_group {
                            has_answers(node.item, 0)
                        } else {
                            node.item.objects("answer").next().is_some()
                        }
                    })
                })
                .count();
            let required = question
                .values("required")
                .any(|value| bool_of(value) == Some(true));
            let at = present
                .first()
                .and_then(|&idx| self.nodes.get(idx))
                .map_or(level.path.clone(), |node| node.path.clone());
            if required && n_answered == 0 && question.text("type") != Some("display") {
                let message = match (is_group, present.is_empty()) {
                    (true, true) => format!("required group \"{link}\" is missing"),
                    (true, false) => format!("required group \"{link}\" has no answered items"),
                    (false, true) => format!("required item \"{link}\" is missing"),
                    (false, false) => format!("required item \"{link}\" has no answer"),
                };
                self.error(IssueType::Required, message, &at);
            }
            if let Some(min) = extension_number(question, "questionnaire-minOccurs") {
                let found = if is_group {
                    present.len()
                } else {
                    present
                        .iter()
                        .filter_map(|&idx| self.nodes.get(idx))
                        .map(|node| node.item.objects("answer").count())
                        .sum()
                };
                if (required || !present.is_empty()) && (found as f64) < min {
                    let what = if is_group { "occurrences" } else { "answers" };
                    let message = format!(
                        "item \"{link}\" has at least {min} {what} (questionnaire-minOccurs); found {found}"
                    );
                    self.error(IssueType::Required, message, &at);
                }
            }
        }
    }

    /// Whether the response item `idx` and the items holding it are enabled.
    fn node_enabled(&self, idx: usize) -> bool {
        match self.enabled.borrow().get(idx) {
            Some(Enabled::Known(known)) => return *known,
            // A condition that depends on itself: treated as enabled.
            Some(Enabled::Working) => return true,
            _ => {}
        }
        if let Some(slot) = self.enabled.borrow_mut().get_mut(idx) {
            *slot = Enabled::Working;
        }
        let res = match self.nodes.get(idx) {
            Some(node) => {
                node.parent.is_none_or(|parent| self.node_enabled(parent))
                    && node
                        .question
                        .is_none_or(|question| self.question_enabled(question, node.parent))
            }
            None => true,
        };
        if let Some(slot) = self.enabled.borrow_mut().get_mut(idx) {
            *slot = Enabled::Known(res);
        }
        res
    }

    /// Whether `question`'s enableWhen conditions hold for an item held by `context`.
    fn question_enabled(&self, question: &Object, context: Option<usize>) -> bool {
        let mut conditions = question.objects("enableWhen").peekable();
        if conditions.peek().is_none() {
            return true;
        }
        let mut results = conditions.map(|condition| self.condition(condition, context));
        if question.text("enableBehavior") == Some("all") {
            results.all(|holds| holds)
        } else {
            results.any(|holds| holds)
        }
    }

    fn condition(&self, condition: &Object, context: Option<usize>) -> bool {
        let (Some(link_id), Some(operator)) =
            (condition.text("question"), condition.text("operator"))
        else {
            return false;
        };
        let Some((expected_type, expected)) = typed(condition, "answer") else {
            return false;
        };
        // A disabled question counts as unanswered.
        let answers: Vec<(&str, &Value)> = match self.nearest(link_id, context) {
            Some(idx) if self.node_enabled(idx) => self
                .nodes
                .get(idx)
                .map(|node| node_answers(node.item))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let any_order = |wanted: &[Ordering]| {
            answers.iter().any(|(value_type, value)| {
                order(value_type, value, expected_type, expected)
                    .is_some_and(|found| wanted.contains(&found))
            })
        };
        match operator {
            "exists" => bool_of(expected) == Some(!answers.is_empty()),
            "=" => answers
                .iter()
                .any(|(value_type, value)| equal(value_type, value, expected_type, expected)),
            "!=" => {
                !answers.is_empty()
                    && !answers.iter().any(|(value_type, value)| {
                        equal(value_type, value, expected_type, expected)
                    })
            }
            ">" => any_order(&[Ordering::Greater]),
            "<" => any_order(&[Ordering::Less]),
            ">=" => any_order(&[Ordering::Greater, Ordering::Equal]),
            "<=" => any_order(&[Ordering::Less, Ordering::Equal]),
            _ => false,
        }
    }

    /// The response item with `link_id` nearest to `context`: an ancestor first, then the one
    /// sharing the deepest ancestor with it, the first in document order among equals.
    fn nearest(&self, link_id: &str, context: Option<usize>) -> Option<usize> {
        let mut chain = Vec::new();
        let mut at = context;
        while let Some(idx) = at {
            chain.push(idx);
            at = self.nodes.get(idx).and_then(|node| node.parent);
        }
        let mut best: Option<(usize, usize)> = None;
        let start = self
            .by_link_id
            .partition_point(|(known, _)| *known < link_id);
        let same = self.by_link_id.get(start..).unwrap_or_default();
        for &(_, idx) in same.iter().take_while(|(known, _)| *known == link_id) {
            let Some(node) = self.nodes.get(idx) else {
                continue;
            };
            let score = if chain.contains(&idx) {
                usize::MAX
            } else {
                let mut shared = 0;
                let mut up = node.parent;
                while let Some(ancestor) = up {
                    if chain.contains(&ancestor) {
                        shared = self.nodes.get(ancestor).map_or(0, |node| node.depth + 1);
                        break;
                    }
                    up = self.nodes.get(ancestor).and_then(|node| node.parent);
                }
                shared
            };
            if best.is_none_or(|(best_score, _)| score > best_score) {
                best = Some((score, idx));
            }
        }
        best.map(|(_, idx)| idx)
    }
}

/// The `linkId` of a response item, for messages.
fn link_id(item: &Object) -> &str {
    item.text("linkId").unwrap_or_default()
}

/// True when `item` or an item below it has an answer.
fn has_answers(item: &Object, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    item.objects("answer").next().is_some()
        || item
            .objects("item")
            .any(|child| has_answers(child, depth + 1))
}

/// The Questionnaire item with `link_id` anywhere in the tree.
fn find_question<'q>(holder: &'q Object, link_id: &str, depth: usize) -> Option<&'q Object> {
    if depth > MAX_DEPTH {
        return None;
    }
    holder.objects("item").find_map(|item| {
        if item.text("linkId") == Some(link_id) {
            Some(item)
        } else {
            find_question(item, link_id, depth + 1)
        }
    })
}

/// The answer value types R4 gives each item type (QuestionnaireResponse, "answer type
/// mapping"); none for groups, display items and the abstract `question`.
fn answer_types(item_type: &str) -> &'static [&'static str] {
    match item_type {
        "boolean" => &["boolean"],
        "decimal" => &["decimal"],
        "integer" => &["integer"],
        "date" => &["date"],
        "dateTime" => &["dateTime"],
        "time" => &["time"],
        "string" | "text" => &["string"],
        "url" => &["uri"],
        "choice" => &["Coding"],
        "open-choice" => &["Coding", "string"],
        "attachment" => &["Attachment"],
        "reference" => &["Reference"],
        "quantity" => &["Quantity"],
        _ => &[],
    }
}

/// The values of a response item's answers, with their types.
fn node_answers(item: &Object) -> Vec<(&'static str, &Value)> {
    item.objects("answer")
        .filter_map(|answer| typed(answer, "value"))
        .collect()
}
