// Loads the FHIR R4 (4.0.1) definitions from the npm package hl7.fhir.r4.examples and turns
// them into one plain description of the type system, value sets and search parameters, which
// the Rust and TypeScript writers then print.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";

const require = createRequire(import.meta.url);
export const PACKAGE_DIR = dirname(require.resolve("hl7.fhir.r4.examples/package.json"));

function bundle(name) {
  const text = readFileSync(`${PACKAGE_DIR}/${name}`, "utf8");
  return JSON.parse(text).entry.map((entry) => entry.resource);
}

const SD_PREFIX = "http://hl7.org/fhir/StructureDefinition/";
const FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";
const REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex";
const SYSTEM_TYPES = {
  "http://hl7.org/fhirpath/System.String": "string",
  "http://hl7.org/fhirpath/System.Boolean": "boolean",
  "http://hl7.org/fhirpath/System.Integer": "integer",
  "http://hl7.org/fhirpath/System.Decimal": "decimal",
  "http://hl7.org/fhirpath/System.Date": "date",
  "http://hl7.org/fhirpath/System.DateTime": "dateTime",
  "http://hl7.org/fhirpath/System.Time": "time",
};
const JSON_KINDS = { boolean: "Boolean", integer: "Integer", positiveInt: "Integer", unsignedInt: "Integer", decimal: "Decimal" };

const stripVersion = (url) => url.split("|")[0];
const extValue = (holder, url) => holder?.extension?.find((ext) => ext.url === url);

/**
 * A constraint's FHIRPath, with the corrections of known errata of 4.0.1.
 *
 * que-12: the human text (and R4B, R5) require enableBehavior with "more than one" enableWhen,
 * but the 4.0.1 expression counts "more than two".
 */
function correctedExpression(constraint) {
  const expression = constraint.expression ?? "";
  if (constraint.key === "que-12" && expression === "enableWhen.count() > 2 implies enableBehavior.exists()") {
    return "enableWhen.count() > 1 implies enableBehavior.exists()";
  }
  return expression;
}

