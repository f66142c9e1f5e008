// The package's TypeScript types: a consumer that uses them right compiles, one that misuses
// them does not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { ROOT, artifactPath } from "../lib/paths.js";

function typecheck(source) {
  // Inside the repository, so that "hearth-fhir" resolves through node_modules as for a user.
  const dir = mkdtempSync(artifactPath("types-"));
  writeFileSync(`${dir}/consumer.ts`, source);
  const run = spawnSync(
    `${ROOT}node_modules/.bin/tsc`,
    ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
     `${dir}/consumer.ts`],
    { encoding: "utf8", cwd: ROOT },
  );
  return { code: run.status, output: run.stdout + run.stderr };
}

test("a correct consumer type-checks against hearth-fhir", () => {
  const { code, output } = typecheck(`
    import { inspect, version, FhirError, type ResourceSummary, type OperationOutcome } from "hearth-fhir";
    const summary: ResourceSummary = inspect({ resourceType: "Patient", id: "a" });
    const type: string = summary.resourceType;
    const id: string | undefined = summary.id;
    const v: string = version();
    try { inspect("[]"); } catch (err) {
      if (err instanceof FhirError) {
        const outcome: OperationOutcome = err.outcome;
        const status: number = err.status;
        const diagnostics: string | undefined = outcome.issue[0]?.diagnostics;
        console.log(type, id, v, status, diagnostics);
      }
    }
  `);
  assert.equal(output, "");
  assert.equal(code, 0);
});

test("the R4 resource types describe resources exactly", () => {
  const { code, output } = typecheck(`
    import type { Patient, Observation, Bundle, Resource, ResourceType } from "hearth-fhir";
    const patient: Patient = {
      resourceType: "Patient",
      id: "p1",
      gender: "female",
      birthDate: "1970-01-01",
      _birthDate: { extension: [{ url: "http://example.org/precision", valueCode: "year" }] },
      name: [{ family: "Chalmers", given: ["Peter", "James"], _given: [null, { id: "g2" }] }],
    };
    const observation: Observation = {
      resourceType: "Observation",
      status: "final",
      code: { coding: [{ system: "http://loinc.org", code: "29463-7" }] },
      valueQuantity: { value: 72.5, unit: "kg" },
      subject: { reference: "Patient/p1" },
    };
    const bundle: Bundle<Observation> = { resourceType: "Bundle", type: "searchset", entry: [{ resource: observation }] };
    const first: Observation | undefined = bundle.entry?.[0]?.resource;
    const any: Resource[] = [patient, observation, bundle];
    const type: ResourceType = any[0].resourceType;
    console.log(first, type);
  `);
  assert.equal(output, "");
  assert.equal(code, 0);
});

test("resources that break the R4 types are type errors", () => {
  const { code, output } = typecheck(`
    import type { Patient, Observation } from "hearth-fhir";
    const patient: Patient = { resourceType: "Patient", gender: "mal" };
    const observation: Observation = { resourceType: "Observation", code: { text: "x" } };
    const wrongName: Patient = { resourceType: "Patient", nickname: "Pete" };
    console.log(patient, observation, wrongName);
  `);
  assert.notEqual(code, 0);
  assert.match(output, /consumer\.ts\(3,[0-9]+\): error TS2(322|820): Type '"mal"'/); // not an AdministrativeGender code
  assert.match(output, /consumer\.ts\(4,[0-9]+\): error TS2741: Property 'status' is missing/); // status is 1..1
  assert.match(output, /consumer\.ts\(5,[0-9]+\): error TS2353: Object literal may only specify known properties/);
});

test("misuse of the API is a type error", () => {
  const { code, output } = typecheck(`
    import { inspect } from "hearth-fhir";
    const n: number = inspect(42).resourceType;
  `);
  assert.notEqual(code, 0);
  assert.match(output, /TS2345/); // 42 is not a FhirInput
  assert.match(output, /TS2322/); // resourceType is a string
});

