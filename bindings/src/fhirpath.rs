//! FHIRPath for JS: resources held by the engine, compiled expressions, one-off evaluation.
//! Results leave as JSON text (the npm package parses them).

use hearth_engine::fhirpath::{
    self, Collection, Expression, Item, LocalResolver, Options, Temporal, Variables,
};
use hearth_engine::json::fhir::{parse_projection, parse_resource, parse_resource_lenient};
use hearth_engine::json::write::{write_object, write_resource, Style};
use hearth_engine::model::TypeKind;
use hearth_engine::resource::{Object, PrimitiveValue};
use std::cell::RefCell;
use std::collections::HashSet;
use wasm_bindgen::prelude::*;

use crate::BindingError;

/// A resource read to be held and evaluated many times, laid out for it.
fn held(mut object: Object) -> Object {
    object.arrange_for_reading();
    object
}

/// A resource read once and held by the engine, for evaluating many expressions without
/// reading its JSON again.
#[wasm_bindgen]
pub struct ParsedResource {
    object: Object,
    /// What was left out of a resource read leniently: OperationOutcome JSON text.
    warnings: Option<String>,
}

#[wasm_bindgen]
impl ParsedResource {
    /// Reads a resource from UTF-8 JSON bytes.
    ///
    /// # Errors
    /// A `FhirError` (400) with every violation of the FHIR JSON rules.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8]) -> Result<ParsedResource, BindingError> {
        Ok(ParsedResource {
            object: held(parse_resource(bytes)?),
            warnings: None,
        })
    }

    /// Reads a resource from elsewhere leniently: elements that break the FHIR JSON rules
    /// (unknown ones, wrong types) are left out, each with a warning (see `warnings`).
    ///
    /// # Errors
    /// A `FhirError` (400) when the bytes are not JSON or name no resource type.
    pub fn lenient(bytes: &[u8]) -> Result<ParsedResource, BindingError> {
        let (object, warnings) = parse_resource_lenient(bytes)?;
        Ok(ParsedResource {
            object: held(object),
            warnings: warnings.map(|outcome| outcome.to_json()),
        })
    }

    /// The warnings of a lenient read, as OperationOutcome JSON text; none when nothing was
    /// left out.
    #[wasm_bindgen(getter)]
    pub fn warnings(&self) -> Option<String> {
        self.warnings.clone()
    }

    /// The resource type.
    #[wasm_bindgen(getter, js_name = resourceType)]
    pub fn resource_type(&self) -> String {
        self.object.type_def().name.into()
    }

    /// The resource as canonical FHIR JSON text.
    #[wasm_bindgen(js_name = toJsonText)]
    pub fn to_json_text(&self) -> String {
        write_resource(&self.object, Style::Compact)
    }
}

/// Resources in each allocation of a [`ParsedResourceSet`].
const SET_CHUNK: usize = 256;

/// Many resources held by the engine, for evaluating an expression over all of them in one
/// call (indexing a patient record, say).
#[wasm_bindgen]
#[derive(Default)]
pub struct ParsedResourceSet {
    /// In chunks of [`SET_CHUNK`], each allocated whole at once and never grown, so that a
    /// resource stays where it is as the set grows (its address is its identity for
    /// `shared`) and the resources of a chunk lie side by side for a pass over all of them.
    chunks: Vec<Vec<Object>>,
    /// How many resources the chunks hold.
    len: usize,
    /// The resources in the set (whole ones, or ones within them: a Bundle's entries,
    /// contained resources) that `evaluateEach` has handed to JS as JSON, by address. JS keeps
    /// each as one frozen object and is sent only its address after the first time.
    shared: RefCell<HashSet<usize>>,
}

impl ParsedResourceSet {
    /// Adds a resource without moving those already held.
    fn push(&mut self, object: Object) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < chunk.capacity() => chunk.push(object),
            _ => {
                let mut chunk = Vec::with_capacity(SET_CHUNK);
                chunk.push(object);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }
}

