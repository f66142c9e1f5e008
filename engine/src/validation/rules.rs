//! Rules of the specification that are written in prose rather than as invariants: Bundle
//! full URLs and links, search set entries, codings' systems, attachment sizes, composite
//! search parameters, capability statements' search parameter types, narrative entities.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Walk;
use crate::model;
use crate::outcome::{IssueType, Severity};
use crate::resource::{Object, PrimitiveValue, Value};

/// True for an absolute URI: a scheme (`http:`, `urn:`, ...) before anything else.
fn is_absolute(uri: &str) -> bool {
    let Some((scheme, _)) = uri.split_once(':') else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The number of bytes base64 `data` decodes to (whitespace ignored).
fn base64_len(data: &str) -> usize {
    let significant = data.bytes().filter(|b| !b.is_ascii_whitespace());
    let (mut len, mut padding) = (0usize, 0usize);
    for byte in significant {
        len += 1;
        if byte == b'=' {
            padding += 1;
        }
    }
    (len / 4 * 3).saturating_sub(padding)
}

impl Walk<'_> {
    /// The prose rules for a resource of `object`'s type, at `path`.
    pub(super) fn resource_rules(&mut self, object: &Object, path: &str) {
        match object.type_def().name {
            "Bundle" => self.bundle(object, path),
            "SearchParameter" => self.search_parameter(object, path),
            "CapabilityStatement" => self.capability_search_params(object, path),
            _ => {}
        }
    }

    /// A composite parameter has components; a parameter derived from a core one keeps its
    /// type and applies to the same resource types.
    fn search_parameter(&mut self, parameter: &Object, path: &str) {
        let kind = parameter.text("type");
        if kind == Some("composite") && parameter.values("component").count() < 2 {
            self.find(
                Severity::Error,
                IssueType::Invariant,
                String::from("a composite search parameter must define two or more components"),
                path,
            );
        }
        let Some(derived_from) = parameter.text("derivedFrom") else {
            return;
        };
        let url = derived_from.split('|').next().unwrap_or(derived_from);
        let Some(parent) = model::SEARCH_PARAMS.iter().find(|def| def.url == url) else {
            return;
        };
        if let Some(kind) = kind.filter(|kind| *kind != parent.kind.code()) {
            let message = format!(
                "the type {kind} differs from the type {} of {url}, which this parameter is derived from",
                parent.kind.code()
            );
            self.find(Severity::Error, IssueType::Invalid, message, path);
        }
        for base in parameter.values("base").filter_map(|value| match value {
            Value::Primitive(primitive) => match &primitive.value {
                Some(PrimitiveValue::String(text)) => Some(text.as_str()),
                _ => None,
            },
            _ => None,
        }) {
            if !parent.base.contains(&base) && !parent.base.contains(&"Resource") {
                let message = format!(
                    "the base {base} is not a base of {url}, which this parameter is derived from"
                );
                self.find(Severity::Error, IssueType::Invalid, message, path);
            }
        }
    }

    /// The prose rules for a value of a data type, at `path`.
    pub(super) fn type_rules(&mut self, object: &Object, path: &str) {
        match object.type_def().name {
            "Coding" => {
                let Some(system) = object.text("system") else {
                    return;
                };
                if !is_absolute(system) {
                    let message = format!(
                        "expected Coding.system to be an absolute URI, found the local reference \"{system}\""
                    );
                    self.find(Severity::Error, IssueType::Value, message, path);
                } else if system.starts_with("http://hl7.org/fhir/ValueSet/") {
                    let message = format!(
                        "expected Coding.system to name a code system, found the value set \"{system}\""
                    );
                    self.find(Severity::Error, IssueType::Value, message, path);
                }
            }
            "Attachment" => {
                let (Some(data), Some(size)) = (object.text("data"), object.text("size")) else {
                    return;
                };
                let actual = base64_len(data);
                if size.parse::<usize>().ok() != Some(actual) {
                    let message = format!(
                        "the attachment's stated size {size} does not match the size of its data, {actual} bytes"
                    );
                    self.find(Severity::Error, IssueType::Value, message, path);
                }
            }
            "Narrative" => {
                if let Some(div) = object.text("div") {
                    if let Some(entity) = unknown_entity(div) {
                        let message = format!(
                            "the narrative uses the entity \"&{entity};\", which XHTML does not define (use a character or a numeric reference)"
                        );
                        self.find(Severity::Error, IssueType::Value, message, path);
                    }
                }
            }
            _ => {}
        }
    }

    fn bundle(&mut self, bundle: &Object, path: &str) {
        // Each link relation once (R4 §2.36.0.1: links describe the bundle as a whole).
        let mut relations: Vec<&str> = Vec::new();
        for (idx, link) in bundle.objects("link").enumerate() {
            let Some(relation) = link.text("relation") else {
                continue;
            };
            if relations.contains(&relation) {
                let message = format!("the link relation \"{relation}\" can only occur once");
                self.find(
                    Severity::Error,
                    IssueType::Invariant,
                    message,
                    &format!("{path}.link[{idx}]"),
                );
            } else {
                relations.push(relation);
            }
        }
        self.bundle_references(bundle, path);
        let searchset = bundle.text("type") == Some("searchset");
        let search_types = if searchset {
            bundle
                .objects("link")
                .find(|link| link.text("relation") == Some("self"))
                .and_then(|link| link.text("url"))
                .map(searched_types)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        for (idx, entry) in bundle.objects("entry").enumerate() {
            let entry_path = format!("{path}.entry[{idx}]");
            let resource = entry.objects("resource").next();
            if let Some(full_url) = entry.text("fullUrl") {
                self.full_url(full_url, resource, &entry_path);
            }
            let (Some(resource), true) = (resource, searchset) else {
                continue;
            };
            let resource_path = format!("{entry_path}.resource");
            let type_name = resource.type_def().name;
            let mode = entry
                .objects("search")
                .next()
                .and_then(|search| search.text("mode"));
            match mode {
                Some("outcome") if type_name != "OperationOutcome" => {
                    let message = format!(
                        "an entry of search mode \"outcome\" must be an OperationOutcome, found {type_name}"
                    );
                    self.find(Severity::Error, IssueType::Invalid, message, &resource_path);
                }
                Some("match") => {
                    if resource.id().is_none() {
                        self.find(
                            Severity::Error,
                            IssueType::Required,
                            String::from("search results must have ids"),
                            &resource_path,
                        );
                    }
                    if !search_types.is_empty() && !search_types.contains(&type_name) {
                        let message = format!(
                            "a match of a search for {} cannot be {}",
                            search_types.join(", "),
                            crate::outcome::with_article(type_name)
                        );
                        self.find(Severity::Error, IssueType::Invalid, message, &resource_path);
                    }
                }
                _ => {}
            }
        }
    }

    /// `Bundle.entry.fullUrl`: absolute, and consistent with the resource's type and id when it
    /// is a RESTful URL (R4 Bundle.entry.fullUrl).
    fn full_url(&mut self, full_url: &str, resource: Option<&Object>, path: &str) {
        if !is_absolute(full_url) {
            let message = format!("expected fullUrl to be an absolute URL, found \"{full_url}\"");
            self.find(Severity::Error, IssueType::Value, message, path);
            return;
        }
        let Some(resource) = resource else {
            return;
        };
        let (Some(id), false) = (resource.id(), full_url.starts_with("urn:")) else {
            return;
        };
        let mut segments = full_url.trim_end_matches('/').rsplit('/');
        let (Some(last), Some(type_segment)) = (segments.next(), segments.next()) else {
            return;
        };
        let looks_restful = model::type_by_name(type_segment)
            .is_some_and(|type_id| model::type_def(type_id).is_concrete_resource());
        let type_name = resource.type_def().name;
        if looks_restful && (type_segment != type_name || last != id) {
            let message = format!(
                "the fullUrl \"{full_url}\" is a RESTful URL, so it must end with the resource's type and id ({type_name}/{id})"
            );
            self.find(Severity::Error, IssueType::Invalid, message, path);
        }
    }

    /// `CapabilityStatement.rest.resource.searchParam`: a parameter defined by a core
    /// SearchParameter has that parameter's type.
    fn capability_search_params(&mut self, statement: &Object, path: &str) {
        for (rest_idx, rest) in statement.objects("rest").enumerate() {
            for (resource_idx, resource) in rest.objects("resource").enumerate() {
                for (idx, param) in resource.objects("searchParam").enumerate() {
                    let (Some(definition), Some(kind)) =
                        (param.text("definition"), param.text("type"))
                    else {
                        continue;
                    };
                    let url = definition.split('|').next().unwrap_or(definition);
                    let Some(def) = model::SEARCH_PARAMS.iter().find(|def| def.url == url) else {
                        continue;
                    };
                    let defined = def.kind.code();
                    if defined != kind {
                        let message = format!(
                            "the search parameter {url} is of type {defined}, but is declared here as {kind}"
                        );
                        self.find(
                            Severity::Error,
                            IssueType::Value,
                            message,
                            &format!(
                                "{path}.rest[{rest_idx}].resource[{resource_idx}].searchParam[{idx}]"
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// The resource types a search URL (`[base/]Patient?...`, `[base]?_type=A,B`) searches.
fn searched_types(url: &str) -> Vec<&'static str> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut res = Vec::new();
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let mut add = |name: &str| {
        if let Some(type_id) = model::type_by_name(name) {
            let def = model::type_def(type_id);
            if def.is_concrete_resource() && !res.contains(&def.name) {
                res.push(def.name);
            }
        }
    };
    add(last);
    for pair in query.split('&') {
        if let Some(types) = pair.strip_prefix("_type=") {
            types.split(',').for_each(&mut add);
        }
    }
    res
}

/// The first named entity in `xhtml` that XML does not predefine (`&reg;`), if any.
fn unknown_entity(xhtml: &str) -> Option<&str> {
    let mut rest = xhtml;
    while let Some(start) = rest.find('&') {
        let after = rest.get(start + 1..).unwrap_or_default();
        let end = after.find(';')?;
        let name = after.get(..end).unwrap_or_default();
        let known = matches!(name, "lt" | "gt" | "amp" | "quot" | "apos")
            || name.strip_prefix('#').is_some_and(|number| {
                number.strip_prefix('x').map_or_else(
                    || !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
                    |hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                )
            });
        let looks_like_entity = !name.is_empty()
            && name.len() < 32
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'#');
        if looks_like_entity && !known {
            return Some(name);
        }
        rest = after;
    }
    None
}
