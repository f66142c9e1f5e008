//! Search (R4 §3.1.1): index extraction with the search parameters' FHIRPath expressions,
//! index keys made for range scans, the parameter types and modifiers, chaining, reverse
//! chaining, and a planner that starts from the most selective parameter.
//!
//! Storage layout, beside the REST handler's (see [`crate::rest`]): `i␀Type␀code␀value␀row`,
//! one key per index value of a current resource ([`index`] says how values are encoded), where
//! `row` is the resource's row number: `r␀Type␀id` → row and `n␀Type␀row` → id, allocated from
//! `m␀row` when a resource is first indexed (ids are often 36-character UUIDs; rows are a few
//! characters). An update or delete reads the version it replaces again to know which keys to
//! remove, so the index keeps no second copy of each resource's values.
//!
//! **Invariant:** the index always describes the current versions: it is written in the same
//! store transaction as the version it describes.
//!
//! The planner: every parameter whose values map to key ranges is first scanned with a small
//! limit; those that finish give exact sets, the smallest of which are intersected. A parameter
//! that matches more is checked on each candidate (reading the resource) when there are very
//! few candidates, and otherwise scanned in full and intersected; negations and
//! `:missing=true` are checked on candidates. A query with no scannable parameter walks the type.

pub mod index;
mod query;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{OnceCell, RefCell};

use crate::fhirpath::{self, Expression, Options, Resolver};
use crate::model::{self, SearchParamType, TypeId};
use crate::resource::Object;
use crate::store::{KeyRange, StoreError, Transaction};

pub use query::{
    parse, parse_count, Criterion, Cursor, Include, Query, SearchError, Summary, Total, MAX_COUNT,
};

/// A search parameter: one of the core specification's or a `SearchParameter` resource's.
pub struct Param {
    /// Canonical URL.
    pub url: String,
    /// The name used in queries.
    pub code: String,
    /// The parameter type.
    pub kind: SearchParamType,
    /// The resource types it applies to (`Resource` for all).
    pub base: Vec<String>,
    /// The FHIRPath expression, as written.
    pub expression_text: Option<String>,
    expression: OnceCell<Option<Expression>>,
    /// For each resource type it was evaluated on, the expression without the branches that
    /// are empty on that type (see [`Expression::for_root_type`]); `None` when that is the
    /// whole expression.
    by_root: RefCell<Vec<(TypeId, Option<Rc<Expression>>)>>,
    /// For references: the allowed target types.
    pub target: Vec<String>,
    /// For composites: the definition URL and expression of each component.
    pub components: Vec<(String, String)>,
}

impl Param {
    /// A parameter from its parts.
    pub fn new(
        url: &str,
        code: &str,
        kind: SearchParamType,
        base: Vec<String>,
        expression: Option<&str>,
        target: Vec<String>,
        components: Vec<(String, String)>,
    ) -> Param {
        Param {
            url: url.to_string(),
            code: code.to_string(),
            kind,
            base,
            expression_text: expression.map(ToString::to_string),
            expression: OnceCell::new(),
            by_root: RefCell::new(Vec::new()),
            target,
            components,
        }
    }

    /// [`Param::expression`] for evaluating at the root of a resource of type `root`, when
    /// it is not the whole expression.
    pub fn pruned_for(&self, root: TypeId) -> Option<Rc<Expression>> {
        if let Some((_, pruned)) = self.by_root.borrow().iter().find(|(id, _)| *id == root) {
            return pruned.clone();
        }
        let pruned = self
            .expression()
            .and_then(|whole| whole.for_root_type(root))
            .map(Rc::new);
        self.by_root.borrow_mut().push((root, pruned.clone()));
        pruned
    }

    /// The compiled expression (compiled on first use); `None` when there is none or it does
    /// not compile.
    pub fn expression(&self) -> Option<&Expression> {
        self.expression
            .get_or_init(|| {
                self.expression_text
                    .as_deref()
                    .and_then(|text| fhirpath::compile(text).ok())
            })
            .as_ref()
    }

    /// Reads a `SearchParameter` resource; `None` when it lacks a code, type or base.
    pub fn from_resource(resource: &Object) -> Option<Param> {
        let kind = match resource.text("type")? {
            "number" => SearchParamType::Number,
            "date" => SearchParamType::Date,
            "string" => SearchParamType::String,
            "token" => SearchParamType::Token,
            "reference" => SearchParamType::Reference,
            "composite" => SearchParamType::Composite,
            "quantity" => SearchParamType::Quantity,
            "uri" => SearchParamType::Uri,
            _ => SearchParamType::Special,
        };
        let base: Vec<String> = resource.texts("base").map(ToString::to_string).collect();
        if base.is_empty() {
            return None;
        }
        Some(Param::new(
            resource.text("url").unwrap_or_default(),
            resource.text("code")?,
            kind,
            base,
            resource.text("expression"),
            resource.texts("target").map(ToString::to_string).collect(),
            resource
                .objects("component")
                .filter_map(|component| {
                    Some((
                        component.text("definition")?.to_string(),
                        component.text("expression")?.to_string(),
                    ))
                })
                .collect(),
        ))
    }
}

/// The search parameters in force, by resource type.
pub struct Registry {
    params: Vec<Param>,
    /// For each concrete resource type: its parameters by code (indexes into `params`; a later
    /// parameter with the same code replaces an earlier one).
    by_type: BTreeMap<&'static str, BTreeMap<String, usize>>,
    /// An empty object of each type, for `resolve()` in expressions like
    /// `subject.where(resolve() is Patient)`: only the reference's type is known at index time.
    stubs: Vec<Object>,
    /// True once a `SearchParameter` resource has been added.
    custom: bool,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::core()
    }
}

impl Registry {
    /// The core specification's parameters.
    pub fn core() -> Registry {
        let params = model::SEARCH_PARAMS
            .iter()
            .map(|def| {
                Param::new(
                    def.url,
                    def.code,
                    def.kind,
                    def.base.iter().map(|name| (*name).to_string()).collect(),
                    def.expression,
                    def.target.iter().map(|name| (*name).to_string()).collect(),
                    def.components
                        .iter()
                        .map(|(url, expression)| ((*url).to_string(), (*expression).to_string()))
                        .collect(),
                )
            })
            .collect();
        let stubs = (0..model::TYPES.len())
            .map(|index| Object {
                type_id: TypeId(u16::try_from(index).unwrap_or(0)),
                fields: Vec::new(),
            })
            .collect();
        let mut registry = Registry {
            params,
            by_type: BTreeMap::new(),
            stubs,
            custom: false,
        };
        registry.rebuild();
        registry
    }

