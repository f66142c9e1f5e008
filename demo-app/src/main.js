// The demo: a patient's health record kept on the device with hearth-fhir. Sign in with a
// SMART standalone launch (fhirclient), download the record into IndexedDB with a progress
// bar, read it offline, record entries offline (validated by Hearth before they are saved),
// sync them back, resolve conflicts, and see who read the record (the server's AuditEvents).
import FHIR from "fhirclient";
import { FhirStore, FhirError } from "hearth-fhir";
import { h, clear, when, codeText, quantityText, dateText, dateTimeText, humanName } from "./ui.js";
import { showTrends } from "./trends.js";
import { showAdd } from "./entries.js";
import "uplot/dist/uPlot.min.css";
import "./style.css";

const SESSION_KEY = "hearth-demo-session";
const STORE_NAME = "hearth-demo";
const main = document.querySelector("#main");
const nav = document.querySelector("#nav");
const statusLine = document.querySelector("#status");
const badge = document.querySelector("#sync-badge");

const app = {
  config: undefined,
  session: undefined,
  store: undefined,
  sync: undefined,
  lastSync: undefined,
  lastResult: undefined,
};

function loadSession() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY) ?? "null") ?? undefined;
  } catch {
    return undefined;
  }
}

function saveSession(session) {
  app.session = session;
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

/** The access token, while it is valid. */
function token() {
  const session = app.session;
  if (session === undefined || Date.now() > session.expiresAt) throw new Error("the sign-in has expired: sign in again to sync");
  return session.token;
}

function syncOptions() {
  return { remote: app.session.fhirBase, scope: { patient: app.session.patient }, accessToken: token, timeout: 20_000, maxAttempts: 2 };
}

// --- status and sync ---------------------------------------------------------------------

async function refreshStatus() {
  if (app.store === undefined) return;
  const online = navigator.onLine;
  const [pending, conflicts] = await Promise.all([app.store.pending({ remote: app.session.fhirBase }), app.store.conflicts({ remote: app.session.fhirBase })]);
  const last = app.lastSync ? `last synced ${dateTimeText(app.lastSync)}` : "not synced yet";
  const waiting = pending.length === 0 ? "" : ` · ${pending.length} change${pending.length === 1 ? "" : "s"} to send`;
  const text = `${online ? "Online" : "Offline"} · ${last}${waiting}`;
  if (statusLine.textContent !== text) statusLine.textContent = text;
  statusLine.dataset.online = String(online);
  badge.hidden = conflicts.length === 0;
  badge.textContent = conflicts.length === 0 ? "" : ` ${conflicts.length}`;
  badge.setAttribute("aria-label", `${conflicts.length} conflicts to resolve`);
  return { pending, conflicts };
}

function startSyncing() {
  app.sync?.stop();
  app.sync = app.store.startSync({
    ...syncOptions(),
    interval: 30_000,
    onSync: (result) => {
      if (!(result instanceof Error)) {
        app.lastResult = result;
        if (result.complete) {
          app.lastSync = new Date().toISOString();
          localStorage.setItem(`${SESSION_KEY}:last-sync`, app.lastSync);
        }
      } else {
        app.lastResult = { error: result.message };
      }
      refreshStatus();
      const editing = document.querySelector(".conflict textarea:not([hidden])");
      if (location.hash === "#/sync" && !editing) route();
    },
  });
}

// --- sign-in -----------------------------------------------------------------------------

function showSignIn(message) {
  nav.hidden = true;
  statusLine.textContent = "";
  clear(main).append(
    h("section", { class: "card signin", "aria-labelledby": "signin-title", "data-wide": "1" },
      h("h2", { id: "signin-title" }, "Your health record, on this device"),
      h("p", {}, "Sign in with your provider to copy your record here. You can then read it and add entries with no connection; they are sent when you are back online."),
      message ? h("p", { class: "error", role: "alert" }, message) : null,
      h("button", { type: "button", id: "sign-in", onclick: signIn }, "Sign in with my provider"),
      h("p", { class: "hint" }, `Provider: ${app.config.fhirBase}`)),
  );
}

function signIn() {
  FHIR.oauth2.authorize({
    iss: app.config.fhirBase,
    clientId: app.config.clientId,
    scope: app.config.scope,
    redirectUri: `${location.origin}/`,
    pkceMode: "required",
  });
}

async function completeSignIn() {
  const client = await FHIR.oauth2.ready();
  const response = client.state.tokenResponse;
  if (!client.patient.id) throw new Error("the sign-in gave no patient: sign in as a patient");
  const previous = loadSession() ?? JSON.parse(localStorage.getItem(`${SESSION_KEY}:patient`) ?? "null");
  if (previous?.patient !== undefined && previous.patient !== client.patient.id) {
    // Another patient signs in on this device: the record of the one before goes first.
    await FhirStore.destroy(STORE_NAME);
    localStorage.removeItem(`${SESSION_KEY}:last-sync`);
  }
  localStorage.setItem(`${SESSION_KEY}:patient`, JSON.stringify({ patient: client.patient.id }));
  saveSession({
    fhirBase: client.state.serverUrl.replace(/\/+$/, ""),
    issuer: new URL(client.state.tokenUri).origin,
    patient: client.patient.id,
    fhirUser: response.fhirUser ?? client.getFhirUser?.() ?? undefined,
    token: response.access_token,
    expiresAt: Date.now() + (Number(response.expires_in ?? 3600) - 30) * 1000,
  });
  history.replaceState(null, "", "/#/summary");
}

async function signOut() {
  const pending = (await app.store?.pending({ remote: app.session.fhirBase })) ?? [];
  if (pending.length > 0 && !confirm(`${pending.length} change${pending.length === 1 ? " has" : "s have"} not reached your provider yet and will be lost. Sign out anyway?`)) return;
  app.sync?.stop();
  await app.store?.close();
  app.store = undefined;
  await FhirStore.destroy(STORE_NAME);
  const issuer = app.session.issuer;
  for (const key of [SESSION_KEY, `${SESSION_KEY}:last-sync`, `${SESSION_KEY}:patient`]) localStorage.removeItem(key);
  sessionStorage.clear();
  app.session = undefined;
  // The provider's session ends too, so that the next person on this device signs in anew.
  if (issuer && navigator.onLine) {
    location.assign(`${issuer}/session/end?client_id=${encodeURIComponent(app.config.clientId)}&post_logout_redirect_uri=${encodeURIComponent(`${location.origin}/`)}`);
    return;
  }
  showSignIn("Signed out. The record was removed from this device.");
}

// --- first sync ----------------------------------------------------------------------------

async function firstSync() {
  const bar = h("progress", { id: "first-sync-progress", max: "1", value: "0", "aria-label": "Download progress" });
  const label = h("p", { id: "first-sync-label" }, "Asking the server what it offers…");
  clear(main).append(h("section", { class: "card", "aria-labelledby": "first-sync-title", "data-wide": "1" }, h("h2", { id: "first-sync-title" }, "Copying your record to this device"), bar, label));
  const result = await app.store.sync({
    ...syncOptions(),
    onProgress: ({ phase, done, total }) => {
      if (total) {
        bar.max = String(total);
        bar.value = String(done);
      }
      label.textContent = phase === "pull" ? `Downloading: ${done}${total ? ` of ${total}` : ""} entries` : phase === "push" ? "Sending your changes…" : "Finishing…";
    },
  });
  if (!result.complete) throw new Error(result.issues.map((issue) => issue.message).join("; ") || "the first sync did not finish");
  app.lastSync = new Date().toISOString();
  localStorage.setItem(`${SESSION_KEY}:last-sync`, app.lastSync);
}

// --- screens -----------------------------------------------------------------------------

async function search(type, params) {
  const bundle = await app.store.search(type, { patient: app.session.patient, _count: "500", ...params });
  return (bundle.entry ?? []).map((entry) => entry.resource);
}

function list(title, id, items, render, empty) {
  return h("section", { class: "card", "aria-labelledby": id },
    h("h2", { id }, title, h("span", { class: "count" }, ` (${items.length})`)),
    items.length === 0 ? h("p", { class: "hint" }, empty) : h("ul", { class: "items" }, ...items.map((item) => h("li", {}, ...render(item)))));
}

async function showSummary() {
  const [patient, conditions, medications, allergies, immunizations, encounters] = await Promise.all([
    app.store.read("Patient", app.session.patient),
    search("Condition", {}),
    search("MedicationRequest", {}),
    search("AllergyIntolerance", {}),
    search("Immunization", {}),
    search("Encounter", { _sort: "-date", _count: "30" }),
  ]);
  const active = (c) => c.clinicalStatus?.coding?.[0]?.code ?? "";
  conditions.sort((a, b) => (active(a) === "active" ? 0 : 1) - (active(b) === "active" ? 0 : 1) || String(b.onsetDateTime ?? "").localeCompare(String(a.onsetDateTime ?? "")));
  const address = patient.address?.[0];
  clear(main).append(
    h("section", { class: "card person", "aria-labelledby": "person-title" },
      h("h2", { id: "person-title" }, humanName(patient.name)),
      h("dl", {},
        h("dt", {}, "Born"), h("dd", {}, dateText(patient.birthDate)),
        h("dt", {}, "Gender"), h("dd", {}, patient.gender ?? "—"),
        h("dt", {}, "Address"), h("dd", {}, address ? [address.line?.join(", "), address.city, address.state].filter(Boolean).join(", ") : "—"),
        h("dt", {}, "Phone"), h("dd", {}, patient.telecom?.find((t) => t.system === "phone")?.value ?? "—"))),
    list("Conditions", "conditions-title", conditions, (c) => [h("strong", {}, codeText(c.code)), " ", h("span", { class: `tag ${active(c)}` }, active(c) || "unknown"), h("span", { class: "when" }, dateText(c.onsetDateTime))], "No conditions recorded."),
    list("Medications", "medications-title", medications, (m) => [h("strong", {}, codeText(m.medicationCodeableConcept) || m.medicationReference?.display || "Medication"), " ", h("span", { class: `tag ${m.status}` }, m.status ?? ""), h("span", { class: "when" }, dateText(m.authoredOn))], "No medications recorded."),
    list("Allergies", "allergies-title", allergies, (a) => [h("strong", {}, codeText(a.code)), " ", h("span", { class: "tag" }, a.criticality ?? a.category?.join(", ") ?? ""), h("span", { class: "when" }, dateText(a.recordedDate))], "No allergies recorded."),
    list("Immunizations", "immunizations-title", immunizations, (i) => [h("strong", {}, codeText(i.vaccineCode)), h("span", { class: "when" }, dateText(i.occurrenceDateTime))], "No immunizations recorded."),
    h("section", { class: "card", "aria-labelledby": "timeline-title", "data-wide": "1" },
      h("h2", { id: "timeline-title" }, "Visits"),
      encounters.length === 0 ? h("p", { class: "hint" }, "No visits recorded.") :
        h("ol", { class: "timeline" }, ...encounters.map((e) => h("li", {},
          h("time", { datetime: e.period?.start ?? "" }, dateText(e.period?.start)),
          h("span", {}, codeText(e.type?.[0]) || e.class?.display || e.class?.code || "Visit"),
          e.serviceProvider?.display ? h("span", { class: "hint" }, ` at ${e.serviceProvider.display}`) : null)))),
  );
}

async function showSearch() {
  const input = h("input", { id: "search-input", type: "search", autocomplete: "off", placeholder: "e.g. glucose, asthma, influenza" });
  const results = h("div", { id: "search-results", "aria-live": "polite" });
  const run = async (event) => {
    event?.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const kinds = [["Condition", "code:text"], ["Observation", "code:text"], ["MedicationRequest", "code:text"], ["AllergyIntolerance", "code:text"], ["Immunization", "vaccine-code:text"], ["Procedure", "code:text"], ["Encounter", "type:text"]];
    const found = [];
    for (const [type, param] of kinds) {
      for (const resource of await search(type, { [param]: text, _count: "50" })) found.push(resource);
    }
    clear(results).append(
      h("p", { id: "search-count" }, `${found.length} entr${found.length === 1 ? "y" : "ies"} match “${text}” in the record on this device.`),
      h("ul", { class: "items" }, ...found.map((r) => h("li", {}, h("span", { class: "tag" }, r.resourceType), " ", h("strong", {}, codeText(r.code ?? r.vaccineCode ?? r.type?.[0]) || r.resourceType), r.valueQuantity ? ` ${quantityText(r.valueQuantity)}` : "", h("span", { class: "when" }, dateText(r.effectiveDateTime ?? r.onsetDateTime ?? r.occurrenceDateTime ?? r.performedPeriod?.start ?? r.period?.start ?? r.authoredOn ?? r.recordedDate))))),
    );
  };
  clear(main).append(
    h("section", { class: "card", "aria-labelledby": "search-title", "data-wide": "1" },
      h("h2", { id: "search-title" }, "Search my record"),
      h("form", { role: "search", onsubmit: run }, h("label", { for: "search-input" }, "Words in an entry's name"), h("div", { class: "row" }, input, h("button", { type: "submit" }, "Search"))),
      results),
  );
  input.focus();
}

function sideText(resource, path) {
  if (resource == null) return "(deleted)";
  let value = resource;
  for (const part of path.replace(/^[A-Za-z]+\.?/, "").split(".").filter(Boolean)) {
    const match = /^(\w+)(?:\[(\d+)\])?$/.exec(part);
    if (!match) return "";
    value = value?.[match[1]];
    if (match[2] !== undefined) value = value?.[Number(match[2])];
  }
  if (value === undefined) return "(not set)";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

async function showSync() {
  const state = await refreshStatus();
  const result = app.lastResult;
  const resolve = async (conflict, choice) => {
    try {
      await app.store.resolve(`${conflict.type}/${conflict.id}`, choice, { remote: app.session.fhirBase });
      await app.sync?.now();
    } catch (err) {
      alert(err instanceof FhirError ? err.message : String(err));
    }
    route();
  };
  clear(main).append(
    h("section", { class: "card", "aria-labelledby": "sync-title", "data-wide": "1" },
      h("h2", { id: "sync-title" }, "Sync"),
      h("dl", {},
        h("dt", {}, "Connection"), h("dd", { id: "sync-online" }, navigator.onLine ? "online" : "offline"),
        h("dt", {}, "Last sync"), h("dd", { id: "sync-last" }, app.lastSync ? dateTimeText(app.lastSync) : "never"),
        h("dt", {}, "Changes to send"), h("dd", { id: "sync-pending" }, String(state.pending.length)),
        h("dt", {}, "Last result"), h("dd", {}, result === undefined ? "—" : result.error ? `failed: ${result.error}` : `${result.pulled} received, ${result.pushed} sent, ${result.merged} merged, ${result.conflicts} conflicts${result.complete ? "" : " (unfinished)"}`)),
      h("div", { class: "row" },
        Date.now() > app.session.expiresAt
          ? h("button", { type: "button", id: "sign-in-again", onclick: signIn }, "Sign in again to sync (your record and changes stay)")
          : h("button", { type: "button", id: "sync-now", onclick: async () => { await app.sync?.now(); route(); } }, "Sync now"),
        h("button", { type: "button", class: "secondary", id: "sign-out", onclick: signOut }, "Sign out and remove the record"))),
    h("section", { class: "card", "aria-labelledby": "conflicts-title", "data-wide": "1" },
      h("h2", { id: "conflicts-title" }, "Conflicts", h("span", { class: "count" }, ` (${state.conflicts.length})`)),
      state.conflicts.length === 0 ? h("p", { class: "hint" }, "No conflicts: every change here and on the server fits together.") :
        h("ul", { class: "conflicts" }, ...state.conflicts.map((conflict) => {
          const editor = h("textarea", { rows: "8", "aria-label": `Edited ${conflict.type}`, hidden: true }, JSON.stringify(conflict.local, null, 2));
          const save = h("button", { type: "button", hidden: true, onclick: () => {
            let resource;
            try {
              resource = JSON.parse(editor.value);
            } catch (err) {
              alert(`Not JSON: ${err.message}`);
              return;
            }
            resolve(conflict, resource);
          } }, "Save my edit");
          return h("li", { class: "conflict", "data-reference": `${conflict.type}/${conflict.id}` },
            h("h3", {}, `${conflict.type}: ${codeText(conflict.local?.code ?? conflict.remote?.code) || conflict.id}`),
            h("p", {}, "Changed here and on the server since the last sync:"),
            h("table", {},
              h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "What"), h("th", { scope: "col" }, "On this device"), h("th", { scope: "col" }, "On the server"))),
              h("tbody", {}, ...conflict.paths.map((path) => h("tr", {}, h("th", { scope: "row" }, path), h("td", {}, sideText(conflict.local, path)), h("td", {}, sideText(conflict.remote, path)))))),
            h("div", { class: "row" },
              h("button", { type: "button", class: "keep-local", onclick: () => resolve(conflict, "local") }, "Keep mine"),
              h("button", { type: "button", class: "keep-remote secondary", onclick: () => resolve(conflict, "remote") }, "Keep the server's"),
              h("button", { type: "button", class: "secondary", onclick: () => { editor.hidden = false; save.hidden = false; editor.focus(); } }, "Edit")),
            editor, save);
        }))),
  );
}

