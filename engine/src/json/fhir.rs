//! Reading FHIR JSON into the typed tree of [`crate::resource`], by the R4 JSON rules:
//! the `resourceType` discriminator, choice elements named by type (`valueQuantity`), primitive
//! companions (`_birthDate`, arrays with `null` placeholders), `contained` and other nested
//! resources; no `null` outside those placeholders, no empty strings, arrays or objects, no
//! unknown elements, no element given twice.
//!
//! The reader works straight on the token stream (no intermediate JSON tree), so reading costs
//! one allocation per value kept. Syntax errors stop it; every violation of the FHIR rules
//! becomes a [`ParseError`] with the element's FHIRPath location and the line and column of the
//! offending key or value, and reading goes on so that one pass reports them all.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::reader::{Lexer, Limits};
use super::ParseError;
use crate::model::{self, flags, ElementDef, JsonKind, TypeDef, TypeId, TypeKind};
use crate::resource::{Field, Object, Primitive, PrimitiveValue, Value};

/// Reads a FHIR resource from JSON bytes.
///
/// # Errors
/// [`crate::Error::Json`] when the bytes are not JSON; [`crate::Error::Resource`] with every
/// violation of the FHIR JSON rules found.
pub fn parse_resource(bytes: &[u8]) -> Result<Object, crate::Error> {
    parse_resource_with(bytes, Limits::default())
}

/// [`parse_resource`] with explicit limits on depth and size.
///
/// # Errors
/// As [`parse_resource`].
pub fn parse_resource_with(bytes: &[u8], limits: Limits) -> Result<Object, crate::Error> {
    match read_resource(bytes, limits, false)? {
        (Some(resource), issues) if issues.is_empty() => Ok(resource),
        (_, issues) => Err(crate::Error::Resource(issues)),
    }
}

/// Reads a projection of a FHIR resource: JSON holding at every level only some of the
/// resource's properties (those an expression reads, see
/// [`crate::fhirpath::Expression::projection`]), so that objects may be empty. Everything else
/// is read by the rules of [`parse_resource`]; what is not there is not checked.
///
/// # Errors
/// As [`parse_resource`].
pub fn parse_projection(bytes: &[u8]) -> Result<Object, crate::Error> {
    match read_resource(bytes, Limits::default(), true)? {
        (Some(resource), issues) if issues.is_empty() => Ok(resource),
        (_, issues) => Err(crate::Error::Resource(issues)),
    }
}

/// Reads what can be read of a FHIR resource: the resource without the elements that break
/// the FHIR JSON rules, and an issue for each of those (with line and column), so that a
/// validator can report them and go on with the rest.
///
/// # Errors
/// [`crate::Error::Json`] when the bytes are not JSON; [`crate::Error::Resource`] when no
/// resource can be read at all (no or an unknown `resourceType`).
pub fn parse_resource_partial(bytes: &[u8]) -> Result<(Object, Vec<ParseError>), crate::Error> {
    match read_resource(bytes, Limits::default(), false)? {
        (Some(resource), issues) => Ok((resource, issues)),
        (None, issues) => Err(crate::Error::Resource(issues)),
    }
}

/// Reads a resource from elsewhere leniently: what [`parse_resource_partial`] reads, and the
/// outcome of the elements left out as warnings. `None` for the warnings when nothing was left
/// out, so that strict data costs nothing more.
///
/// # Errors
/// As [`parse_resource_partial`].
pub fn parse_resource_lenient(
    bytes: &[u8],
) -> Result<(Object, Option<crate::outcome::OperationOutcome>), crate::Error> {
    let (resource, issues) = parse_resource_partial(bytes)?;
    if issues.is_empty() {
        return Ok((resource, None));
    }
    let mut outcome = crate::outcome::OperationOutcome::default();
    for issue in &issues {
        outcome.push_warning(
            crate::outcome::IssueType::Structure,
            alloc::format!("{}; left out", issue.message),
            issue.line,
            issue.column,
            issue.path.as_deref(),
        );
    }
    Ok((resource, Some(outcome)))
}