/** The whole model: { types, constraints, valueSets, codeSystems, searchParams }. */
export function loadModel() {
  const typeSds = bundle("Bundle-types.json").filter((res) => res.resourceType === "StructureDefinition");
  const resourceSds = bundle("Bundle-resources.json").filter((res) => res.resourceType === "StructureDefinition");
  // Data type profiles (SimpleQuantity, MoneyQuantity) are constraints, not types; logical
  // models (MetadataResource) have no instances.
  const sds = [...typeSds, ...resourceSds].filter(
    (sd) => sd.derivation !== "constraint" && sd.kind !== "logical",
  );
  const byKind = (kind) => sds.filter((sd) => sd.kind === kind).sort((a, b) => (a.id < b.id ? -1 : 1));
  const ordered = [...byKind("primitive-type"), ...byKind("complex-type"), ...byKind("resource")];

  const types = [];
  const typeIndex = new Map();
  const addType = (type) => {
    type.id = types.length;
    types.push(type);
    typeIndex.set(type.name, type.id);
    return type;
  };

  // Pass 1: every named type, then every backbone element (an element with children).
  const pending = [];
  for (const sd of ordered) {
    const kind = { "primitive-type": "Primitive", "complex-type": "Complex", resource: "Resource" }[sd.kind];
    const type = addType({ name: sd.id, kind, isAbstract: !!sd.abstract, sd, base: sd.baseDefinition });
    pending.push(type);
  }
  const backboneParents = [];
  for (const type of pending) {
    const elements = type.sd.snapshot.element;
    const paths = new Set(elements.map((el) => el.path));
    for (const el of elements.slice(1)) {
      if (type.kind === "Primitive") continue;
      const hasChildren = elements.some((other) => other.path.startsWith(el.path + "."));
      if (hasChildren && !el.contentReference) backboneParents.push({ el, owner: type });
    }
    type.paths = paths;
  }
  backboneParents.sort((a, b) => (a.el.path < b.el.path ? -1 : 1));
  for (const { el, owner } of backboneParents) {
    addType({ name: el.path, kind: "Backbone", isAbstract: false, sd: owner.sd, root: el, base: null });
  }

  // Pass 2: elements of each type.
  const constraintIndex = new Map();
  const constraints = [];
  const constraintIds = (list) =>
    (list ?? []).map((c) => {
      const key = JSON.stringify([c.key, c.severity, c.human, c.expression]);
      if (!constraintIndex.has(key)) {
        constraintIndex.set(key, constraints.length);
        constraints.push({ key: c.key, severity: c.severity, human: c.human, expression: correctedExpression(c) });
      }
      return constraintIndex.get(key);
    });

  const boundValueSets = new Set();
  for (const type of types) {
    const all = type.sd.snapshot.element;
    const rootPath = type.kind === "Backbone" ? type.name : all[0].path;
    const root = type.kind === "Backbone" ? type.root : all[0];
    type.base = type.base ? typeIndex.get(type.base.replace(SD_PREFIX, "")) ?? null : null;
    type.constraints = constraintIds(root.constraint);
    type.elements = [];
    if (type.kind === "Primitive") {
      const valueEl = all.find((el) => el.path === `${rootPath}.value`);
      const valueType = valueEl?.type?.[0];
      type.primitive = {
        json: JSON_KINDS[type.name] ?? "String",
        regex: extValue(valueType, REGEX_EXT)?.valueString ?? null,
      };
    }
    for (const el of all) {
      const parent = el.path.slice(0, el.path.lastIndexOf("."));
      if (parent !== rootPath) continue;
      if (type.kind === "Primitive" && el.path === `${rootPath}.value`) continue;
      const rawName = el.path.slice(rootPath.length + 1);
      const choice = rawName.endsWith("[x]");
      const name = choice ? rawName.slice(0, -3) : rawName;
      const flags = [];
      if (choice) flags.push("CHOICE");
      if (el.isModifier) flags.push("MODIFIER");
      if (el.isSummary) flags.push("SUMMARY");
      let elementTypes;
      if (el.contentReference) {
        const target = el.contentReference.replace(/^#/, "");
        if (!typeIndex.has(target)) throw new Error(`${el.path}: unknown contentReference ${el.contentReference}`);
        flags.push("CONTENT_REFERENCE");
        elementTypes = [{ typeId: typeIndex.get(target), typeName: target, targets: [], profiles: [] }];
      } else if (typeIndex.has(el.path) && types[typeIndex.get(el.path)].kind === "Backbone") {
        elementTypes = [{ typeId: typeIndex.get(el.path), typeName: el.path, targets: [], profiles: [] }];
      } else {
        elementTypes = (el.type ?? []).map((t) => {
          let code = t.code;
          if (type.kind === "Resource" && el.path === `${rootPath}.id`) {
            // Correction: the 4.0.1 snapshots type Resource.id as System.String with fhir-type
            // "string", but the specification defines it as an \`id\` (R4 §2.36 Resource.id), so
            // its value must match the id pattern. Like Element.id (a System type), it carries no
            // extensions.
            code = "id";
            if (!flags.includes("NO_EXTENSIONS")) flags.push("NO_EXTENSIONS");
          } else if (SYSTEM_TYPES[code]) {
            code = extValue(t, FHIR_TYPE_EXT)?.valueUrl ?? SYSTEM_TYPES[code];
            if (!flags.includes("NO_EXTENSIONS")) flags.push("NO_EXTENSIONS");
          }
          if (!typeIndex.has(code)) throw new Error(`${el.path}: unknown type ${code}`);
          const short = (url) => (url.startsWith(SD_PREFIX) && typeIndex.has(url.slice(SD_PREFIX.length)) ? url.slice(SD_PREFIX.length) : url);
          return {
            typeId: typeIndex.get(code),
            typeName: code,
            targets: (t.targetProfile ?? []).map(short),
            profiles: t.profile ?? [],
          };
        });
      }
      if (elementTypes.length === 0) throw new Error(`${el.path}: no type`);
      let binding = null;
      if (el.binding?.valueSet) {
        binding = { strength: el.binding.strength, valueSet: stripVersion(el.binding.valueSet) };
        if (binding.strength === "required") boundValueSets.add(binding.valueSet);
      }
      type.elements.push({
        name,
        path: el.path,
        min: el.min ?? 0,
        max: el.max === "*" ? "MANY" : Number(el.max ?? 1),
        types: elementTypes,
        flags,
        binding,
        constraints: constraintIds(el.constraint),
        short: el.short ?? "",
      });
    }
    type.jsonNames = [];
    type.elements.forEach((element, elementIdx) => {
      if (element.flags.includes("CHOICE")) {
        element.types.forEach((t, choiceIdx) => {
          const suffix = t.typeName[0].toUpperCase() + t.typeName.slice(1);
          type.jsonNames.push({ name: element.name + suffix, element: elementIdx, choice: choiceIdx });
        });
      } else {
        type.jsonNames.push({ name: element.name, element: elementIdx, choice: 0 });
      }
    });
    type.jsonNames.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (let i = 1; i < type.jsonNames.length; i += 1) {
      if (type.jsonNames[i].name === type.jsonNames[i - 1].name) throw new Error(`${type.name}: duplicate JSON name ${type.jsonNames[i].name}`);
    }
  }

  const { valueSets, codeSystems } = expandValueSets(boundValueSets);
  const valueSetIndex = new Map(valueSets.map((vs, idx) => [vs.url, idx]));
  for (const type of types) {
    for (const element of type.elements) {
      if (element.binding) element.binding.valueSetIdx = valueSetIndex.get(element.binding.valueSet) ?? null;
    }
  }
  return { types, constraints, valueSets, codeSystems, searchParams: loadSearchParams() };
}

/** Expands each bound value set from the core value sets and code systems, when it can. */
function expandValueSets(urls) {
  const valueSetsByUrl = new Map();
  const codeSystemsByUrl = new Map();
  for (const name of ["Bundle-valuesets.json", "Bundle-v3-valuesets.json", "Bundle-v2-valuesets.json"]) {
    for (const res of bundle(name)) {
      if (res.resourceType === "ValueSet" && !valueSetsByUrl.has(res.url)) valueSetsByUrl.set(res.url, res);
      if (res.resourceType === "CodeSystem" && !codeSystemsByUrl.has(res.url)) codeSystemsByUrl.set(res.url, res);
    }
  }

  const allConcepts = (concepts, out = []) => {
    for (const concept of concepts ?? []) {
      out.push(concept);
      allConcepts(concept.concept, out);
    }
    return out;
  };
  const descendants = (concepts, code) => {
    for (const concept of allConcepts(concepts)) if (concept.code === code) return allConcepts(concept.concept);
    return null;
  };

  // Returns a Set of "system|code", or null when the value set cannot be expanded here.
  const expand = (url, seen) => {
    const vs = valueSetsByUrl.get(url);
    if (!vs || seen.has(url) || !vs.compose) return null;
    seen = new Set([...seen, url]);
    const part = (include) => {
      let res = null;
      if (include.system) {
        const cs = codeSystemsByUrl.get(include.system);
        if (include.concept) {
          res = new Set(include.concept.map((c) => `${include.system}|${c.code}`));
        } else {
          if (!cs || cs.content !== "complete") return null;
          let concepts = allConcepts(cs.concept);
          for (const filter of include.filter ?? []) {
            if (filter.property !== "concept" || !["is-a", "descendent-of"].includes(filter.op)) return null;
            const below = descendants(cs.concept, filter.value);
            if (below === null) return null;
            const keep = new Set(below.map((c) => c.code));
            if (filter.op === "is-a") keep.add(filter.value);
            concepts = concepts.filter((c) => keep.has(c.code));
          }
          res = new Set(concepts.map((c) => `${include.system}|${c.code}`));
        }
      }
      for (const imported of include.valueSet ?? []) {
        const codes = expand(stripVersion(imported), seen);
        if (codes === null) return null;
        res = res === null ? codes : new Set([...res].filter((code) => codes.has(code)));
      }
      return res ?? new Set();
    };
    const codes = new Set();
    for (const include of vs.compose.include ?? []) {
      const got = part(include);
      if (got === null) return null;
      for (const code of got) codes.add(code);
    }
    for (const exclude of vs.compose.exclude ?? []) {
      const got = part(exclude);
      if (got === null) return null;
      for (const code of got) codes.delete(code);
    }
    return codes;
  };

  const systems = new Map();
  const valueSets = [...urls].sort().map((url) => {
    const expanded = expand(url, new Set());
    const codes =
      expanded === null
        ? null
        : [...expanded]
            .map((entry) => {
              const cut = entry.lastIndexOf("|");
              return [entry.slice(0, cut), entry.slice(cut + 1)];
            })
            .map(([system, code]) => {
              if (!systems.has(system)) systems.set(system, systems.size);
              return [systems.get(system), code];
            })
            .sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    return { url, name: valueSetsByUrl.get(url)?.name ?? "", codes };
  });
  return { valueSets, codeSystems: [...systems.keys()] };
}

function loadSearchParams() {
  return bundle("Bundle-searchParams.json")
    .map((sp) => ({
      url: sp.url,
      name: sp.name,
      code: sp.code,
      type: sp.type,
      base: sp.base ?? [],
      expression: sp.expression ?? null,
      target: sp.target ?? [],
      modifier: sp.modifier ?? [],
      comparator: sp.comparator ?? [],
      components: (sp.component ?? []).map((c) => [c.definition, c.expression]),
    }))
    .sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
}

/**
 * The core extension definitions: URL, the element contexts where each may be used, and the
 * types of its value (none for an extension made of sub-extensions).
 */
export function loadExtensions(typeIndex) {
  return bundle("Bundle-extensions.json")
    .filter((res) => res.resourceType === "StructureDefinition" && res.type === "Extension")
    .map((sd) => {
      const value = sd.snapshot.element.find((el) => el.path === "Extension.value[x]");
      const valueTypes = value && value.max !== "0" ? (value.type ?? []).map((t) => t.code) : [];
      for (const code of valueTypes) if (!typeIndex.has(code)) throw new Error(`${sd.url}: unknown value type ${code}`);
      const contexts = (sd.context ?? []).map((context) => {
        if (context.type !== "element") throw new Error(`${sd.url}: context of type ${context.type}`);
        return context.expression;
      });
      // Correction: 4.0.1 gives structuredefinition-fhir-type the context
      // ElementDefinition.type.code, but its own snapshots put it on ElementDefinition.type
      // (Resource.id, Element.id and every primitive's value), as later versions allow.
      if (sd.url === FHIR_TYPE_EXT && !contexts.includes("ElementDefinition.type")) contexts.push("ElementDefinition.type");
      const name = sd.url.startsWith(SD_PREFIX) ? sd.url.slice(SD_PREFIX.length) : sd.url;
      return { name, contexts, valueTypes: valueTypes.map((code) => typeIndex.get(code)) };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The vital signs profiles of R4 (observation-vitalsigns.html), with the value sets they bind. */
const VITAL_SIGNS = ["vitalsigns", "bodytemp", "bodyheight", "bodyweight", "bmi", "heartrate", "resprate", "oxygensat", "bp", "headcircum", "vitalspanel"];

/**
 * The vital signs profiles reduced to what validation reads from a differential, as one FHIR
 * JSON Bundle together with the value sets of their required bindings; and the LOINC code that
 * each specific profile fixes for Observation.code.
 */
export function loadVitalSigns() {
  const read = (name) => JSON.parse(readFileSync(`${PACKAGE_DIR}/${name}`, "utf8"));
  const kept = (el) => {
    const res = {};
    for (const [key, value] of Object.entries(el)) {
      const wanted = ["id", "path", "sliceName", "slicing", "min", "max", "type", "binding", "constraint"].includes(key) ||
        /^(fixed|pattern|minValue|maxValue)[A-Z]/.test(key);
      if (wanted) res[key] = value;
    }
    if (res.slicing) res.slicing = { discriminator: res.slicing.discriminator, rules: res.slicing.rules };
    if (res.binding) res.binding = { strength: res.binding.strength, valueSet: res.binding.valueSet };
    // Left out: vitalsigns binds the whole Observation.component.value[x] to the common
    // vital signs units, which would refuse coded component values and the units of
    // components that are not vital signs themselves (inhaled oxygen flow in L/min beside an
    // oxygen saturation). The specific profiles bind valueQuantity.code to their units.
    if (res.binding && el.path.endsWith(".value[x]")) delete res.binding;
    if (res.constraint) res.constraint = res.constraint.map((c) => ({ key: c.key, severity: c.severity, human: c.human, expression: c.expression }));
    if (res.type) res.type = res.type.map((t) => Object.fromEntries(Object.entries(t).filter(([key]) => ["code", "profile", "targetProfile"].includes(key))));
    return res;
  };
  const entries = [];
  const valueSets = new Set();
  const codes = [];
  for (const id of VITAL_SIGNS) {
    const sd = read(`StructureDefinition-${id}.json`);
    const elements = sd.differential.element.map(kept);
    for (const el of elements) {
      if (el.binding?.strength === "required") valueSets.add(stripVersion(el.binding.valueSet));
      if (el.path === "Observation.code.coding.code" && el.fixedCode) codes.push([el.fixedCode, sd.url]);
    }
    entries.push({
      resource: {
        resourceType: "StructureDefinition",
        url: sd.url,
        name: sd.name,
        status: sd.status,
        kind: sd.kind,
        abstract: sd.abstract,
        type: sd.type,
        baseDefinition: sd.baseDefinition,
        derivation: sd.derivation,
        differential: { element: elements },
      },
    });
  }
  const allValueSets = new Map(bundle("Bundle-valuesets.json").filter((res) => res.resourceType === "ValueSet").map((vs) => [vs.url, vs]));
  for (const url of [...valueSets].sort()) {
    const vs = allValueSets.get(url);
    if (!vs) throw new Error(`vital signs: value set ${url} not found`);
    // Only value sets the generated tables do not carry, enumerated in full.
    const include = vs.compose?.include ?? [];
    if (include.some((part) => !part.concept || part.filter || part.valueSet)) continue;
    entries.push({
      resource: {
        resourceType: "ValueSet",
        url: vs.url,
        status: vs.status,
        compose: { include: include.map((part) => ({ system: part.system, concept: part.concept.map((c) => ({ code: c.code })) })) },
      },
    });
  }
  codes.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { bundle: JSON.stringify({ resourceType: "Bundle", type: "collection", entry: entries }), codes };
}

/** The compartments (R4 §3.1.1.2.2): for each, the resource types in it and the search
 * parameters that link them to the compartment's focus. */
export function loadCompartments() {
  return ["patient", "encounter", "relatedPerson", "practitioner", "device"].map((name) => {
    const definition = JSON.parse(readFileSync(`${PACKAGE_DIR}/CompartmentDefinition-${name}.json`, "utf8"));
    return {
      code: definition.code,
      resources: definition.resource
        .filter((entry) => (entry.param ?? []).length > 0)
        .map((entry) => ({ code: entry.code, params: entry.param }))
        .sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0)),
    };
  });
}