    fn rebuild(&mut self) {
        let domain = model::type_by_name("DomainResource");
        let mut by_type: BTreeMap<&'static str, BTreeMap<String, usize>> = BTreeMap::new();
        let concrete: Vec<&'static model::TypeDef> = model::TYPES
            .iter()
            .filter(|def| def.is_concrete_resource())
            .collect();
        for (index, param) in self.params.iter().enumerate() {
            for base in &param.base {
                for def in &concrete {
                    let applies = def.name == base
                        || base == "Resource"
                        || (base == "DomainResource" && def.base == domain);
                    if applies {
                        by_type
                            .entry(def.name)
                            .or_default()
                            .insert(param.code.clone(), index);
                    }
                }
            }
        }
        self.by_type = by_type;
    }

    /// Adds a parameter (a `SearchParameter` resource), replacing one with the same URL.
    /// Resources stored before are indexed for it after a reindex.
    pub fn add(&mut self, param: Param) {
        match self
            .params
            .iter()
            .position(|known| !param.url.is_empty() && known.url == param.url)
        {
            Some(index) => self.params[index] = param,
            None => self.params.push(param),
        }
        self.custom = true;
        self.rebuild();
    }

    /// True when `SearchParameter` resources were added to the core parameters.
    pub fn has_custom(&self) -> bool {
        self.custom
    }

    /// The parameter `code` of `type_name`.
    pub fn param(&self, type_name: &str, code: &str) -> Option<&Param> {
        self.by_type
            .get(type_name)?
            .get(code)
            .and_then(|index| self.params.get(*index))
    }

    /// The parameter with this canonical URL.
    pub fn by_url(&self, url: &str) -> Option<&Param> {
        self.params.iter().rev().find(|param| param.url == url)
    }

    /// The parameters of `type_name`, by code.
    pub fn params_of<'r>(&'r self, type_name: &str) -> impl Iterator<Item = &'r Param> + 'r {
        self.by_type
            .get(type_name)
            .into_iter()
            .flat_map(|codes| codes.values())
            .filter_map(|index| self.params.get(*index))
    }

    /// Every index value of `resource`: (code, value, payload), sorted and without repeats.
    pub fn extract(&self, resource: &Object, base_url: &str) -> Vec<(String, String, String)> {
        self.extract_only(resource, base_url, &[])
    }

    /// The index values of `resource` for the parameters `codes` only (all when empty).
    pub fn extract_only(
        &self,
        resource: &Object,
        base_url: &str,
        codes: &[&str],
    ) -> Vec<(String, String, String)> {
        let resolver = Stubs(&self.stubs);
        let mut entries = Vec::new();
        let mut values = Vec::new();
        for param in self.params_of(resource.type_def().name) {
            let options = Options {
                resolver: Some(&resolver),
                lenient_as: true,
                ..Options::default()
            };
            if matches!(
                param.kind,
                SearchParamType::Composite | SearchParamType::Special
            ) || (!codes.is_empty() && !codes.contains(&param.code.as_str()))
            {
                continue;
            }
            let Some(whole) = param.expression() else {
                continue;
            };
            let pruned = param.pruned_for(resource.type_id);
            let expression = pruned.as_deref().unwrap_or(whole);
            let Ok(items) = expression.evaluate(resource, &options) else {
                continue;
            };
            values.clear();
            for item in &items {
                index::encode(param.kind, item, base_url, &mut values);
            }
            values.sort();
            values.dedup();
            for (value, payload) in values.drain(..) {
                entries.push((param.code.clone(), value, payload));
            }
        }
        entries
    }
}

/// Resolves references to an empty resource of the referenced type.
struct Stubs<'r>(&'r [Object]);

impl<'r> Resolver<'r> for Stubs<'r> {
    fn resolve(&self, reference: &str) -> Option<&'r Object> {
        let path = reference
            .split_once("/_history/")
            .map_or(reference, |(head, _)| head);
        let mut segments = path.rsplit('/');
        let _id = segments.next()?;
        let type_name = segments.next()?;
        let type_id = model::resource_type(type_name)?;
        self.0.get(usize::from(type_id.0))
    }
}

/// Key of an index entry.
/// Key of an index entry: `i␀Type␀code␀value␀row`, or `i␀Type␀code␀value␂payload␀row` when
/// there is a payload (so that two values that encode alike but differ as written, `Smith` and
/// `SMITH`, keep one key each); `row` is the resource's row number (see [`row_of`]).
fn index_key(type_name: &str, code: &str, value: &str, payload: &str, row: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(
        type_name.len() + code.len() + value.len() + payload.len() + row.len() + 6,
    );
    for part in ["i", type_name, code] {
        key.extend_from_slice(part.as_bytes());
        key.push(0);
    }
    key.extend_from_slice(value.as_bytes());
    if !payload.is_empty() {
        key.push(2);
        key.extend_from_slice(payload.as_bytes());
    }
    key.push(0);
    key.extend_from_slice(row.as_bytes());
    key
}

/// The value, payload and row number of an index key, after its `i␀Type␀code␀` prefix.
fn split_index_key(rest: &[u8]) -> Option<(&str, &str, &str)> {
    let split = rest.iter().rposition(|b| *b == 0)?;
    let id = core::str::from_utf8(rest.get(split + 1..)?).ok()?;
    let text = core::str::from_utf8(rest.get(..split)?).ok()?;
    let (value, payload) = text.split_once('\u{2}').unwrap_or((text, ""));
    Some((value, payload, id))
}

/// The store key naming the index layout a store was indexed with.
pub const INDEX_FORMAT_KEY: &[u8] = b"m\0index";

/// Changed by every write of a `SearchParameter`, so that each service over the store
/// rebuilds its registry when another wrote one.
pub const PARAMS_MARKER_KEY: &[u8] = b"m\0searchparams";
/// The index layout written by this version: a store with another is indexed again when a
/// service opens it (its resources given row numbers again).
pub const INDEX_FORMAT: &str = "4";