/// The JSON properties an object of type `type_name` may have, as [`parse_resource`] reads
/// them, for a host to check an object it holds by the same rules: `None` for a name no type
/// has. The type's kind (`R` a concrete resource, `A` an abstract one, `C` a complex type or
/// backbone element, `P` a primitive), then for each property, after `|`: its name, how its
/// values are written (`s` a string, `b` a boolean, `d` a decimal, `i`, `p`, `u` an integer,
/// a positive and an unsigned one; `c` an object of another type, `r` a resource), `1` when
/// it holds an array (else `0`), the index of its element (shared by a choice element's
/// names), the name of its type, and `1` when it may have a `_name` companion (else `0`):
/// `C|url s 0 1 uri 0|valueString s 0 2 string 1|...`. Elements not allowed (maximum 0) are
/// left out, as are companions (`_name`), which hold an object of the primitive's type.
pub fn json_table(type_name: &str) -> Option<String> {
    let def = model::type_def(model::type_by_name(type_name)?);
    let mut out = String::from(match def.kind {
        TypeKind::Resource if def.is_abstract => "A",
        TypeKind::Resource => "R",
        TypeKind::Primitive => "P",
        TypeKind::Complex | TypeKind::Backbone => "C",
    });
    for json_name in def.json_names {
        let Some(element) = def.elements.get(usize::from(json_name.element)) else {
            continue;
        };
        let Some(element_type) = element.types.get(usize::from(json_name.choice)) else {
            continue;
        };
        if element.max == 0 {
            continue;
        }
        let value_def = model::type_def(element_type.type_id);
        let kind = match primitive_json_kind(value_def) {
            Some(kind) => kind,
            None if value_def.name == "Resource" => 'r',
            None => 'c',
        };
        out.push_str(&format!(
            "|{} {kind} {} {} {} {}",
            json_name.name,
            u8::from(element.is_array()),
            json_name.element,
            value_def.name,
            u8::from(companion_allowed(element, json_name.choice)),
        ));
    }
    Some(out)
}

/// How the reader takes a value of primitive type `def` (see [`json_table`]): `s` a string,
/// `b` a boolean, `d` a decimal, `i` an integer, `p` a positive and `u` an unsigned integer;
/// `None` for other types.
pub(crate) fn primitive_json_kind(def: &model::TypeDef) -> Option<char> {
    if def.kind != TypeKind::Primitive {
        return None;
    }
    Some(match def.primitive.map(|primitive| primitive.json) {
        Some(JsonKind::Boolean) => 'b',
        Some(JsonKind::Decimal) => 'd',
        Some(JsonKind::Integer) => match def.name {
            "positiveInt" => 'p',
            "unsignedInt" => 'u',
            _ => 'i',
        },
        Some(JsonKind::String) | None => 's',
    })
}

/// The resource read from `bytes` (when one could be), and the issues found, each with its
/// line and column.
fn read_resource(
    bytes: &[u8],
    limits: Limits,
    projection: bool,
) -> Result<(Option<Object>, Vec<ParseError>), crate::Error> {
    let mut lexer = Lexer::new(bytes, limits)?;
    lexer.skip_whitespace();
    let mut reader = FhirReader {
        lexer,
        issues: Vec::new(),
        path: String::with_capacity(64),
        states: Vec::with_capacity(16),
        projection,
    };
    let resource = reader.resource(0)?;
    reader.lexer.expect_end()?;
    if !reader.issues.is_empty() {
        let offsets: Vec<usize> = reader.issues.iter().map(|issue| issue.line).collect();
        let positions = super::positions(bytes, &offsets);
        for (issue, (line, column)) in reader.issues.iter_mut().zip(positions) {
            issue.line = line;
            issue.column = column;
        }
    }
    Ok((resource, reader.issues))
}

/// Most issues reported for one resource; reading goes on, silently, to check the syntax.
pub const MAX_ISSUES: usize = 100;