test("FhirStore is typed with the R4 resources end to end", () => {
  const ok = typecheck(`
    import { FhirStore, type Patient, type Bundle } from "hearth-fhir";
    import { serveFhir } from "hearth-fhir/service-worker";
    async function main() {
      const store = await FhirStore.open({ memory: true, validation: true });
      const created = await store.create({ resourceType: "Patient", gender: "female" } satisfies Patient);
      const id: string = created.id;
      const read: Patient = await store.read("Patient", id);
      const version: string = read.meta?.versionId ?? "";
      const updated = await store.update({ ...read, id, active: true }, { ifMatch: version });
      const bundle: Bundle = await store.search("Patient", { family: "chalmers", _count: 10 });
      const results: unknown[] = await store.evaluate("Patient.name.family", { type: "Patient", id });
      const progress = await store.import([{ resourceType: "Organization", name: "Acme" }], { onProgress: (p) => console.log(p.resources) });
      const off = store.on("change", (change) => console.log(change.method, change.resourceType, change.remote));
      const response: Response = await store.fetch("Patient?_count=1");
      off();
      console.log(updated.meta.versionId, bundle.total, results, progress.bundles, response.status);
      const worker: Promise<FhirStore> = serveFhir({ prefix: "/fhir", name: "app" }).store;
      console.log(worker);
      const summary = await store.sync({ remote: "https://example.org/fhir", scope: { types: ["Patient"] }, accessToken: async () => "token", onProgress: (p) => console.log(p.phase, p.done, p.total) });
      const pushed: number = summary.pushed;
      const conflicts = await store.conflicts();
      const family: string | undefined = (conflicts[0]?.local as Patient | null)?.name?.[0]?.family;
      const resolved: boolean = await store.resolve("Patient/1", "local");
      store.on("conflict", (conflict) => console.log(conflict.paths.join(), conflict.remoteVersion));
      const running = store.startSync({ remote: "https://example.org/fhir", scope: { patient: "1" }, interval: 30_000 });
      running.stop();
      console.log(pushed, family, resolved);
    }
    main();
  `);
  assert.equal(ok.output, "");
  assert.equal(ok.code, 0);
  const bad = typecheck(`
    import { FhirStore } from "hearth-fhir";
    async function main() {
      const store = await FhirStore.open({ memory: true });
      await store.read("Patientt", "x");
      await store.create({ resourceType: "Patient", gender: "mal" });
      store.on("changed", () => {});
      await store.sync({ remote: "https://example.org/fhir", scope: { types: ["Patientt"] } });
    }
    main();
  `);
  assert.notEqual(bad.code, 0);
  assert.match(bad.output, /consumer\.ts\(5,[0-9]+\): error TS2345: Argument of type '"Patientt"'/);
  assert.match(bad.output, /consumer\.ts\(6,[0-9]+\): error TS2(322|820): Type '"mal"'/);
  assert.match(bad.output, /consumer\.ts\(7,[0-9]+\): error TS(2345|2769)/);
  assert.match(bad.output, /consumer\.ts\(8,[0-9]+\): error TS2(322|820): Type '"Patientt"'/);
});

test("hearth-fhir/cloudflare type-checks in a Workers project (@cloudflare/workers-types)", () => {
  const dir = mkdtempSync(artifactPath("types-cf-"));
  writeFileSync(`${dir}/worker.ts`, `
    import router, { FhirDurableObject, durableObjectStore, type HearthEnv } from "hearth-fhir/cloudflare";
    export { FhirDurableObject };
    export class Logged extends FhirDurableObject {
      makeStore(storage: DurableObjectStorage) {
        const store = durableObjectStore(storage);
        return { ...store, commit(writes: [Uint8Array, Uint8Array | undefined][]) { console.log(writes.length); store.commit(writes); } };
      }
    }
    export default {
      fetch(request: Request, env: HearthEnv, ctx: ExecutionContext): Promise<Response> {
        return router.fetch!(request as Request<unknown, IncomingRequestCfProperties>, env, ctx) as Promise<Response>;
      },
    } satisfies ExportedHandler<HearthEnv>;
  `);
  const run = spawnSync(
    `${ROOT}node_modules/.bin/tsc`,
    ["--noEmit", "--strict", "--module", "esnext", "--moduleResolution", "bundler", "--target", "es2022", "--lib", "es2022",
     "--types", "@cloudflare/workers-types", "--customConditions", "workerd", `${dir}/worker.ts`],
    { encoding: "utf8", cwd: ROOT },
  );
  assert.equal(run.stdout + run.stderr, "");
  assert.equal(run.status, 0);
});
