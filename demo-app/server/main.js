// The demo's SMART authorization server: `node demo-app/server/main.js --port 8090 --fhir
// http://127.0.0.1:8080/fhir --app http://127.0.0.1:8787/ --corpus DIR`. Its users are the
// richest Synthea patients of the corpus (signed in by their first name, lower case) and a
// clinician; it prints them.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { startAuthServer } from "./auth.js";

/** The demo's users: patients from the corpus, and a clinician. */
export function demoUsers(corpus, count = 3) {
  const patients = [];
  let practitioner;
  if (existsSync(corpus)) {
    for (const file of readdirSync(corpus).filter((name) => name.endsWith(".json")).sort()) {
      const bundle = JSON.parse(readFileSync(`${corpus}/${file}`, "utf8"));
      const resources = (bundle.entry ?? []).map((entry) => entry.resource);
      const patient = resources.find((r) => r?.resourceType === "Patient");
      practitioner ??= resources.find((r) => r?.resourceType === "Practitioner");
      if (patient) patients.push({ patient, size: resources.length });
    }
  }
  patients.sort((a, b) => b.size - a.size || a.patient.id.localeCompare(b.patient.id));
  const users = {};
  for (const { patient } of patients) {
    if (Object.keys(users).length >= count) break;
    const name = patient.name?.[0] ?? {};
    const login = String(name.given?.[0] ?? "patient").normalize("NFD").split(" ")[0].replace(/[^A-Za-z]/g, "").toLowerCase();
    if (!login || users[login]) continue;
    const label = [name.given?.[0], name.family].filter(Boolean).join(" ").replace(/\d+/g, "");
    users[login] = { patient: patient.id, fhirUser: `Patient/${patient.id}`, label: `${label} (patient)` };
  }
  users.clinician = {
    fhirUser: practitioner ? `Practitioner/${practitioner.id}` : undefined,
    roles: ["clinician"],
    label: "a clinician (for SMART apps with user/ scopes; this app is for patients)",
  };
  return users;
}

/**
 * Points each patient user at the id the FHIR server gave the patient (Synthea bundles create
 * their resources by POST: the server assigns the ids; the bundle's id stays as an identifier).
 * `token` is a backend's access token. Waits for the server to answer, up to `waitMs`.
 */
export async function resolveDemoUsers(users, fhirBase, token, waitMs = 30_000) {
  const until = Date.now() + waitMs;
  for (const user of Object.values(users)) {
    if (user.patient === undefined) continue;
    for (;;) {
      try {
        const response = await fetch(`${fhirBase}/Patient?identifier=${encodeURIComponent(`https://github.com/synthetichealth/synthea|${user.corpusId ?? user.patient}`)}&_elements=id`, { headers: { authorization: `Bearer ${token}`, accept: "application/fhir+json" } });
        const bundle = await response.json();
        const id = bundle.entry?.[0]?.resource?.id;
        if (response.ok && id) {
          user.corpusId ??= user.patient;
          user.patient = id;
          user.fhirUser = `Patient/${id}`;
          break;
        }
        if (response.ok) throw new Error(`no patient ${user.corpusId ?? user.patient} on the server`);
      } catch (err) {
        if (/no patient/.test(err.message) || Date.now() > until) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []));
  const fhir = args.fhir ?? "http://127.0.0.1:8080/fhir";
  const users = demoUsers(args.corpus ?? "../shared/corpus/synthea");
  const auth = await startAuthServer({ port: Number(args.port ?? 8090), fhirBase: () => fhir, appRedirects: [args.app ?? "http://127.0.0.1:8787/"], users });
  await resolveDemoUsers(users, fhir, await auth.systemToken("system/*.rs"), 120_000);
  console.log(`[demo] SMART authorization server at ${auth.issuer}; sign in as one of:`);
  for (const [login, user] of Object.entries(users)) console.log(`[demo]   ${login.padEnd(10)} ${user.label}`);
  const stop = () => auth.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