struct FhirReader<'a> {
    lexer: Lexer<'a>,
    issues: Vec<ParseError>,
    /// FHIRPath location of the value being read.
    path: String,
    /// What has been read of each element of the objects being read, innermost last; each
    /// object uses the entries above the length the stack had when it started.
    states: Vec<FieldState>,
    /// Reading a projection: objects may be empty (see [`parse_projection`]).
    projection: bool,
}

/// What has been read of one element of the object being read.
#[derive(Default)]
struct FieldState {
    element: u16,
    choice: u16,
    /// Index in the object's fields of the element's first entry, and how many it has; the
    /// entries of one element are consecutive.
    start: usize,
    len: usize,
    main_seen: bool,
    companion_seen: bool,
    /// Items in the main array and in the companion array.
    main_len: Option<usize>,
    companion_len: Option<usize>,
    companion_offset: usize,
    /// Offsets of `null` items (index, offset), to report those with no partner.
    nulls: Vec<(usize, usize)>,
}

type Parsed<T> = Result<T, ParseError>;

impl<'a> FhirReader<'a> {
    /// Records an issue; past [`MAX_ISSUES`] only a note that more were found.
    fn issue(&mut self, message: String, offset: usize) {
        if self.issues.len() > MAX_ISSUES {
            return;
        }
        let (message, path) = if self.issues.len() == MAX_ISSUES {
            (
                alloc::format!("stopped after {MAX_ISSUES} issues; there are more"),
                None,
            )
        } else {
            (message, (!self.path.is_empty()).then(|| self.path.clone()))
        };
        // Line and column are worked out for all issues at once, at the end.
        self.issues.push(ParseError {
            message,
            line: offset,
            column: 0,
            path,
        });
    }

