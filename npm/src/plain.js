// Plain JS objects read by the FHIR JSON rules without the engine, where JS can answer
// alone: plain paths to primitive values followed on the object (routes), and whole resources
// checked as the engine reads them (by its table of each type's properties). Each answers
// only where it is sure to give what the engine gives; anything else is left to it.

import * as wasm from "../dist/wasm/hearth.js";

const { propertyIsEnumerable } = Object.prototype;

/** JSON.stringify writes nothing for these in an object, and `null` in an array. */
export function invisible(value) {
  return value === undefined || typeof value === "function" || typeof value === "symbol";
}

/**
 * True for an array or object JSON.stringify writes as it stands: its own prototype, no
 * `toJSON`. Anything else (class instances, Dates, arrays with `toJSON`) is read whole.
 */
export function plainData(value) {
  const proto = Object.getPrototypeOf(value);
  const plain = Array.isArray(value) ? proto === Array.prototype : proto === Object.prototype || proto === null;
  return plain && typeof value.toJSON !== "function";
}

/** True for an object (not an array) JSON.stringify writes as it stands (see {@link plainData}). */
function plainObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value) && plainData(value);
}

/**
 * A route (see `projectionRoute` in the engine): the properties a plain path follows to
 * primitive values, whether each holds an array, the other properties of each object on the
 * way that are checked, not followed (`guards`), how the values at its end are written
 * (`s`, `b`, `d`, or `i`, `p`, `u` for integers; `o` objects, only counted), and what they
 * come to when the path ends in `count()` (`c`), `exists()` (`e`), `empty()` (`n`) or
 * `first()` (`f`); `filters` keep only the values of a step whose string element `name` is
 * `text` (`where(name = 'text')`). Values of kind `r` are resources: those of `type` when it
 * is given (`ofType()`), each read whole (`whole`) unless only counted; `depth` is their
 * nesting in the resource the route starts at.
 * @typedef {{ keys: string[], many: boolean[], guards: (Guard[] | undefined)[], filters: ({ name: string, text: string } | undefined)[], kind: string, type?: string, whole: boolean, depth: number, ending?: string, companion: string }} Route
 * @typedef {{ name: string, kind: string, choice: boolean }} Guard
 */

/** Reads the engine's `valueQuantity{valueString:=s,...}.value{code:s,...}:d` into a {@link Route}. */
export function parseRoute(text) {
  const colon = text.lastIndexOf(":");
  const [written, ending] = text.slice(colon + 1).split("#");
  // `r@Observation`: resources of one type.
  const [kind, type] = written.split("@");
  const keys = [];
  const many = [];
  const guards = [];
  const filters = [];
  for (let step of text.slice(0, colon).split(".")) {
    // `?name=text` at the end (percent-encoded): only values whose `name` is `text` go on.
    const question = step.indexOf("?");
    const equals = step.indexOf("=", question);
    filters.push(question < 0 ? undefined : { name: step.slice(question + 1, equals), text: decodeURIComponent(step.slice(equals + 1)) });
    if (question >= 0) step = step.slice(0, question);
    const brace = step.indexOf("{");
    const head = brace < 0 ? step : step.slice(0, brace);
    many.push(head.endsWith("+"));
    keys.push(head.endsWith("+") ? head.slice(0, -1) : head);
    guards.push(
      brace < 0
        ? undefined
        : step
            .slice(brace + 1, -1)
            .split(",")
            .map((guard) => {
              const [name, spec] = guard.split(":");
              return { name, kind: spec.replace("=", ""), choice: spec.startsWith("=") };
            }),
    );
  }
  const depth = keys.length + many.filter(Boolean).length;
  const whole = ending === undefined || ending === "f";
  return { keys, many, guards, filters, kind, type, whole, depth, ending, companion: `_${keys[keys.length - 1]}` };
}

/**
 * What a route may visit: one for each object and value, and one for every 64 UTF-16 units
 * of its strings (so that what it takes stays far below the engine's 64 MiB input limit);
 * past it, the engine reads the projection.
 */
const ROUTE_BUDGET = 100_000;

/**
 * Follows `route` on a plain object: its values, in order, when every property on the way is
 * what the engine reads without error from the object's projection (the same properties, see
 * `projectionRoute`), and `undefined` for anything else (a `_name` companion, `null`, an empty
 * object or array, a wrong JSON type, what JSON.stringify writes otherwise), which the engine
 * then reads. Resources among the values are the object's own.
 * @param {object} resource
 * @param {Route} route
 */