/// Index values: (parameter code, encoded value, payload).
pub(crate) type Entries = Vec<(String, String, String)>;

/// The index values of the current version of `type_name/id` for the parameters `codes` (all
/// when empty), read again from the resource (none when it is not current).
pub(crate) async fn resource_entries<T: Transaction>(
    tx: &mut T,
    context: &Context<'_>,
    type_name: &str,
    id: &str,
    codes: &[&str],
) -> Result<Entries, StoreError> {
    let Some(json) = load_json(tx, type_name, id).await? else {
        return Ok(Vec::new());
    };
    Ok(crate::json::fhir::parse_resource(json.as_bytes())
        .map(|resource| {
            context
                .registry
                .extract_only(&resource, context.base_url, codes)
        })
        .unwrap_or_default())
}

/// Replaces the index values `old` of `type_name/id` with `new`: keys only in `old` are
/// deleted, those of `new` written.
pub async fn write_index<T: Transaction>(
    tx: &mut T,
    type_name: &str,
    id: &str,
    old: &Entries,
    new: &Entries,
) -> Result<(), StoreError> {
    if old.is_empty() && new.is_empty() {
        return Ok(());
    }
    let Some(row) = row_of(tx, type_name, id, !new.is_empty()).await? else {
        return Ok(());
    };
    if !old.is_empty() {
        let keep: BTreeSet<&(String, String, String)> = new.iter().collect();
        for entry in old {
            if !keep.contains(entry) {
                let (code, value, payload) = entry;
                tx.delete(index_key(type_name, code, value, payload, &row));
            }
        }
    }
    for (code, value, payload) in new {
        tx.put(index_key(type_name, code, value, payload, &row), Vec::new());
    }
    if new.is_empty() {
        // Gone: its row number goes too (a resource created again gets a new one).
        tx.delete(row_key(type_name, id));
        tx.delete(row_id_key(type_name, &row));
    }
    Ok(())
}

/// Removes every index key of `type_name` (before indexing it again), and with `rows` its
/// row numbers too.
pub async fn clear_index<T: Transaction>(
    tx: &mut T,
    type_name: &str,
    rows: bool,
) -> Result<(), StoreError> {
    let kinds: &[&str] = if rows { &["i", "r", "n"] } else { &["i"] };
    for kind in kinds {
        let prefix = alloc::format!("{kind}\0{type_name}\0").into_bytes();
        for (key, _) in tx
            .scan(&KeyRange::prefix(&prefix), usize::MAX, false)
            .await?
        {
            tx.delete(key);
        }
    }
    Ok(())
}

/// Ids of the current resources of a type in the order they were first stored (by their row
/// numbers, as written by any version), then those without a row number.
pub(crate) async fn ids_in_stored_order<T: Transaction>(
    tx: &mut T,
    type_name: &str,
) -> Result<Vec<String>, StoreError> {
    let mut current = current_ids(tx, type_name).await?;
    let prefix = alloc::format!("n\0{type_name}\0").into_bytes();
    let mut rows: Vec<(Vec<u8>, String)> = tx
        .scan(&KeyRange::prefix(&prefix), usize::MAX, false)
        .await?
        .into_iter()
        .filter_map(|(key, id)| {
            Some((
                key.get(prefix.len()..)?.to_vec(),
                String::from_utf8(id).ok()?,
            ))
        })
        .collect();
    // Shorter first, then by digits: numeric order for the row numbers of every version.
    rows.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
    let mut ordered = Vec::with_capacity(current.len());
    for (_, id) in rows {
        if current.remove(&id) {
            ordered.push(id);
        }
    }
    ordered.extend(current);
    Ok(ordered)
}

/// Ids of the current resources of a type (the REST handler's `c␀Type␀id` keys that are not
/// deletions).
pub(crate) async fn current_ids<T: Transaction>(
    tx: &mut T,
    type_name: &str,
) -> Result<BTreeSet<String>, StoreError> {
    let prefix = alloc::format!("c\0{type_name}\0").into_bytes();
    // A deletion's value holds a ␀ (`version␀deleted`).
    key_tails(tx, &prefix, |value| !value.contains(&0)).await
}

/// What follows `prefix` in each key under it whose value `keep` accepts.
async fn key_tails<T: Transaction>(
    tx: &mut T,
    prefix: &[u8],
    keep: impl Fn(&[u8]) -> bool,
) -> Result<BTreeSet<String>, StoreError> {
    let mut tails = BTreeSet::new();
    tx.visit(
        &KeyRange::prefix(prefix),
        false,
        WHOLE,
        &mut |key, value| {
            if keep(value) {
                if let Some(tail) = key
                    .get(prefix.len()..)
                    .and_then(|tail| core::str::from_utf8(tail).ok())
                {
                    tails.insert(tail.to_string());
                }
            }
            true
        },
    )
    .await?;
    Ok(tails)
}

/// Above this many exact values, a clause is answered by one scan per parameter with a set
/// lookup instead of one scan per value.
const MANY_VALUES: usize = 64;

/// How many index entries a probe scans before the planner calls a parameter unselective.
const PROBE: usize = 512;
/// Most candidates checked one by one against an unselective parameter (each check reads and
/// parses the resource, some fifty times the cost of an index entry scanned); above this, the
/// parameter is scanned in full and intersected.
const CHECK_LIMIT: usize = 32;
/// Most hits whose sort keys are read from the resources; above this, the sort parameter's
/// index is scanned once in order instead.
const SORT_BY_RESOURCE_LIMIT: usize = 64;