    /// "a string", "an array", ... for the value at the current position.
    fn describe_next(&self) -> &'static str {
        match self.lexer.peek() {
            Some(b'{') => "an object",
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        }
    }

    /// Reads a resource; `None` when it cannot be typed (the issue is recorded, the value skipped).
    fn resource(&mut self, depth: usize) -> Parsed<Option<Object>> {
        let offset = self.lexer.pos;
        if self.lexer.peek() != Some(b'{') {
            let found = self.describe_next();
            self.lexer.skip_value(depth)?;
            self.issue(
                format!("expected a FHIR resource (a JSON object), found {found}"),
                offset,
            );
            return Ok(None);
        }
        let Some(type_id) = self.find_resource_type(depth)? else {
            self.lexer.pos = offset;
            self.lexer.skip_value(depth)?;
            return Ok(None);
        };
        self.lexer.pos = offset;
        // A nested resource's elements are located from the outermost resource, through the
        // element that holds it: `Bundle.entry[0].resource.name[0]`.
        let saved = self.path.len();
        if self.path.is_empty() {
            self.path.push_str(model::type_def(type_id).name);
        }
        let (object, _) = self.object(type_id, true, depth)?;
        self.path.truncate(saved);
        Ok(Some(object))
    }

    /// Looks ahead in the object at the current position for its `resourceType` and resolves it.
    /// Canonical JSON names it first, so the look-ahead usually reads one member.
    fn find_resource_type(&mut self, depth: usize) -> Parsed<Option<TypeId>> {
        let offset = self.lexer.pos;
        self.lexer.enter(depth + 1)?;
        self.lexer.pos += 1;
        let mut more = self.lexer.first_member()?;
        while more {
            let key = self.lexer.key()?;
            if key == "resourceType" {
                let value_offset = self.lexer.pos;
                if self.lexer.peek() != Some(b'"') {
                    let found = self.describe_next();
                    self.issue(
                        format!("expected \"resourceType\" to be a string, found {found}"),
                        value_offset,
                    );
                    return Ok(None);
                }
                let name = self.lexer.string()?;
                return Ok(self.resolve_resource_type(&name, value_offset));
            }
            self.lexer.skip_value(depth + 1)?;
            more = self.lexer.next_member()?;
        }
        self.issue(
            "expected a \"resourceType\" element, found none".into(),
            offset,
        );
        Ok(None)
    }

    fn resolve_resource_type(&mut self, name: &str, offset: usize) -> Option<TypeId> {
        if let Some(type_id) = model::resource_type(name) {
            return Some(type_id);
        }
        let message = if model::type_by_name(name)
            .is_some_and(|id| model::type_def(id).kind == TypeKind::Resource)
        {
            format!("expected a concrete resource type, found the abstract type \"{name}\"")
        } else {
            format!("expected a FHIR R4 resource type, found \"{name}\"")
        };
        self.issue(message, offset);
        None
    }

    /// Reads the object at the current position as type `type_id`. Returns it and whether the
    /// JSON object was empty.
    fn object(
        &mut self,
        type_id: TypeId,
        is_resource: bool,
        depth: usize,
    ) -> Parsed<(Object, bool)> {
        let def = model::type_def(type_id);
        self.lexer.enter(depth + 1)?;
        self.lexer.pos += 1;
        let frame = self.states.len();
        let mut fields: Vec<Field> = Vec::new();
        let mut seen_resource_type = false;
        let mut more = self.lexer.first_member()?;
        let empty = !more;
        while more {
            let key_offset = self.lexer.pos;
            let key = self.lexer.key()?;
            if is_resource && key == "resourceType" {
                if seen_resource_type {
                    return Err(self
                        .lexer
                        .error_at(format!("duplicate key {key:?}"), key_offset));
                }
                seen_resource_type = true;
                self.lexer.skip_value(depth + 1)?;
            } else {
                self.member(def, &key, key_offset, &mut fields, frame, depth)?;
            }
            more = self.lexer.next_member()?;
        }
        for state_idx in frame..self.states.len() {
            self.finish_field(def, &fields, state_idx);
        }
        self.states.truncate(frame);
        // Stable: the values of a repeating element keep their order.
        fields.sort_by_key(|field| field.element);
        Ok((Object { type_id, fields }, empty))
    }

    fn member(
        &mut self,
        def: &'static TypeDef,
        key: &str,
        key_offset: usize,
        fields: &mut Vec<Field>,
        frame: usize,
        depth: usize,
    ) -> Parsed<()> {
        let (name, is_companion) = match key.strip_prefix('_') {
            Some(name) => (name, true),
            None => (key, false),
        };
        let Some(json_name) = def.json_name(name) else {
            self.unknown_element(key, key_offset);
            return self.lexer.skip_value(depth + 1);
        };
        let Some(element) = def.elements.get(usize::from(json_name.element)) else {
            return self.lexer.skip_value(depth + 1);
        };
        if element.max == 0 {
            self.issue(format!("element \"{key}\" is not allowed here"), key_offset);
            return self.lexer.skip_value(depth + 1);
        }
        if is_companion && !companion_allowed(element, json_name.choice) {
            self.unknown_element(key, key_offset);
            return self.lexer.skip_value(depth + 1);
        }
        let existing = self.states.get(frame..).and_then(|states| {
            states
                .iter()
                .position(|state| state.element == json_name.element)
                .map(|idx| idx + frame)
        });
        let state_idx = match existing
            .and_then(|idx| self.states.get(idx).map(|state| (idx, state)))
        {
            Some((idx, state)) => {
                if state.choice != json_name.choice {
                    let first = choice_name(element, state.choice);
                    let message = format!(
                        "expected one type for \"{}[x]\", found \"{first}\" and \"{key}\"",
                        element.name
                    );
                    let saved = self.path.len();
                    self.push_element(element, json_name.choice);
                    self.issue(message, key_offset);
                    self.path.truncate(saved);
                    return self.lexer.skip_value(depth + 1);
                }
                if (is_companion && state.companion_seen) || (!is_companion && state.main_seen) {
                    return Err(self
                        .lexer
                        .error_at(format!("duplicate key {key:?}"), key_offset));
                }
                idx
            }
            None => {
                self.states.push(FieldState {
                    element: json_name.element,
                    choice: json_name.choice,
                    start: fields.len(),
                    ..FieldState::default()
                });
                self.states.len() - 1
            }
        };
        let mut state = self
            .states
            .get_mut(state_idx)
            .map(core::mem::take)
            .unwrap_or_default();
        let saved = self.path.len();
        self.push_element(element, json_name.choice);
        let res = self.element_value(element, name, is_companion, fields, &mut state, depth);
        self.path.truncate(saved);
        if let Some(slot) = self.states.get_mut(state_idx) {
            *slot = state;
        }
        res
    }

    /// Reads the value of one member: a single value or an array, a value or companion.
    fn element_value(
        &mut self,
        element: &'static ElementDef,
        name: &str,
        is_companion: bool,
        fields: &mut Vec<Field>,
        state: &mut FieldState,
        depth: usize,
    ) -> Parsed<()> {
        if is_companion {
            state.companion_seen = true;
            state.companion_offset = self.lexer.pos;
        } else {
            state.main_seen = true;
        }
        let offset = self.lexer.pos;
        let Some(element_type) = element.types.get(usize::from(state.choice)) else {
            return self.lexer.skip_value(depth + 1);
        };
        let type_id = element_type.type_id;
        if !element.is_array() {
            if self.lexer.peek() == Some(b'[') {
                self.lexer.skip_value(depth + 1)?;
                self.issue(
                    format!("expected a single value for \"{name}\", found an array"),
                    offset,
                );
                return Ok(());
            }
            return self.item(type_id, name, is_companion, fields, state, None, depth + 1);
        }
        if self.lexer.peek() != Some(b'[') {
            let found = self.describe_next();
            self.lexer.skip_value(depth + 1)?;
            self.issue(
                format!("expected an array for \"{name}\" (it repeats), found {found}"),
                offset,
            );
            return Ok(());
        }
        self.lexer.enter(depth + 2)?;
        self.lexer.pos += 1;
        let mut more = self.lexer.first_item()?;
        if !more {
            self.issue(
                "expected an array with at least one item, found an empty array".into(),
                offset,
            );
            return Ok(());
        }
        let mut item_idx = 0;
        while more {
            let saved = self.path.len();
            push_index(&mut self.path, item_idx);
            self.item(
                type_id,
                name,
                is_companion,
                fields,
                state,
                Some(item_idx),
                depth + 2,
            )?;
            self.path.truncate(saved);
            item_idx += 1;
            more = self.lexer.next_item()?;
        }
        // Only arrays read whole take part in the length check.
        if is_companion {
            state.companion_len = Some(item_idx);
        } else {
            state.main_len = Some(item_idx);
        }
        Ok(())
    }

    /// Reads one value, or the array item at `item_idx`, of the element of `state`.
    #[allow(clippy::too_many_arguments)]
    fn item(
        &mut self,
        type_id: TypeId,
        name: &str,
        is_companion: bool,
        fields: &mut Vec<Field>,
        state: &mut FieldState,
        item_idx: Option<usize>,
        depth: usize,
    ) -> Parsed<()> {
        let def = model::type_def(type_id);
        let in_array = item_idx.is_some();
        let item_idx = item_idx.unwrap_or(0);
        let offset = self.lexer.pos;
        if self.lexer.peek() == Some(b'n') {
            self.lexer.literal("null", ())?;
            if def.kind == TypeKind::Primitive && in_array {
                // A placeholder, valid when the partner array has a value at this index.
                state.nulls.push((item_idx, offset));
                primitive_slot(fields, state, item_idx);
            } else {
                self.issue(
                    format!("expected a value for \"{name}\", found null"),
                    offset,
                );
            }
            return Ok(());
        }
        let value = match def.kind {
            TypeKind::Primitive if is_companion => {
                if self.lexer.peek() != Some(b'{') {
                    let found = self.describe_next();
                    self.lexer.skip_value(depth)?;
                    self.issue(format!("expected an object, found {found}"), offset);
                    return Ok(());
                }
                let (companion, empty) = self.object(type_id, false, depth)?;
                if empty && !self.projection {
                    self.issue(
                        "expected an object with at least one element, found an empty object"
                            .into(),
                        offset,
                    );
                } else if let Some(primitive) = primitive_slot(fields, state, item_idx) {
                    primitive.companion = Some(Box::new(companion));
                }
                return Ok(());
            }
            TypeKind::Primitive => {
                if let Some(value) = self.primitive_value(def, name, depth)? {
                    if let Some(primitive) = primitive_slot(fields, state, item_idx) {
                        primitive.value = Some(value);
                    }
                }
                return Ok(());
            }
            _ if def.name == "Resource" => match self.resource(depth)? {
                Some(resource) => Value::Resource(resource),
                None => return Ok(()),
            },
            _ => {
                if self.lexer.peek() != Some(b'{') {
                    let found = self.describe_next();
                    self.lexer.skip_value(depth)?;
                    self.issue(format!("expected an object, found {found}"), offset);
                    return Ok(());
                }
                let (object, empty) = self.object(type_id, false, depth)?;
                if empty && !self.projection {
                    self.issue(
                        "expected an object with at least one element, found an empty object"
                            .into(),
                        offset,
                    );
                    return Ok(());
                }
                Value::Complex(object)
            }
        };
        fields.push(Field {
            element: state.element,
            choice: state.choice,
            value,
        });
        state.len += 1;
        Ok(())
    }

    fn primitive_value(
        &mut self,
        def: &TypeDef,
        name: &str,
        depth: usize,
    ) -> Parsed<Option<PrimitiveValue>> {
        let offset = self.lexer.pos;
        let json = def
            .primitive
            .map_or(JsonKind::String, |primitive| primitive.json);
        let type_name = def.name;
        let expected = match json {
            JsonKind::Boolean => "true or false",
            JsonKind::Integer | JsonKind::Decimal => "a JSON number",
            JsonKind::String => "a JSON string",
        };
        let found = match self.lexer.peek() {
            Some(b'"') => {
                let text = self.lexer.string()?;
                if json == JsonKind::String {
                    if text.is_empty() {
                        let message = format!("expected \"{name}\" ({type_name}) to be a non-empty string, found \"\"");
                        self.issue(message, offset);
                        return Ok(None);
                    }
                    // R4 §2.24.0.1: no character below U+0020 but tab, carriage return and
                    // line feed. JSON refuses them unescaped, so only a string with escapes
                    // (an owned one) can hold one; below 0x20, UTF-8 bytes are those characters.
                    let escaped = matches!(text, alloc::borrow::Cow::Owned(_));
                    if let Some(bad) = text
                        .bytes()
                        .filter(|_| escaped)
                        .find(|b| *b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n'))
                    {
                        let message = format!(
                            "expected \"{name}\" ({type_name}) to hold no control character but tab, carriage return and line feed, found U+{:04X}",
                            u32::from(bad)
                        );
                        self.issue(message, offset);
                        return Ok(None);
                    }
                    return Ok(Some(PrimitiveValue::String(text.into_owned())));
                }
                if text.chars().count() <= 40 {
                    format!("a string {text:?}")
                } else {
                    String::from("a string")
                }
            }
            Some(b't' | b'f') => {
                let flag = if self.lexer.peek() == Some(b't') {
                    self.lexer.literal("true", true)?
                } else {
                    self.lexer.literal("false", false)?
                };
                if json == JsonKind::Boolean {
                    return Ok(Some(PrimitiveValue::Boolean(flag)));
                }
                String::from("a boolean")
            }
            Some(b'-' | b'0'..=b'9') => {
                let text = self.lexer.number()?;
                match json {
                    JsonKind::Decimal => return Ok(Some(PrimitiveValue::Number(text.to_string()))),
                    JsonKind::Integer if text.contains(['.', 'e', 'E']) => {
                        self.issue(format!("expected \"{name}\" ({type_name}) to be a whole number, found {text}"), offset);
                        return Ok(None);
                    }
                    JsonKind::Integer if text.parse::<i32>().is_err() => {
                        let message =
                            format!("expected \"{name}\" ({type_name}) to be within the 32-bit integer range, found {text}");
                        self.issue(message, offset);
                        return Ok(None);
                    }
                    JsonKind::Integer => {
                        let minimum = match type_name {
                            "positiveInt" => 1,
                            "unsignedInt" => 0,
                            _ => i32::MIN,
                        };
                        if text.parse::<i32>().is_ok_and(|value| value < minimum) {
                            let message =
                                format!("expected \"{name}\" ({type_name}) to be at least {minimum}, found {text}");
                            self.issue(message, offset);
                            return Ok(None);
                        }
                        return Ok(Some(PrimitiveValue::Number(text.to_string())));
                    }
                    _ if text.len() <= 40 => format!("a number {text}"),
                    _ => String::from("a number"),
                }
            }
            _ => {
                let found = self.describe_next();
                // Objects and arrays are skipped whole; anything else is a syntax error there.
                self.lexer.skip_value(depth)?;
                String::from(found)
            }
        };
        self.issue(
            format!("expected \"{name}\" ({type_name}) to be {expected}, found {found}"),
            offset,
        );
        Ok(None)
    }

    /// Checks what can only be checked once the whole object is read: companion arrays as long
    /// as their value arrays, and no index where both are `null`.
    fn finish_field(&mut self, def: &TypeDef, fields: &[Field], state_idx: usize) {
        let Some(state) = self.states.get(state_idx) else {
            return;
        };
        let Some(element) = def.elements.get(usize::from(state.element)) else {
            return;
        };
        let (choice, start) = (state.choice, state.start);
        let mismatch = match (state.main_len, state.companion_len) {
            (Some(main_len), Some(companion_len)) if main_len != companion_len => {
                Some((main_len, companion_len, state.companion_offset))
            }
            _ => None,
        };
        let nulls = self
            .states
            .get_mut(state_idx)
            .map(|state| core::mem::take(&mut state.nulls))
            .unwrap_or_default();
        if mismatch.is_none() && nulls.is_empty() {
            return;
        }
        let saved = self.path.len();
        self.push_element(element, choice);
        let name = choice_name(element, choice);
        if let Some((main_len, companion_len, offset)) = mismatch {
            let message =
                format!("expected \"_{name}\" to have as many items as \"{name}\" ({main_len}), found {companion_len}");
            self.issue(message, offset);
        }
        let mut reported = alloc::collections::BTreeSet::new();
        for &(item_idx, offset) in &nulls {
            let both_missing = match fields.get(start + item_idx).map(|field| &field.value) {
                Some(Value::Primitive(primitive)) => {
                    primitive.value.is_none() && primitive.companion.is_none()
                }
                _ => false,
            };
            // Report each index once, at its first null.
            if both_missing && reported.insert(item_idx) {
                let item_path = self.path.len();
                push_index(&mut self.path, item_idx);
                self.issue(
                    format!("expected a value for \"{name}\", found null"),
                    offset,
                );
                self.path.truncate(item_path);
            }
        }
        self.path.truncate(saved);
    }

    fn unknown_element(&mut self, key: &str, offset: usize) {
        let saved = self.path.len();
        self.path.push('.');
        self.path.push_str(key);
        self.issue(format!("unknown element \"{key}\""), offset);
        self.path.truncate(saved);
    }

    fn push_element(&mut self, element: &ElementDef, choice: u16) {
        self.path.push('.');
        self.path.push_str(element.name);
        if element.has(flags::CHOICE) {
            if let Some(element_type) = element.types.get(usize::from(choice)) {
                self.path.push_str(".ofType(");
                self.path
                    .push_str(model::type_def(element_type.type_id).name);
                self.path.push(')');
            }
        }
    }
}