export function followRoute(resource, route) {
  if (Array.isArray(resource) || !plainData(resource) || !propertyIsEnumerable.call(resource, "resourceType")) return undefined;
  const results = [];
  // A getter of the object may check another resource before this one is done.
  const budgetBefore = budget;
  if (route.kind === "r" && route.whole) startChecks();
  let left;
  try {
    left = routeStep(resource, route, 0, results, ROUTE_BUDGET);
  } finally {
    budget = budgetBefore;
  }
  return left < 0 ? undefined : ended(results, route);
}

/**
 * Follows `route` on the JSON of a resource the engine holds, as frozen objects (see
 * `FhirResource`): the JSON the engine writes keeps the rules, so nothing on the way is
 * checked. A value at the end with a `_name` companion (which may stand for a value not
 * there) is still left to the engine (`undefined`).
 * @param {object} json
 * @param {Route} route
 */
export function followHeld(json, route) {
  const results = [];
  return heldStep(json, route, 0, results) ? ended(results, route) : undefined;
}

function heldStep(object, route, at, results) {
  const last = at === route.keys.length - 1;
  if (last && object[route.companion] !== undefined) return false;
  const value = object[route.keys[at]];
  if (value === undefined) return true;
  if (!route.many[at]) return heldItem(value, route, at, last, results);
  for (let idx = 0; idx < value.length; idx++) if (!heldItem(value[idx], route, at, last, results)) return false;
  return true;
}

function heldItem(value, route, at, last, results) {
  const filter = route.filters[at];
  // (A filter's string with a companion compares by its value, or is not there.)
  if (filter !== undefined && value[filter.name] !== filter.text) results = null;
  if (!last) return heldStep(value, route, at + 1, results);
  if (route.kind === "r") {
    if (route.type === undefined || value.resourceType === route.type) results?.push(value);
  } else {
    results?.push(route.kind === "o" ? true : value);
  }
  return true;
}

/** What the values a route found come to, by its ending. */
function ended(results, route) {
  switch (route.ending) {
    case "c":
      return [results.length];
    case "e":
      return [results.length > 0];
    case "n":
      return [results.length === 0];
    case "f":
      return results.length > 0 ? [results[0]] : results;
    default:
      return results;
  }
}

/** True when `object` has property `key` as JSON.stringify writes it: own, enumerable, visible. */
function holds(object, key) {
  return !invisible(object[key]) && propertyIsEnumerable.call(object, key);
}

/**
 * 1 when JSON.stringify writes at least one member of `object`, 0 when it writes none (an
 * empty object, which breaks the rules), -1 when that cannot be told without writing it (a
 * value with `toJSON` may write nothing, a BigInt throws).
 */
export function members(object) {
  for (const key of Object.keys(object)) {
    const value = object[key];
    if (invisible(value)) continue;
    if (typeof value === "bigint" || (typeof value === "object" && value !== null && !plainData(value))) return -1;
    return 1;
  }
  return 0;
}

/**
 * Follows `route` from step `at` in `object` (a plain object), adding the values found to
 * `results`: what is left of `budget`, or -1 when the engine must read instead.
 */
function routeStep(object, route, at, results, budget) {
  const key = route.keys[at];
  const last = at === route.keys.length - 1;
  // A companion holds extensions (and perhaps stands for a missing value): the engine's.
  if (last && !invisible(object[route.companion])) return -1;
  const guards = route.guards[at];
  if (guards !== undefined) {
    const used = guarded(object, key, guards);
    if (used < 0 || (budget -= used) < 0) return -1;
  }
  if (!holds(object, key)) {
    // Not there: an object JSON writes nothing of is an empty object, which breaks the rules.
    return members(object) === 1 ? budget : -1;
  }
  const value = object[key];
  if (route.many[at]) {
    if (!Array.isArray(value) || !plainData(value) || value.length === 0) return -1;
    for (let idx = 0; idx < value.length && budget >= 0; idx++) budget = routeItem(value[idx], route, at, last, results, budget - 1);
    return budget;
  }
  return routeItem(value, route, at, last, results, budget - 1);
}

/**
 * What checking the other properties the projection reads in `object` (beside `key`,
 * followed) takes of the budget (see {@link ROUTE_BUDGET}), or -1 unless they keep the
 * rules: each written as its kind says, no companion, no second type of the choice element
 * followed.
 * @param {Guard[]} guards
 */