/// Rows of `type_name` that satisfy `clause`, from its key ranges (only those in `within`,
/// when given); `None` when more than `limit` index entries had to be read.
async fn scan_clause<T: Transaction>(
    tx: &mut T,
    type_name: &str,
    clause: &query::Clause,
    limit: usize,
    within: Option<&Rows>,
) -> Result<Option<Rows>, StoreError> {
    let query::Clause::Any { alts, .. } = clause else {
        return Ok(None);
    };
    let mut ids: Vec<u64> = Vec::new();
    let mut read = 0usize;
    let step = limit.saturating_add(1);
    let keep = |ids: &mut Vec<u64>, row: &str| {
        if let Some(row) = row_number(row) {
            if within.is_none_or(|rows| rows.contains(row)) {
                ids.push(row);
            }
        }
    };
    // Many exact values (a chain's targets, a value set's codes): one ordered scan of each
    // parameter with a set lookup, rather than one scan per value.
    if alts.len() > MANY_VALUES
        && alts
            .iter()
            .all(|alt| matches!(alt.test, query::Test::Exact(_)))
    {
        let mut wanted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for alt in alts {
            if let query::Test::Exact(value) = &alt.test {
                wanted
                    .entry(alt.code.as_str())
                    .or_default()
                    .insert(value.as_str());
            }
        }
        for (code, values) in wanted {
            let prefix = alloc::format!("i\0{type_name}\0{code}\0").into_bytes();
            tx.visit(&KeyRange::prefix(&prefix), false, step, &mut |key, _| {
                read += 1;
                if read > limit {
                    return false;
                }
                if let Some((value, _, id)) = key.get(prefix.len()..).and_then(split_index_key) {
                    if values.contains(value) {
                        keep(&mut ids, id);
                    }
                }
                true
            })
            .await?;
            if read > limit {
                return Ok(None);
            }
        }
        return Ok(Some(Rows::from_unsorted(ids)));
    }
    for alt in alts {
        let prefix = alloc::format!("i\0{type_name}\0{}\0", alt.code).into_bytes();
        for (start, end) in &alt.ranges {
            let mut range_start = prefix.clone();
            range_start.extend_from_slice(start);
            let range_end = match end {
                Some(end) => {
                    let mut key = prefix.clone();
                    key.extend_from_slice(end);
                    Some(key)
                }
                None => KeyRange::prefix(&prefix).end,
            };
            let range = KeyRange {
                start: range_start,
                end: range_end,
            };
            tx.visit(&range, false, step, &mut |key, _| {
                read += 1;
                if read > limit {
                    return false;
                }
                if let Some((value, payload, id)) =
                    key.get(prefix.len()..).and_then(split_index_key)
                {
                    if alt.test.matches(value, payload) {
                        keep(&mut ids, id);
                    }
                }
                true
            })
            .await?;
            if read > limit {
                return Ok(None);
            }
        }
    }
    Ok(Some(Rows::from_unsorted(ids)))
}

/// Row numbers (see [`row_of`]) as numbers, ascending, each once: a set of matches that costs
/// no allocation per match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rows(Vec<u64>);

impl Rows {
    fn from_unsorted(mut rows: Vec<u64>) -> Rows {
        rows.sort_unstable();
        rows.dedup();
        Rows(rows)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    fn contains(&self, row: u64) -> bool {
        self.0.binary_search(&row).is_ok()
    }

    /// Whether the row written `text` is one of these.
    fn contains_text(&self, text: &str) -> bool {
        row_number(text).is_some_and(|row| self.contains(row))
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().copied()
    }

    fn intersect(mut self, other: &Rows) -> Rows {
        self.0.retain(|row| other.contains(*row));
        self
    }
}

/// The number a row number's text stands for: a letter saying how many base-36 digits follow.
fn row_number(text: &str) -> Option<u64> {
    let (digits, rest) = text.as_bytes().split_first()?;
    if usize::from(digits.checked_sub(b'a')?) + 1 != rest.len() {
        return None;
    }
    rest.iter().try_fold(0u64, |number, digit| {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'z' => digit - b'a' + 10,
            _ => return None,
        };
        number.checked_mul(36)?.checked_add(u64::from(value))
    })
}

/// The text of row number `number` (see [`row_of`]).
fn row_text(number: u64) -> String {
    let mut row = Vec::new();
    let mut rest = number;
    while rest > 0 {
        row.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(rest % 36) as usize]);
        rest /= 36;
    }
    row.push(b'a' + (row.len() as u8).saturating_sub(1));
    row.reverse();
    String::from_utf8(row).unwrap_or_default()
}

/// Orders row numbers: as their text does, which orders them as the numbers they are (see
/// [`row_of`]), so that an ordered scan of keys ending in rows meets them in stored order.
fn row_order(a: &str, b: &str) -> core::cmp::Ordering {
    a.cmp(b)
}

/// Rows of the current resources of a type.
async fn current_rows<T: Transaction>(tx: &mut T, type_name: &str) -> Result<Rows, StoreError> {
    let prefix = alloc::format!("n\0{type_name}\0").into_bytes();
    let mut rows = Vec::new();
    tx.visit(&KeyRange::prefix(&prefix), false, WHOLE, &mut |key, _| {
        if let Some(row) = key
            .get(prefix.len()..)
            .and_then(|tail| core::str::from_utf8(tail).ok())
            .and_then(row_number)
        {
            rows.push(row);
        }
        true
    })
    .await?;
    Ok(Rows::from_unsorted(rows))
}

/// The key of a resource's row number, the short name its index keys carry.
pub(crate) fn row_key(type_name: &str, id: &str) -> Vec<u8> {
    crate::rest::key(&["r", type_name, id])
}

/// The key of the id a row number stands for.
fn row_id_key(type_name: &str, row: &str) -> Vec<u8> {
    crate::rest::key(&["n", type_name, row])
}