/// The primitive at `item_idx` of the element of `state`, created (empty) at the end of the
/// element's entries when they are fewer. `None` when that is impossible because another
/// element's entries follow (the arrays then differ in length, which is reported).
fn primitive_slot<'f>(
    fields: &'f mut Vec<Field>,
    state: &mut FieldState,
    item_idx: usize,
) -> Option<&'f mut Primitive> {
    if item_idx >= state.len {
        if state.start + state.len != fields.len() || item_idx != state.len {
            return None;
        }
        let value = Value::Primitive(Primitive {
            value: None,
            companion: None,
        });
        fields.push(Field {
            element: state.element,
            choice: state.choice,
            value,
        });
        state.len += 1;
    }
    match fields
        .get_mut(state.start + item_idx)
        .map(|field| &mut field.value)
    {
        Some(Value::Primitive(primitive)) => Some(primitive),
        _ => None,
    }
}

/// Appends `[idx]` to a path.
pub(crate) fn push_index(path: &mut String, idx: usize) {
    path.push('[');
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut rest = idx;
    loop {
        if let Some(slot) = digits.get_mut(len) {
            *slot = b'0' + (rest % 10) as u8;
        }
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in digits.get(..len).unwrap_or_default().iter().rev() {
        path.push(char::from(digit));
    }
    path.push(']');
}

/// The JSON name of a choice element for one of its types (`valueQuantity`), or the plain name.
fn choice_name(element: &ElementDef, choice: u16) -> String {
    let mut res = String::from(element.name);
    if element.has(flags::CHOICE) {
        if let Some(element_type) = element.types.get(usize::from(choice)) {
            let type_name = model::type_def(element_type.type_id).name;
            let mut chars = type_name.chars();
            if let Some(first) = chars.next() {
                res.extend(first.to_uppercase());
                res.push_str(chars.as_str());
            }
        }
    }
    res
}

/// `_name` companions exist for primitive-typed elements that carry extensions.
fn companion_allowed(element: &ElementDef, choice: u16) -> bool {
    !element.has(flags::NO_EXTENSIONS)
        && element
            .types
            .get(usize::from(choice))
            .is_some_and(|element_type| {
                model::type_def(element_type.type_id).kind == TypeKind::Primitive
            })
}

#[cfg(test)]
mod tests {
    use super::json_table;

    #[test]
    fn json_tables_name_each_property_as_the_reader_reads_it() {
        let patient = json_table("Patient").expect("a type");
        let entries: alloc::vec::Vec<&str> = patient.split('|').collect();
        assert_eq!(entries.first(), Some(&"R"));
        let entry = |name: &str| {
            entries
                .iter()
                .find(|entry| entry.split(' ').next() == Some(name))
                .copied()
        };
        assert!(entry("birthDate")
            .is_some_and(|e| e.starts_with("birthDate s 0 ") && e.ends_with(" date 1")));
        assert!(entry("name")
            .is_some_and(|e| e.starts_with("name c 1 ") && e.ends_with(" HumanName 0")));
        assert!(entry("contained").is_some_and(|e| e.starts_with("contained r 1 ")));
        assert!(entry("multipleBirthInteger")
            .is_some_and(|e| e.starts_with("multipleBirthInteger i 0 ")));
        // A choice element's names share its element; companions are not listed.
        let element = |name: &str| entry(name).and_then(|e| e.split(' ').nth(3));
        assert_eq!(element("deceasedBoolean"), element("deceasedDateTime"));
        assert_ne!(element("deceasedBoolean"), element("birthDate"));
        assert_eq!(entry("_birthDate"), None);
        assert!(json_table("Attachment")
            .is_some_and(|t| t.starts_with("C|") && t.contains("|size u 0 ")));
        // `Extension.url` has no companion.
        assert!(json_table("Extension").is_some_and(|t| t.contains("|url s 0 2 uri 0|")));
        assert!(json_table("Resource").is_some_and(|t| t.starts_with("A|")));
        assert!(json_table("string").is_some_and(|t| t.starts_with("P")));
        assert_eq!(json_table("Nothing"), None);
    }
}