function guarded(object, key, guards) {
  let types = 0;
  let used = 0;
  for (let idx = 0; idx < guards.length; idx++) {
    const { name, kind, choice } = guards[idx];
    if (!holds(object, name)) continue;
    if (kind === "x") return -1;
    const value = object[name];
    if (kind === "o") {
      if (!plainObject(value) || members(value) !== 1) return -1;
    } else if (!primitive(value, kind)) {
      return -1;
    }
    used += 1 + (typeof value === "string" ? value.length >> 6 : 0);
    if (choice) types += 1;
  }
  return types === 0 || (types === 1 && !holds(object, key)) ? used : -1;
}

/** True for a value the engine reads as a primitive written as `kind` says. */
function primitive(value, kind) {
  switch (kind) {
    case "s":
      return typeof value === "string" && fhirString(value);
    case "b":
      return typeof value === "boolean";
    case "d":
      return typeof value === "number" && Number.isFinite(value);
    case "p":
      return Number.isInteger(value) && value >= 1 && value <= 2147483647;
    case "u":
      return Number.isInteger(value) && value >= 0 && value <= 2147483647;
    case "i":
      return Number.isInteger(value) && value >= -2147483648 && value <= 2147483647;
    default:
      return false;
  }
}

/**
 * One value of step `at`: an object to go on in, or at the end a value to keep (`results`
 * `null` where a filter left it out: it is still checked, as the engine reads it).
 */
function routeItem(value, route, at, last, results, budget) {
  if (budget < 0) return -1;
  if (last && route.kind === "r") return resourceItem(value, route, results, budget);
  const filter = route.filters[at];
  if (!last || route.kind === "o" || filter !== undefined) {
    if (!plainObject(value)) return -1;
    if (filter !== undefined) {
      // `where(name = 'text')`: a string, compared as it is (and checked in values left out
      // too); no companion (the engine's).
      if (holds(value, `_${filter.name}`)) return -1;
      if (!holds(value, filter.name)) {
        results = null;
      } else {
        const text = value[filter.name];
        if (typeof text !== "string" || !fhirString(text) || (budget -= text.length >> 6) < 0) return -1;
        if (text !== filter.text) results = null;
      }
    }
  }
  if (!last) return routeStep(value, route, at + 1, results, budget);
  if (route.kind === "o") {
    // An object only counted: it must not be empty.
    if (members(value) !== 1) return -1;
    results?.push(true);
    return budget;
  }
  // -0 is written as 0: left to the engine, which gives 0.
  if (!primitive(value, route.kind) || Object.is(value, -0)) return -1;
  if (typeof value === "string" && (budget -= value.length >> 6) < 0) return -1;
  results?.push(value);
  return budget;
}

/**
 * A resource at the end of a route: kept when of the route's type (or any), after it is
 * checked as the engine reads it (whole, or only its `resourceType` when only counted);
 * others are read only for their `resourceType`, which must name a resource type.
 */
function resourceItem(value, route, results, budget) {
  if (!plainObject(value)) return -1;
  const type = value.resourceType;
  if (typeof type !== "string" || !propertyIsEnumerable.call(value, "resourceType") || (budget -= 1 + (type.length >> 6)) < 0) return -1;
  const kept = route.type === undefined || type === route.type;
  // The type read once (a getter might answer otherwise the next time).
  if (kept && route.whole ? !checkResource(value, route.depth, type) : tableOf(type)?.kind !== "R") return -1;
  if (kept) results?.push(value);
  return budget;
}

/** Characters a FHIR string may not hold, and surrogates (which must come in pairs). */
const SUSPECT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ud800-\udfff]/;

/**
 * True for a string the engine reads as a FHIR string: not empty, no control character but
 * tab, carriage return and line feed, no lone surrogate.
 */