/// The row number of `type_name/id` (a store-wide counter in base 36, after a letter saying
/// how many digits follow, `a` for one, so that row numbers sort as text as they do as
/// numbers): index keys end with it rather than with the id, which is often a 36-character
/// UUID. With `allocate`, a resource without one is given the next.
async fn row_of<T: Transaction>(
    tx: &mut T,
    type_name: &str,
    id: &str,
    allocate: bool,
) -> Result<Option<String>, StoreError> {
    if let Some(row) = tx.get(&row_key(type_name, id)).await? {
        return Ok(String::from_utf8(row).ok());
    }
    if !allocate {
        return Ok(None);
    }
    let counter = b"m\0row";
    let next = tx
        .get(counter)
        .await?
        .and_then(|value| core::str::from_utf8(&value).ok()?.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    tx.put(counter.to_vec(), next.to_string().into_bytes());
    let row = row_text(next);
    tx.put(row_key(type_name, id), row.clone().into_bytes());
    tx.put(row_id_key(type_name, &row), id.as_bytes().to_vec());
    Ok(Some(row))
}

/// The ids that row numbers stand for.
async fn ids_of<T: Transaction>(
    tx: &mut T,
    type_name: &str,
    rows: Rows,
) -> Result<BTreeSet<String>, StoreError> {
    let keys: Vec<Vec<u8>> = rows
        .iter()
        .map(|row| row_id_key(type_name, &row_text(row)))
        .collect();
    tx.prefetch(&keys).await?;
    let mut ids = BTreeSet::new();
    for key in keys {
        if let Some(id) = tx.get(&key).await? {
            if let Ok(id) = String::from_utf8(id) {
                ids.insert(id);
            }
        }
    }
    Ok(ids)
}

/// The id one row number stands for.
pub(crate) async fn id_of<T: Transaction>(
    tx: &mut T,
    type_name: &str,
    row: &str,
) -> Result<Option<String>, StoreError> {
    Ok(tx
        .get(&row_id_key(type_name, row))
        .await?
        .and_then(|id| String::from_utf8(id).ok()))
}

/// What a search needs besides the store: the parameters and the server's base URL.
pub struct Context<'c> {
    /// The parameters in force.
    pub registry: &'c Registry,
    /// The server's base URL, for references written as absolute URLs.
    pub base_url: &'c str,
}

/// Loads the current JSON of a resource (the REST handler's layout).
pub(crate) async fn load_json<T: Transaction>(
    tx: &mut T,
    type_name: &str,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let Some(current) = tx
        .get(&alloc::format!("c\0{type_name}\0{id}").into_bytes())
        .await?
    else {
        return Ok(None);
    };
    if current.contains(&0) {
        return Ok(None);
    }
    let version: u64 = core::str::from_utf8(&current)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    let key = alloc::format!("v\0{type_name}\0{id}\0{version:020}").into_bytes();
    Ok(tx.get(&key).await?.and_then(stored_json))
}

/// The current JSON of each of `resources` (as [`load_json`]), read with two rounds of
/// read-ahead: their current-version pointers, then the versions they point at.
pub(crate) async fn load_json_many<T: Transaction>(
    tx: &mut T,
    resources: &[(String, String)],
) -> Result<Vec<Option<String>>, StoreError> {
    let pointers: Vec<Vec<u8>> = resources
        .iter()
        .map(|(type_name, id)| alloc::format!("c\0{type_name}\0{id}").into_bytes())
        .collect();
    tx.prefetch(&pointers).await?;
    let mut versions = Vec::with_capacity(resources.len());
    for ((type_name, id), pointer) in resources.iter().zip(&pointers) {
        let current = tx.get(pointer).await?;
        versions.push(
            current
                .filter(|current| !current.contains(&0))
                .and_then(|current| core::str::from_utf8(&current).ok()?.parse::<u64>().ok())
                .map(|version| alloc::format!("v\0{type_name}\0{id}\0{version:020}").into_bytes()),
        );
    }
    let wanted: Vec<Vec<u8>> = versions.iter().flatten().cloned().collect();
    tx.prefetch(&wanted).await?;
    let mut found = Vec::with_capacity(resources.len());
    for key in versions {
        found.push(match key {
            Some(key) => tx.get(&key).await?.and_then(stored_json),
            None => None,
        });
    }
    Ok(found)
}

/// The JSON of a stored version (none for a deletion).
fn stored_json(value: Vec<u8>) -> Option<String> {
    let text = String::from_utf8(value).ok()?;
    match text.split_at_checked(1) {
        Some(("P" | "U" | "R" | "A", json)) => Some(json.to_string()),
        _ => None,
    }
}

/// The ids of `type_name` matching every clause.
pub(crate) fn matching_ids<'f, T: Transaction>(
    tx: &'f mut T,
    context: &'f Context<'f>,
    type_name: &'f str,
    clauses: &'f [query::Clause],
) -> core::pin::Pin<Box<dyn core::future::Future<Output = Result<BTreeSet<String>, StoreError>> + 'f>>
{
    Box::pin(async move {
        let rows = matching_rows(tx, context, type_name, clauses).await?;
        ids_of(tx, type_name, rows).await
    })
}

/// The rows of `type_name` matching every clause: the planner works on row numbers, and only
/// the results shown are turned into ids.
pub(crate) fn matching_rows<'f, T: Transaction>(
    tx: &'f mut T,
    context: &'f Context<'f>,
    type_name: &'f str,
    clauses: &'f [query::Clause],
) -> core::pin::Pin<Box<dyn core::future::Future<Output = Result<Rows, StoreError>> + 'f>> {
    Box::pin(async move {
        let mut sets: Vec<Rows> = Vec::new();
        let mut unselective = Vec::new();
        let mut checks = Vec::new();
        for clause in clauses {
            match clause {
                // Ids from `_has` come from references: those of no current resource have no
                // row and drop out here.
                query::Clause::Ids(ids) => {
                    let mut rows = Vec::new();
                    for id in ids {
                        if let Some(row) = row_of(tx, type_name, id, false).await? {
                            rows.extend(row_number(&row));
                        }
                    }
                    sets.push(Rows::from_unsorted(rows));
                }
                query::Clause::Any { negate: false, .. } => {
                    match scan_clause(tx, type_name, clause, PROBE, None).await? {
                        Some(ids) => sets.push(ids),
                        None => unselective.push(clause),
                    }
                }
                _ => checks.push(clause),
            }
        }
        sets.sort_by_key(Rows::len);
        let mut candidates: Option<Rows> = None;
        for set in sets {
            candidates = Some(match candidates {
                None => set,
                Some(candidates) => candidates.intersect(&set),
            });
        }
        for clause in unselective {
            match &candidates {
                Some(found) if found.len() <= CHECK_LIMIT => checks.push(clause),
                _ => {
                    // Only the candidates found so far are kept from the scan.
                    let ids = scan_clause(tx, type_name, clause, usize::MAX, candidates.as_ref())
                        .await?
                        .unwrap_or_default();
                    candidates = Some(ids);
                }
            }
        }
        let candidates = match candidates {
            Some(candidates) => candidates,
            None => current_rows(tx, type_name).await?,
        };
        if checks.is_empty() {
            return Ok(candidates);
        }
        let mut codes: Vec<&str> = Vec::new();
        for clause in &checks {
            clause.codes(&mut codes);
        }
        let mut found = Vec::new();
        for row in candidates.iter() {
            let Some(id) = id_of(tx, type_name, &row_text(row)).await? else {
                continue;
            };
            let Some(json) = load_json(tx, type_name, &id).await? else {
                continue;
            };
            let Ok(resource) = crate::json::fhir::parse_resource(json.as_bytes()) else {
                continue;
            };
            let entries = if codes.is_empty() {
                Vec::new()
            } else {
                context
                    .registry
                    .extract_only(&resource, context.base_url, &codes)
            };
            let mut all = true;
            for clause in &checks {
                let ok = match clause {
                    query::Clause::Composite { .. } => clause.matches_resource(context, &resource),
                    _ => clause.matches_entries(&entries),
                };
                if !ok {
                    all = false;
                    break;
                }
            }
            if all {
                found.push(row);
            }
        }
        Ok(Rows(found))
    })
}