#[wasm_bindgen]
impl ParsedResourceSet {
    /// An empty set.
    #[wasm_bindgen(constructor)]
    pub fn new() -> ParsedResourceSet {
        ParsedResourceSet::default()
    }

    /// Reads a resource into the set; returns its position.
    ///
    /// # Errors
    /// A `FhirError` (400) with every violation of the FHIR JSON rules.
    pub fn add(&mut self, bytes: &[u8]) -> Result<usize, BindingError> {
        self.push(held(parse_resource(bytes)?));
        Ok(self.len - 1)
    }

    /// Reads a resource into the set leniently (see `ParsedResource.lenient`); returns the
    /// warnings as OperationOutcome JSON text, none when nothing was left out.
    ///
    /// # Errors
    /// A `FhirError` (400) when the bytes are not JSON or name no resource type.
    #[wasm_bindgen(js_name = addLenient)]
    pub fn add_lenient(&mut self, bytes: &[u8]) -> Result<Option<String>, BindingError> {
        let (object, warnings) = parse_resource_lenient(bytes)?;
        self.push(held(object));
        Ok(warnings.map(|outcome| outcome.to_json()))
    }

    /// How many resources the set holds.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.len
    }

    /// Forgets which resources JS holds: the next `evaluateEach` sends each one's JSON again.
    #[wasm_bindgen(js_name = forgetShared)]
    pub fn forget_shared(&self) {
        self.shared.borrow_mut().clear();
    }
}

/// Resource-valued results of one `evaluateEach` call: each written as `[address, json]` the
/// first time and `[address]` once JS holds it (results are never arrays otherwise).
struct Sharing<'s> {
    known: &'s HashSet<usize>,
    /// Sent in this call; known to JS once the call has succeeded.
    fresh: HashSet<usize>,
    /// Whether any result was written so.
    any: bool,
}

impl Sharing<'_> {
    /// Writes `item` when it is a resource; false for anything else.
    fn write(&mut self, out: &mut String, item: &fhirpath::Item<'_>) -> bool {
        let fhirpath::Item::Object(object) = item else {
            return false;
        };
        if object.type_def().kind != TypeKind::Resource {
            return false;
        }
        let address = core::ptr::from_ref::<Object>(object) as usize;
        self.any = true;
        out.push('[');
        push_decimal(out, u64::try_from(address).unwrap_or(u64::MAX));
        if !self.known.contains(&address) && self.fresh.insert(address) {
            out.push(',');
            out.push_str(&write_object(object, Style::Compact));
        }
        out.push(']');
        true
    }
}

/// Separates the values of [`each_as_scalars`]: a control character, which a result string
/// hardly ever holds (then the results go as JSON).
const VALUE_SEPARATOR: char = '\u{1}';

/// The kind of each value of [`each_as_scalars`], when they are not all strings: one ASCII
/// character per value.
const KIND_STRING: u8 = b's';
const KIND_NUMBER: u8 = b'n';
const KIND_TRUE: u8 = b't';
const KIND_FALSE: u8 = b'f';
const KIND_NULL: u8 = b'z';