function fhirString(text) {
  if (text.length === 0) return false;
  if (!SUSPECT.test(text)) return true;
  for (let idx = 0; idx < text.length; idx++) {
    const code = text.charCodeAt(idx);
    if (code < 0x20) {
      if (code !== 0x09 && code !== 0x0a && code !== 0x0d) return false;
    } else if (code >= 0xd800 && code <= 0xdfff) {
      const next = text.charCodeAt(idx + 1);
      if (code > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return false;
      idx++;
    }
  }
  return true;
}


/**
 * A type's JSON properties (see `jsonTable` in the engine): its kind (`R`, `A`, `C`, `P`)
 * and, by name, how each property is written: `kind` (`s`, `b`, `d`, `i`, `p`, `u`, `c`,
 * `r`, or `_` for a `_name` companion), `many` when it holds an array, its element, the
 * name of its type (and its table, once used), and `choice` when its element has several
 * names.
 * @typedef {{ kind: string, properties: Map<string, { kind: string, many: boolean, element: number, type: string, choice: boolean, table?: Table }> }} Table
 */

/** By type name, its {@link Table}: the model does not change, and its types are few. */
const tables = new Map();

/** The {@link Table} of type `name`; `undefined` for a name no type has (not kept). */
function tableOf(name) {
  let table = tables.get(name);
  if (table === undefined) {
    const text = wasm.jsonTable(name);
    if (text === undefined) return undefined;
    table = parseTable(text);
    tables.set(name, table);
  }
  return table;
}

function parseTable(text) {
  const [kind, ...entries] = text.split("|");
  const properties = new Map();
  const names = new Map();
  for (const entry of entries) {
    const [name, valueKind, array, element, type, companion] = entry.split(" ");
    const property = { kind: valueKind, many: array === "1", element: Number(element), type, choice: false, table: undefined };
    properties.set(name, property);
    names.set(property.element, (names.get(property.element) ?? 0) + 1);
    if (companion === "1") properties.set(`_${name}`, { ...property, kind: "_" });
  }
  for (const property of properties.values()) property.choice = names.get(property.element) > 1;
  return { kind, properties };
}

/**
 * Deepest nesting of objects and arrays a check follows, counted from the resource the
 * projection starts at (the engine reads 100); deeper objects are left to it.
 */
const CHECK_DEPTH = 90;
/**
 * What the checks of one projection may take, in bytes of its JSON at most: 64 for each value
 * (its name, or its place in an array, and punctuation), and 6 for each UTF-16 unit of a
 * string; past it (near the engine's 64 MiB input limit) the engine reads.
 */
const CHECK_BUDGET = 48 << 20;
let budget = CHECK_BUDGET;

/** Starts the checks of one projection (see {@link CHECK_BUDGET}). */
export function startChecks() {
  budget = CHECK_BUDGET;
}

/**
 * True when the engine would read `value`, a resource at nesting `depth`, without error by
 * the FHIR JSON rules (every property known, each written as its type is, no empty objects
 * or arrays, one type per choice element); false for what breaks them and for what the engine
 * is left to judge (`null` in arrays, arrays of companions, nesting past {@link CHECK_DEPTH},
 * anything JSON.stringify would write otherwise than it stands).
 */
export function checkResource(value, depth, type = value?.resourceType) {
  if (!plainObject(value)) return false;
  if (typeof type !== "string" || !propertyIsEnumerable.call(value, "resourceType")) return false;
  const table = tableOf(type);
  return table !== undefined && table.kind === "R" && checkObject(value, table, true, depth + 1);
}

function checkObject(object, table, isResource, depth) {
  if (depth > CHECK_DEPTH) return false;
  let empty = true;
  let choices;
  // Own enumerable string keys: those JSON.stringify writes.
  for (const key of Object.keys(object)) {
    const value = object[key];
    if (invisible(value)) continue;
    empty = false;
    if ((budget -= 64) < 0) return false;
    if (isResource && key === "resourceType") continue;
    const property = table.properties.get(key);
    if (property === undefined) return false;
    if (property.choice) {
      // One type for a choice element: `valueString` with `_valueString`, not `valueBoolean`.
      const name = property.kind === "_" ? key.slice(1) : key;
      choices ??= new Map();
      const known = choices.get(property.element);
      if (known === undefined) choices.set(property.element, name);
      else if (known !== name) return false;
    }
    if (!checkValue(value, property, depth + 1)) return false;
  }
  return !empty;
}

function checkValue(value, property, depth) {
  if (!property.many) return !Array.isArray(value) && checkItem(value, property, depth);
  // A companion array lines up with its values, `null` where one has none: the engine's.
  if (property.kind === "_" || !Array.isArray(value) || !plainData(value) || value.length === 0) return false;
  for (let idx = 0; idx < value.length; idx++) {
    if ((budget -= 64) < 0 || !checkItem(value[idx], property, depth + 1)) return false;
  }
  return true;
}

function checkItem(value, property, depth) {
  switch (property.kind) {
    case "s":
      // At most 6 bytes of JSON (`\uXXXX`) a UTF-16 unit, and the quotes.
      return primitive(value, "s") && (budget -= 6 * value.length + 2) >= 0;
    case "r":
      return checkResource(value, depth);
    case "c":
    case "_": {
      // An object of the property's type, or a companion of the primitive's.
      if (!plainObject(value)) return false;
      const table = (property.table ??= tableOf(property.type));
      return table !== undefined && checkObject(value, table, false, depth);
    }
    default:
      return primitive(value, property.kind);
  }
}