/// One search result, with the keys it sorts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Sort keys, one per `_sort` parameter (`None`: the resource has no value).
    pub keys: Vec<Option<String>>,
    /// Resource type.
    pub type_name: String,
    /// The resource's row number: results with equal sort keys come in the order they were
    /// first stored.
    pub row: String,
    /// Logical id (filled for the results of the page).
    pub id: String,
}

/// The answer to a search: the page, the total and where the pages around it begin.
#[derive(Debug, Default)]
pub struct Found {
    /// How many resources match in all.
    pub total: usize,
    /// This page's matches, in order.
    pub page: Vec<Hit>,
    /// The cursor of the next page, when there is one.
    pub next: Option<String>,
    /// The cursor of the previous page, when there is one.
    pub previous: Option<String>,
    /// Resources added by `_include` and `_revinclude`: (type, id).
    pub included: Vec<(String, String)>,
}

fn compare_hits(a: &Hit, b: &Hit, descending: &[bool]) -> core::cmp::Ordering {
    use core::cmp::Ordering;
    for (index, desc) in descending.iter().enumerate() {
        let order = match (a.keys.get(index), b.keys.get(index)) {
            (Some(Some(x)), Some(Some(y))) => {
                if *desc {
                    y.cmp(x)
                } else {
                    x.cmp(y)
                }
            }
            (Some(Some(_)), _) => Ordering::Less,
            (_, Some(Some(_))) => Ordering::Greater,
            _ => Ordering::Equal,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.type_name
        .cmp(&b.type_name)
        .then_with(|| row_order(&a.row, &b.row))
}

/// The value a resource sorts by for one parameter: its least value ascending, its greatest
/// descending; dates by the start of their range.
fn sort_key(
    entries: &Entries,
    code: &str,
    kind: Option<SearchParamType>,
    descending: bool,
) -> Option<String> {
    let values = entries
        .iter()
        .filter(|(entry_code, value, _)| entry_code == code && sortable(kind, value))
        .map(|(_, value, _)| value.clone());
    if descending {
        values.max()
    } else {
        values.min()
    }
}

/// True for the index values a parameter of type `kind` sorts by: a date by the start of its
/// range, a token by its code, a reference by its target, a quantity by its value as written.
fn sortable(kind: Option<SearchParamType>, value: &str) -> bool {
    match kind {
        Some(SearchParamType::Date) => value.starts_with('L'),
        Some(SearchParamType::Token) => value.starts_with('='),
        Some(SearchParamType::Reference) => !value.starts_with('@'),
        Some(SearchParamType::Quantity) => value.starts_with('\u{1}'),
        _ => true,
    }
}

/// The sort keys of `rows` for the parameter `code`, read from its index in one ordered scan:
/// ascending, the first value met of each id is its least; descending, its greatest.
async fn sort_keys_from_index<T: Transaction>(
    tx: &mut T,
    type_name: &str,
    code: &str,
    kind: Option<SearchParamType>,
    descending: bool,
    rows: &Rows,
) -> Result<BTreeMap<String, String>, StoreError> {
    let prefix = alloc::format!("i\0{type_name}\0{code}\0").into_bytes();
    let mut keys = BTreeMap::new();
    tx.visit(
        &KeyRange::prefix(&prefix),
        descending,
        WHOLE,
        &mut |key, _| {
            if let Some((value, _, row)) = key.get(prefix.len()..).and_then(split_index_key) {
                if sortable(kind, value) && rows.contains_text(row) && !keys.contains_key(row) {
                    keys.insert(row.to_string(), value.to_string());
                }
            }
            true
        },
    )
    .await?;
    Ok(keys)
}

fn encode_cursor(hit: &Hit) -> String {
    let mut text = String::new();
    for key in &hit.keys {
        match key {
            Some(key) => {
                text.push('1');
                text.push_str(key);
            }
            None => text.push('0'),
        }
        text.push('\0');
    }
    text.push_str(&hit.type_name);
    text.push('\0');
    text.push_str(&hit.row);
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        out.push_str(&alloc::format!("{byte:02x}"));
    }
    out
}

fn decode_cursor(text: &str, sorts: usize) -> Option<Hit> {
    let bytes: Option<Vec<u8>> = (0..text.len() / 2)
        .map(|index| u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let mut parts = text.split('\0');
    let mut keys = Vec::new();
    for _ in 0..sorts {
        let part = parts.next()?;
        keys.push(match part.split_at_checked(1)? {
            ("1", key) => Some(key.to_string()),
            _ => None,
        });
    }
    let type_name = parts.next()?.to_string();
    let row = parts.next()?.to_string();
    Some(Hit {
        keys,
        type_name,
        row,
        id: String::new(),
    })
}

/// Runs a parsed search.
///
/// # Errors
/// [`SearchError`] for chains and `_has` that cannot be followed; store failures as such.
pub async fn run<T: Transaction>(
    tx: &mut T,
    context: &Context<'_>,
    query: &Query,
) -> Result<Found, SearchError> {
    // The matches of a one-type search, when the first page was not found otherwise.
    let mut matched = match first_page(tx, context, query).await? {
        Ok(found) => return Ok(found),
        Err(matched) => matched,
    };
    let mut hits = Vec::new();
    for (type_name, criteria) in &query.per_type {
        let ids = match matched.take() {
            Some(rows) => rows,
            None => {
                let Some(clauses) = type_clauses(tx, context, query, type_name, criteria).await?
                else {
                    continue;
                };
                matching_rows(tx, context, type_name, &clauses)
                    .await
                    .map_err(SearchError::store)?
            }
        };
        let from_index = ids.len() > SORT_BY_RESOURCE_LIMIT && !query.sort.is_empty();
        let mut indexed_keys: Vec<BTreeMap<String, String>> = Vec::new();
        if from_index {
            for (code, desc) in &query.sort {
                indexed_keys.push(
                    sort_keys_from_index(
                        tx,
                        type_name,
                        code,
                        context
                            .registry
                            .param(type_name, code)
                            .map(|param| param.kind),
                        *desc,
                        &ids,
                    )
                    .await
                    .map_err(SearchError::store)?,
                );
            }
        }
        for row in ids.iter().map(row_text) {
            let keys = if query.sort.is_empty() {
                Vec::new()
            } else if from_index {
                indexed_keys
                    .iter()
                    .map(|keys| keys.get(&row).cloned())
                    .collect()
            } else {
                let id = id_of(tx, type_name, &row)
                    .await
                    .map_err(SearchError::store)?
                    .unwrap_or_default();
                let codes: Vec<&str> = query.sort.iter().map(|(code, _)| code.as_str()).collect();
                let entries = resource_entries(tx, context, type_name, &id, &codes)
                    .await
                    .map_err(SearchError::store)?;
                query
                    .sort
                    .iter()
                    .map(|(code, desc)| {
                        let kind = context
                            .registry
                            .param(type_name, code)
                            .map(|param| param.kind);
                        sort_key(&entries, code, kind, *desc)
                    })
                    .collect()
            };
            hits.push(Hit {
                keys,
                type_name: type_name.clone(),
                row,
                id: String::new(),
            });
        }
    }
    let descending: Vec<bool> = query.sort.iter().map(|(_, desc)| *desc).collect();
    hits.sort_by(|a, b| compare_hits(a, b, &descending));
    let total = hits.len();
    let (start, end) = match &query.cursor {
        None => (0, query.count.min(total)),
        Some(Cursor::After(text)) => {
            let cursor = decode_cursor(text, descending.len())
                .ok_or_else(|| SearchError::bad("_cursor is not one this server gave"))?;
            let start = hits.partition_point(|hit| {
                compare_hits(hit, &cursor, &descending) != core::cmp::Ordering::Greater
            });
            (start, (start + query.count).min(total))
        }
        Some(Cursor::Before(text)) => {
            let cursor = decode_cursor(text, descending.len())
                .ok_or_else(|| SearchError::bad("_cursor is not one this server gave"))?;
            let end = hits.partition_point(|hit| {
                compare_hits(hit, &cursor, &descending) == core::cmp::Ordering::Less
            });
            (end.saturating_sub(query.count), end)
        }
    };
    let next = (end < total && end > 0)
        .then(|| hits.get(end - 1).map(encode_cursor))
        .flatten();
    // Before the first of this page (an empty page past the end has no previous link).
    let previous = (start > 0 && start < total)
        .then(|| hits.get(start).map(encode_cursor))
        .flatten();
    let page: Vec<Hit> = hits.get(start..end).unwrap_or_default().to_vec();
    finish(tx, context, query, page, total, next, previous).await
}

/// The answer from its page of hits (their ids still to be read) and its total.
async fn finish<T: Transaction>(
    tx: &mut T,
    context: &Context<'_>,
    query: &Query,
    mut page: Vec<Hit>,
    total: usize,
    next: Option<String>,
    previous: Option<String>,
) -> Result<Found, SearchError> {
    let keys: Vec<Vec<u8>> = page
        .iter()
        .map(|hit| row_id_key(&hit.type_name, &hit.row))
        .collect();
    tx.prefetch(&keys).await.map_err(SearchError::store)?;
    for hit in &mut page {
        hit.id = id_of(tx, &hit.type_name, &hit.row)
            .await
            .map_err(SearchError::store)?
            .unwrap_or_default();
    }
    let included = query::includes(tx, context, query, &page)
        .await
        .map_err(SearchError::store)?;
    Ok(Found {
        total,
        page,
        next,
        previous,
        included,
    })
}

/// The step of a visit that reads its whole range: one read of it all from a store whose reads
/// are round trips (IndexedDB), as a scan would; stores that visit where the entries lie
/// ignore it.
const WHOLE: usize = usize::MAX;

/// Index entries read per step of an ordered walk.
const WALK_STEP: usize = 256;

/// The clauses of `criteria` on `type_name`, the compartment's included; `None` when the type
/// is not in the compartment searched.
async fn type_clauses<T: Transaction>(
    tx: &mut T,
    context: &Context<'_>,
    query: &Query,
    type_name: &str,
    criteria: &[query::Criterion],
) -> Result<Option<Vec<query::Clause>>, SearchError> {
    let mut clauses = query::resolve(tx, context, type_name, criteria).await?;
    if let Some((focus, id)) = &query.compartment {
        match query::compartment_clause(context.registry, focus, id, type_name) {
            Some(clause) => clauses.push(clause),
            None => return Ok(None),
        }
    }
    Ok(Some(clauses))
}

/// The first page of a search of one type, found without ordering every match: with no
/// `_sort`, the first matching rows in order; sorted by one parameter, an ordered walk of its
/// index that keeps the matches and stops once the page is full. `Err` when the search is not
/// one of those, or too few matches have a sort value (those without one come last, and need
/// every match), with the matches when they were found.
async fn first_page<T: Transaction>(
    tx: &mut T,
    context: &Context<'_>,
    query: &Query,
) -> Result<Result<Found, Option<Rows>>, SearchError> {
    let [(type_name, criteria)] = query.per_type.as_slice() else {
        return Ok(Err(None));
    };
    if query.cursor.is_some() || query.sort.len() > 1 || query.count == 0 {
        return Ok(Err(None));
    }
    let Some(clauses) = type_clauses(tx, context, query, type_name, criteria).await? else {
        return Ok(Err(None));
    };
    let sort = query.sort.first();
    // The matches: every current row of the type when there are no criteria and the page is
    // sorted (an index may hold keys of resources deleted after their parameters changed).
    let candidates = if !clauses.is_empty() {
        Some(
            matching_rows(tx, context, type_name, &clauses)
                .await
                .map_err(SearchError::store)?,
        )
    } else if sort.is_some() {
        Some(
            current_rows(tx, type_name)
                .await
                .map_err(SearchError::store)?,
        )
    } else {
        None
    };
    // Few matches sort faster by the values in the resources themselves.
    if sort.is_some()
        && candidates
            .as_ref()
            .is_some_and(|rows| rows.len() <= SORT_BY_RESOURCE_LIMIT)
    {
        return Ok(Err(candidates));
    }
    let rows_prefix = alloc::format!("n\0{type_name}\0").into_bytes();
    let wanted = query.count.saturating_add(1);
    let counted = match &candidates {
        Some(rows) => Some(rows.len()),
        // No total asked for: the page's rows (and the one after it) are all that is read.
        None if query.total == query::Total::None
            && query.summary != Some(query::Summary::Count) =>
        {
            None
        }
        None => Some(
            tx.count(&KeyRange::prefix(&rows_prefix))
                .await
                .map_err(SearchError::store)?,
        ),
    };
    let mut hits: Vec<Hit> = Vec::new();
    let hit = |keys: Vec<Option<String>>, row: &str| Hit {
        keys,
        type_name: type_name.clone(),
        row: row.to_string(),
        id: String::new(),
    };
    match sort {
        None => match &candidates {
            Some(rows) => hits.extend(
                rows.iter()
                    .take(wanted)
                    .map(|row| hit(Vec::new(), &row_text(row))),
            ),
            None => {
                let entries = tx
                    .scan(&KeyRange::prefix(&rows_prefix), wanted, false)
                    .await
                    .map_err(SearchError::store)?;
                for (key, _) in entries {
                    if let Some(row) = key
                        .get(rows_prefix.len()..)
                        .and_then(|row| core::str::from_utf8(row).ok())
                    {
                        hits.push(hit(Vec::new(), row));
                    }
                }
            }
        },
        Some((code, descending)) => {
            let kind = context
                .registry
                .param(type_name, code)
                .map(|param| param.kind);
            let prefix = alloc::format!("i\0{type_name}\0{code}\0").into_bytes();
            let mut seen: BTreeSet<String> = BTreeSet::new();
            // The value of the page's last hit: the walk goes on through its ties (and values
            // it begins) before it stops, so that sorting what it met orders them as the full
            // sort would.
            let mut boundary: Option<String> = None;
            tx.visit(
                &KeyRange::prefix(&prefix),
                *descending,
                WALK_STEP,
                &mut |key, _| {
                    let Some((value, _, row)) = key.get(prefix.len()..).and_then(split_index_key)
                    else {
                        return true;
                    };
                    if let Some(boundary) = &boundary {
                        if !value.starts_with(boundary.as_str()) {
                            return false;
                        }
                    }
                    if !sortable(kind, value)
                        || candidates
                            .as_ref()
                            .is_some_and(|rows| !rows.contains_text(row))
                        || !seen.insert(row.to_string())
                    {
                        return true;
                    }
                    hits.push(hit(alloc::vec![Some(value.to_string())], row));
                    if hits.len() == wanted && boundary.is_none() {
                        boundary = Some(value.to_string());
                    }
                    true
                },
            )
            .await
            .map_err(SearchError::store)?;
            if hits.len() < wanted && counted.is_none_or(|total| hits.len() < total) {
                return Ok(Err(candidates));
            }
            hits.sort_by(|a, b| compare_hits(a, b, &[*descending]));
        }
    }
    let total = counted.unwrap_or(hits.len());
    let end = query.count.min(total).min(hits.len());
    let next = (end < total && end > 0)
        .then(|| hits.get(end - 1).map(encode_cursor))
        .flatten();
    hits.truncate(end);
    finish(tx, context, query, hits, total, next, None)
        .await
        .map(Ok)
}

/// Whether `resource` meets every one of `params` (search parameters of its type, as in a
/// query string), judged on the resource itself rather than on the index, so that a resource
/// about to be written can be judged too. Chains and `_has` are looked up in `tx`.
///
/// # Errors
/// [`SearchError`] when `params` is not a valid search of the resource's type.
pub async fn resource_matches<T: Transaction>(
    tx: &mut T,
    context: &Context<'_>,
    resource: &Object,
    params: &[(String, String)],
) -> Result<bool, SearchError> {
    let type_name = resource.type_def().name;
    let parsed = query::parse(context.registry, &[type_name], params, false)?;
    let Some((_, criteria)) = parsed.per_type.first() else {
        return Ok(false);
    };
    let clauses = query::resolve(tx, context, type_name, criteria).await?;
    let entries = context.registry.extract(resource, context.base_url);
    let id = resource.id().unwrap_or_default();
    Ok(clauses.iter().all(|clause| match clause {
        query::Clause::Ids(ids) => ids.contains(id),
        clause => clause.matches_entries(&entries) && clause.matches_resource(context, resource),
    }))
}

#[cfg(test)]
mod tests {
    use super::{row_number, row_text, Rows};
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn row_numbers_sort_as_text_as_they_do_as_numbers_and_read_back() {
        let numbers = [
            1u64,
            9,
            10,
            35,
            36,
            37,
            1295,
            1296,
            46_655,
            46_656,
            1 << 40,
            u64::MAX,
        ];
        for pair in numbers.windows(2) {
            assert!(row_text(pair[0]) < row_text(pair[1]), "{pair:?}");
        }
        for number in numbers {
            assert_eq!(row_number(&row_text(number)), Some(number));
        }
        // Text that is no row number of this layout.
        for text in ["", "a", "b1", "a!", "10", "zzz"] {
            assert_eq!(row_number(text), None, "{text}");
        }
        let rows = Rows::from_unsorted(vec![5, 3, 5, 1]);
        assert_eq!(rows.iter().collect::<Vec<_>>(), [1, 3, 5]);
        assert!(rows.contains_text(&row_text(3)) && !rows.contains_text(&row_text(4)));
        assert_eq!(
            rows.intersect(&Rows::from_unsorted(vec![3, 4, 5]))
                .iter()
                .collect::<Vec<_>>(),
            [3, 5]
        );
    }
}