async function showAccess() {
  const section = h("section", { class: "card", "aria-labelledby": "access-title", "data-wide": "1" }, h("h2", { id: "access-title" }, "Who saw my record"));
  clear(main).append(section);
  if (!navigator.onLine) {
    section.append(h("p", { class: "hint" }, "The record of who read your data is kept by your provider: connect to see it."));
    return;
  }
  let bundle;
  try {
    const response = await fetch(`${app.session.fhirBase}/AuditEvent?patient=Patient/${encodeURIComponent(app.session.patient)}&_sort=-date&_count=100`, { headers: { authorization: `Bearer ${token()}`, accept: "application/fhir+json" } });
    bundle = await response.json();
    if (!response.ok) throw new Error(bundle.issue?.[0]?.diagnostics ?? `status ${response.status}`);
  } catch (err) {
    section.append(h("p", { class: "error", role: "alert" }, `Could not read the access record: ${err.message}`));
    return;
  }
  const events = (bundle.entry ?? []).map((entry) => entry.resource);
  const who = (event) => {
    const person = event.agent?.find((agent) => agent.requestor) ?? event.agent?.[0];
    const app_ = event.agent?.find((agent) => agent !== person && agent.who?.identifier?.value);
    const name = person?.who?.display ?? person?.who?.reference ?? "someone";
    return `${name === `Patient/${app.session.patient}` ? "You" : name}${app_ ? ` (with ${app_.who.identifier.value})` : ""}`;
  };
  section.append(
    h("p", {}, `Every read and change of your data on the server is recorded. The ${events.length} most recent:`),
    h("table", { id: "access-table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "Who"), h("th", { scope: "col" }, "What"), h("th", { scope: "col" }, "Result"))),
      h("tbody", {}, ...events.map((event) => h("tr", {},
        h("td", {}, dateTimeText(event.recorded)),
        h("td", {}, who(event)),
        h("td", {}, event.subtype?.map((s) => s.code ?? s.display).join(", ") ?? event.action ?? ""),
        h("td", {}, event.outcome === "0" ? "done" : `refused (${event.outcomeDesc ?? event.outcome})`))))),
  );
}

const ROUTES = {
  "#/summary": showSummary,
  "#/trends": () => showTrends(main, app),
  "#/add": () => showAdd(main, app, refreshStatus),
  "#/search": showSearch,
  "#/sync": showSync,
  "#/access": showAccess,
};

const TITLES = { "#/summary": "Summary", "#/trends": "Trends", "#/add": "Add an entry", "#/search": "Search", "#/sync": "Sync", "#/access": "Who saw my record" };

async function route(event) {
  const hash = ROUTES[location.hash] ? location.hash : "#/summary";
  for (const link of nav.querySelectorAll("a")) {
    if (link.getAttribute("href") === hash) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.ready = "false";
  document.body.dataset.screen = hash.slice(2);
  try {
    await ROUTES[hash]();
  } catch (err) {
    clear(main).append(h("p", { class: "error", role: "alert" }, `Something went wrong: ${err.message}`));
    console.warn(err);
  }
  document.title = `${TITLES[hash]} — my health record`;
  // After a move between screens, focus goes to the new content (announced by screen readers).
  if (event) main.focus();
  document.body.dataset.ready = "true";
}

async function start() {
  app.config = await (await fetch("/demo-config.json")).json();
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { type: "module" }).catch((err) => console.warn("no offline support:", err.message));
  }
  const params = new URLSearchParams(location.search);
  if (params.has("code") || params.has("error")) {
    try {
      await completeSignIn();
    } catch (err) {
      history.replaceState(null, "", "/");
      showSignIn(`Sign-in failed: ${err.message}`);
      document.body.dataset.ready = "true";
      return;
    }
  }
  app.session = loadSession();
  if (app.session === undefined) {
    showSignIn();
    document.body.dataset.ready = "true";
    return;
  }
  app.store = await FhirStore.open({ name: STORE_NAME });
  app.lastSync = localStorage.getItem(`${SESSION_KEY}:last-sync`) ?? undefined;
  if (app.lastSync === undefined) {
    try {
      await firstSync();
    } catch (err) {
      showSignIn(`The record could not be copied: ${err.message}`);
      document.body.dataset.ready = "true";
      return;
    }
  }
  nav.hidden = false;
  app.store.on("conflict", () => refreshStatus());
  window.addEventListener("online", refreshStatus);
  window.addEventListener("offline", refreshStatus);
  window.addEventListener("hashchange", route);
  startSyncing();
  await refreshStatus();
  await route();
}

start().catch((err) => {
  clear(main).append(h("p", { class: "error", role: "alert" }, `The app could not start: ${err.message}`));
  document.body.dataset.ready = "true";
  console.warn(err);
});