/// The results over `resources` (`count` of them) when every one is a string, a number, a
/// boolean or a primitive without a value, written as they are found: `T<resources>:`, every
/// value's text separated by [`VALUE_SEPARATOR`], then one character per resource whose code
/// is its number of results. When some are not strings, the text starts with `V` instead, and
/// between the values and the counts comes one [`KIND_STRING`]... character per value (the
/// text of a boolean or null is empty, that of a number is as JSON writes it). `None` as soon
/// as a result is anything else, or a string holds the separator (the caller then writes
/// JSON), or a resource has too many results.
fn each_as_scalars<'r>(
    expression: &Expression,
    resources: impl Iterator<Item = &'r Object>,
    count: usize,
) -> Result<Option<String>, BindingError> {
    let now = if expression.uses_clock() { now() } else { None };
    let mut out = String::with_capacity(count * 16 + 24);
    out.push('T');
    push_decimal(&mut out, u64::try_from(count).unwrap_or(u64::MAX));
    out.push(':');
    let mut counts: Vec<u32> = Vec::with_capacity(count);
    // `None` while every value is a string.
    let mut kinds: Option<Vec<u8>> = None;
    let mut values = 0usize;
    for resource in resources {
        let resolver = LocalResolver::new(resource);
        let options = Options {
            variables: &[],
            resolver: Some(&resolver),
            now,
            root_resource: None,
            lenient_as: false,
            projection: false,
        };
        let mut results = 0u32;
        let mut plain = true;
        expression.evaluate_streaming(resource, &options, &mut |item| {
            if !plain {
                return;
            }
            let temporal;
            let number;
            let (kind, text): (u8, &str) = match &item {
                fhirpath::Item::Primitive(primitive, _) => match &primitive.value {
                    Some(PrimitiveValue::String(text)) => (KIND_STRING, text),
                    Some(PrimitiveValue::Number(text)) => (KIND_NUMBER, text),
                    Some(PrimitiveValue::Boolean(true)) => (KIND_TRUE, ""),
                    Some(PrimitiveValue::Boolean(false)) => (KIND_FALSE, ""),
                    None => (KIND_NULL, ""),
                },
                fhirpath::Item::String(text) => (KIND_STRING, text),
                fhirpath::Item::Temporal(value) => {
                    temporal = value.to_text();
                    (KIND_STRING, &temporal)
                }
                fhirpath::Item::Boolean(true) => (KIND_TRUE, ""),
                fhirpath::Item::Boolean(false) => (KIND_FALSE, ""),
                fhirpath::Item::Integer(value) => {
                    number = integer_text(*value);
                    (KIND_NUMBER, number.as_str())
                }
                fhirpath::Item::Decimal(value) => {
                    number = value.to_text();
                    (KIND_NUMBER, number.as_str())
                }
                _ => {
                    plain = false;
                    return;
                }
            };
            if kind == KIND_STRING && text.contains(VALUE_SEPARATOR) {
                plain = false;
                return;
            }
            if kind != KIND_STRING && kinds.is_none() {
                kinds = Some(vec![KIND_STRING; values]);
            }
            if values > 0 {
                out.push(VALUE_SEPARATOR);
            }
            out.push_str(text);
            if let Some(kinds) = &mut kinds {
                kinds.push(kind);
            }
            values += 1;
            results = results.saturating_add(1);
        })?;
        if !plain {
            return Ok(None);
        }
        counts.push(results);
    }
    if let Some(kinds) = kinds {
        out.replace_range(..1, "V");
        // ASCII throughout.
        out.extend(kinds.iter().map(|&kind| char::from(kind)));
    }
    for results in counts {
        // One UTF-16 code unit in JS: below the surrogates.
        match char::from_u32(results).filter(|_| results < 0xD800) {
            Some(code) => out.push(code),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The decimal text of an integer, as JSON writes it.
fn integer_text(value: i64) -> String {
    let mut text = String::new();
    if value < 0 {
        text.push('-');
    }
    push_decimal(&mut text, value.unsigned_abs());
    text
}

/// Appends the decimal digits of `number`.
fn push_decimal(out: &mut String, number: impl Into<u64>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest: u64 = number.into();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

/// Memory shared with JS for evaluating on projections with no allocation crossing over per
/// call: JS writes a projection's JSON text (ASCII) at `ptr`, and
/// `CompiledExpression.evaluateProjectionIn` writes the result's JSON text there in its place.
#[wasm_bindgen]
pub struct ProjectionBuffer {
    /// Always as long as it is allocated (zeros past what was written), so that JS may write
    /// anywhere in it.
    bytes: Vec<u8>,
}

#[wasm_bindgen]
impl ProjectionBuffer {
    /// A buffer of 4 KiB.
    #[wasm_bindgen(constructor)]
    pub fn new() -> ProjectionBuffer {
        ProjectionBuffer {
            bytes: vec![0; 4096],
        }
    }

    /// Makes room for at least `len` bytes, keeping what the buffer holds.
    pub fn reserve(&mut self, len: usize) {
        if self.bytes.len() < len {
            self.bytes.resize(len.next_power_of_two(), 0);
        }
    }

    /// Where the bytes are in Wasm memory (it moves when the buffer grows).
    #[wasm_bindgen(getter)]
    pub fn ptr(&self) -> *const u8 {
        self.bytes.as_ptr()
    }

    /// How many bytes it holds.
    #[wasm_bindgen(getter)]
    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl Default for ProjectionBuffer {
    fn default() -> Self {
        ProjectionBuffer::new()
    }
}

/// A compiled FHIRPath expression.
#[wasm_bindgen]
pub struct CompiledExpression {
    expression: Expression,
}

fn now() -> Option<Temporal> {
    let iso: String = js_sys::Date::new_0().to_iso_string().into();
    Temporal::parse(&iso, None)
}

fn run(
    expression: &Expression,
    resource: &Object,
    variables: Option<&[u8]>,
) -> Result<String, BindingError> {
    let mut res = String::new();
    run_each(
        expression,
        core::iter::once(resource),
        variables,
        false,
        None,
        &mut res,
    )?;
    Ok(res)
}

/// Evaluates on each resource and appends each result, as a JSON array, to `out`; variables
/// are read and the clock is asked (when the expression uses it) once for all.
fn run_each<'r>(
    expression: &Expression,
    resources: impl Iterator<Item = &'r Object>,
    variables: Option<&[u8]>,
    projection: bool,
    mut sharing: Option<&mut Sharing<'_>>,
    out: &mut String,
) -> Result<(), BindingError> {
    let variables = match variables {
        Some(bytes) => Variables::from_json(bytes)?,
        None => Variables::default(),
    };
    let collections: Vec<(String, Collection<'_>)> = variables.collections();
    let now = if expression.uses_clock() { now() } else { None };
    for (idx, resource) in resources.enumerate() {
        let resolver = LocalResolver::new(resource);
        let options = Options {
            variables: &collections,
            resolver: Some(&resolver),
            now,
            root_resource: None,
            lenient_as: false,
            projection,
        };
        if idx > 0 {
            out.push(',');
        }
        out.push('[');
        let mut first = true;
        let mut count = 0u32;
        expression.evaluate_streaming(resource, &options, &mut |item| {
            if !first {
                out.push(',');
            }
            first = false;
            count = count.saturating_add(1);
            if !sharing
                .as_deref_mut()
                .is_some_and(|sharing| sharing.write(out, &item))
            {
                fhirpath::write_item(out, &item);
            }
        })?;
        out.push(']');
    }
    Ok(())
}

#[wasm_bindgen]
impl CompiledExpression {
    /// Compiles an expression; with a resource type, checks it against the R4 model.
    ///
    /// # Errors
    /// A `FhirError` (400) for a syntax or semantic error, with its offset.
    #[wasm_bindgen(constructor)]
    pub fn new(
        text: &str,
        resource_type: Option<String>,
    ) -> Result<CompiledExpression, BindingError> {
        let expression = match resource_type {
            Some(resource_type) => fhirpath::compile_for_type(text, &resource_type)?,
            None => fhirpath::compile(text)?,
        };
        Ok(CompiledExpression { expression })
    }

    /// Evaluates on a held resource; `variables` is JSON text of `{"name": value}`.
    ///
    /// # Errors
    /// A `FhirError` (400) when evaluation fails.
    #[wasm_bindgen(js_name = evaluateParsed)]
    pub fn evaluate_parsed(
        &self,
        resource: &ParsedResource,
        variables: Option<Vec<u8>>,
    ) -> Result<String, BindingError> {
        run(&self.expression, &resource.object, variables.as_deref())
    }

    /// Evaluates on every resource of a set; returns JSON text of one result array per resource.
    ///
    /// # Errors
    /// A `FhirError` (400) when an evaluation fails.
    #[wasm_bindgen(js_name = evaluateEach)]
    pub fn evaluate_each(
        &self,
        set: &ParsedResourceSet,
        variables: Option<Vec<u8>>,
    ) -> Result<String, BindingError> {
        // Results that are all strings (as most are: codes, references, dates), numbers or
        // booleans go as their text, which JS splits several times faster than `JSON.parse`
        // reads the same results.
        if variables.is_none() {
            if let Some(text) =
                each_as_scalars(&self.expression, set.chunks.iter().flatten(), set.len)?
            {
                return Ok(text);
            }
        }
        let mut res = String::with_capacity(set.len * 16 + 3);
        // A space JSON allows, made `S` in place when some results are shared.
        res.push_str(" [");
        // Only the set's own resources are shared: with variables, an object may be one of
        // theirs, made for this call.
        let known = set.shared.borrow();
        let mut sharing = Sharing {
            known: &known,
            fresh: HashSet::new(),
            any: false,
        };
        run_each(
            &self.expression,
            set.chunks.iter().flatten(),
            variables.as_deref(),
            false,
            variables.is_none().then_some(&mut sharing),
            &mut res,
        )?;
        res.push(']');
        let Sharing { fresh, any, .. } = sharing;
        drop(known);
        set.shared.borrow_mut().extend(fresh);
        if any {
            // Tells JS that some results are `[address]` or `[address, json]`.
            res.replace_range(..1, "S");
        }
        Ok(res)
    }

    /// Evaluates with no input (an empty collection, no `%resource`): for expressions that
    /// need no resource, such as `1 + 1` or `today()`.
    ///
    /// # Errors
    /// A `FhirError` (400) when evaluation fails.
    #[wasm_bindgen(js_name = evaluateEmpty)]
    pub fn evaluate_empty(&self, variables: Option<Vec<u8>>) -> Result<String, BindingError> {
        let variables = match variables.as_deref() {
            Some(bytes) => Variables::from_json(bytes)?,
            None => Variables::default(),
        };
        let collections: Vec<(String, Collection<'_>)> = variables.collections();
        let now = if self.expression.uses_clock() {
            now()
        } else {
            None
        };
        let options = Options {
            variables: &collections,
            resolver: None,
            now,
            root_resource: None,
            lenient_as: false,
            projection: false,
        };
        let items = self.expression.evaluate_items(&[], None, &options)?;
        let mut out = String::from("[");
        for (idx, item) in items.iter().enumerate() {
            if idx > 0 {
                out.push(',');
            }
            fhirpath::write_item(&mut out, item);
        }
        out.push(']');
        Ok(out)
    }

    /// Evaluates on a resource given as UTF-8 JSON bytes.
    ///
    /// # Errors
    /// A `FhirError` (400) when the resource does not read or evaluation fails.
    #[wasm_bindgen(js_name = evaluateJson)]
    pub fn evaluate_json(
        &self,
        bytes: &[u8],
        variables: Option<Vec<u8>>,
    ) -> Result<String, BindingError> {
        let resource = parse_resource(bytes)?;
        run(&self.expression, &resource, variables.as_deref())
    }

    /// The JSON property names evaluation can read (see `evaluateProjectionIn`), sorted;
    /// `undefined` when it may read anything.
    pub fn projection(&self) -> Option<Vec<String>> {
        self.expression.projection()
    }

    /// The JSON properties evaluation can read on a resource of type `resource_type`, as a
    /// tree: `resourceType,name(use,_use,given,_given)`, each name followed by what may be read
    /// inside its values in parentheses. A projection may keep, in each object, only the
    /// properties of its node (instead of every name of `projection()` at every level).
    /// `undefined` when the tree cannot be known.
    #[wasm_bindgen(js_name = projectionShape)]
    pub fn projection_shape(&self, resource_type: &str) -> Option<String> {
        self.expression.projection_shape(resource_type)
    }

    /// The properties a plain path follows through a resource of type `resource_type` to
    /// primitive values, for JS to follow on a plain object (`name+.given+:s`: `+` where an
    /// array is held, then how the values are written: `s` string, `b` boolean, `d` decimal,
    /// `i`, `p`, `u` integer, positive, unsigned). `undefined` for other expressions.
    #[wasm_bindgen(js_name = projectionRoute)]
    pub fn projection_route(&self, resource_type: &str) -> Option<String> {
        self.expression.projection_route(resource_type)
    }

    /// Evaluates on a projection of a resource: the first `len` bytes of `buffer`, JSON text
    /// keeping at every level only the names of `projection()`, or in each object only the
    /// properties of its node of `projectionShape()` for the resource's type. What is there is read by the
    /// FHIR JSON rules; what is not is not checked. The results replace the input: their JSON
    /// text, or, when every result is an object, `R` and where each lies in the resource
    /// (`entry.3.resource;entry.5.resource`: property names and positions in arrays), for the
    /// caller to hand back its own objects if it wrote those whole (else it reads the whole
    /// resource). Returns their length, or -1 when the projection does not read, evaluation
    /// fails, or the results depend on what the projection left out (objects among other
    /// values, objects compared): then the caller evaluates on the whole resource, which gives
    /// the answer (or the error) for it.
    #[wasm_bindgen(js_name = evaluateProjectionIn)]
    pub fn evaluate_projection_in(&self, buffer: &mut ProjectionBuffer, len: usize) -> i32 {
        let Some(text) = buffer.bytes.get(..len) else {
            return -1;
        };
        let Ok(resource) = parse_projection(text) else {
            return -1;
        };
        let resolver = LocalResolver::new(&resource);
        let options = Options {
            variables: &[],
            resolver: Some(&resolver),
            now: if self.expression.uses_clock() {
                now()
            } else {
                None
            },
            root_resource: None,
            lenient_as: false,
            projection: true,
        };
        let mut items = Vec::new();
        if self
            .expression
            .evaluate_streaming_whole_objects(&resource, &options, &mut |item| items.push(item))
            .is_err()
        {
            return -1;
        }
        let objects: Vec<&Object> = items
            .iter()
            .filter_map(|item| match item {
                Item::Object(object) => Some(*object),
                _ => None,
            })
            .collect();
        let mut res = String::new();
        if objects.is_empty() {
            res.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    res.push(',');
                }
                fhirpath::write_item(&mut res, item);
            }
            res.push(']');
        } else if objects.len() == items.len() {
            // Every result an object: where each lies in the resource, for the caller to hand
            // back its own (which it wrote whole).
            res.push('R');
            for (idx, path) in resource.paths_to(&objects).into_iter().enumerate() {
                let Some(path) = path else {
                    return -1;
                };
                if idx > 0 {
                    res.push(';');
                }
                res.push_str(&path);
            }
        } else {
            return -1;
        }
        let Ok(written) = i32::try_from(res.len()) else {
            return -1;
        };
        buffer.reserve(res.len());
        if let Some(slot) = buffer.bytes.get_mut(..res.len()) {
            slot.copy_from_slice(res.as_bytes());
        }
        written
    }

    /// Evaluates on a resource read leniently from UTF-8 JSON bytes: JSON text of
    /// `[results, warnings]`, the warnings an OperationOutcome or `null`.
    ///
    /// # Errors
    /// A `FhirError` (400) when the bytes are not JSON or name no resource type, or evaluation
    /// fails.
    #[wasm_bindgen(js_name = evaluateJsonLenient)]
    pub fn evaluate_json_lenient(
        &self,
        bytes: &[u8],
        variables: Option<Vec<u8>>,
    ) -> Result<String, BindingError> {
        let (resource, warnings) = parse_resource_lenient(bytes)?;
        let results = run(&self.expression, &resource, variables.as_deref())?;
        let warnings = warnings.map_or_else(|| String::from("null"), |outcome| outcome.to_json());
        Ok(format!("[{results},{warnings}]"))
    }
}
