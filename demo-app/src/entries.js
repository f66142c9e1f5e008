// Entries the patient records, online or not: blood pressure, weight, and a symptom diary
// (a QuestionnaireResponse). Each is checked by Hearth (`store.validate`) before it is saved;
// what Hearth or the form finds wrong is shown at the field it concerns.
import { h, clear } from "./ui.js";

const LOINC = "http://loinc.org";
const VITALS = { coding: [{ system: "http://terminology.hl7.org/CodeSystem/observation-category", code: "vital-signs", display: "Vital Signs" }] };
export const DIARY_URL = "https://hearth.local/fhir/Questionnaire/symptom-diary";
const SYMPTOMS = ["headache", "fatigue", "cough", "fever", "nausea", "pain", "dizziness", "other"];

/** A number when the text is one; otherwise the text, for Hearth to refuse where it stands. */
function numberOr(text) {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : trimmed;
}

function localNow() {
  const now = new Date();
  return new Date(now.getTime() - now.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

function instant(local) {
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? local : date.toISOString();
}

/** A labelled input with a place for its error. */
function field(id, label, input, hint) {
  const error = h("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  input.id = id;
  input.setAttribute("aria-describedby", `${id}-error${hint ? ` ${id}-hint` : ""}`);
  return { row: h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null, error), input, error };
}

function form({ id, title, fields, build, check, app, refresh }) {
  const message = h("p", { class: "form-message", role: "status" });
  const button = h("button", { type: "submit" }, "Save");
  const save = async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    try {
      await saveNow();
    } finally {
      button.disabled = false;
    }
  };
  const saveNow = async () => {
    for (const f of Object.values(fields)) {
      f.error.textContent = "";
      f.input.removeAttribute("aria-invalid");
    }
    message.textContent = "";
    message.className = "form-message";
    const resource = build();
    const problems = check?.() ?? [];
    const outcome = await app.store.validate(resource);
    for (const issue of outcome.issue ?? []) {
      if (issue.severity !== "error" && issue.severity !== "fatal") continue;
      const where = issue.expression?.[0] ?? issue.location?.[0] ?? "";
      const name = Object.keys(fields).find((key) => fields[key].paths?.some((path) => where.startsWith(path))) ?? Object.keys(fields)[0];
      problems.push([name, issue.diagnostics ?? "not valid"]);
    }
    if (problems.length > 0) {
      for (const [name, text] of problems) {
        const f = fields[name];
        f.error.textContent = f.error.textContent ? `${f.error.textContent}; ${text}` : text;
        f.input.setAttribute("aria-invalid", "true");
      }
      fields[problems[0][0]].input.focus();
      message.textContent = "Not saved: see the fields marked.";
      message.classList.add("error");
      return;
    }
    const saved = await app.store.create(resource);
    message.textContent = `Saved on this device${navigator.onLine ? "; sending it now." : "; it is sent when you are back online."}`;
    message.classList.add("ok");
    message.dataset.saved = `${saved.resourceType}/${saved.id}`;
    for (const f of Object.values(fields)) if (f.reset !== undefined) f.input.value = f.reset;
    await refresh();
    if (navigator.onLine) app.sync?.now().then(refresh, () => {});
  };
  return h("form", { class: "card entry", id, "aria-labelledby": `${id}-title`, novalidate: true, onsubmit: save },
    h("h2", { id: `${id}-title` }, title), ...Object.values(fields).map((f) => f.row), button, message);
}

export function showAdd(main, app, refresh) {
  const subject = { reference: `Patient/${app.session.patient}` };

  const bp = {
    systolic: { ...field("bp-systolic", "Systolic (upper number, mm Hg)", h("input", { inputmode: "numeric", autocomplete: "off" })), paths: ["Observation.component[0]"], reset: "" },
    diastolic: { ...field("bp-diastolic", "Diastolic (lower number, mm Hg)", h("input", { inputmode: "numeric", autocomplete: "off" })), paths: ["Observation.component[1]"], reset: "" },
    when: { ...field("bp-when", "Measured at", h("input", { type: "datetime-local", value: localNow() })), paths: ["Observation.effective"] },
  };
  const quantity = (value) => ({ value: numberOr(value), unit: "mm[Hg]", system: "http://unitsofmeasure.org", code: "mm[Hg]" });
  const bpForm = form({
    id: "bp-form", title: "Blood pressure", fields: bp, app, refresh,
    build: () => ({
      resourceType: "Observation", status: "final", category: [VITALS],
      code: { coding: [{ system: LOINC, code: "85354-9", display: "Blood pressure panel with all children optional" }], text: "Blood pressure" },
      subject, effectiveDateTime: instant(bp.when.input.value),
      component: [
        { code: { coding: [{ system: LOINC, code: "8480-6", display: "Systolic blood pressure" }] }, valueQuantity: quantity(bp.systolic.input.value) },
        { code: { coding: [{ system: LOINC, code: "8462-4", display: "Diastolic blood pressure" }] }, valueQuantity: quantity(bp.diastolic.input.value) },
      ],
    }),
    check: () => {
      const problems = [];
      for (const [name, low, high] of [["systolic", 50, 300], ["diastolic", 20, 200]]) {
        const value = numberOr(bp[name].input.value);
        if (value === undefined) problems.push([name, "enter the number the monitor shows"]);
        else if (typeof value === "number" && (value < low || value > high)) problems.push([name, `a ${name} pressure is between ${low} and ${high}`]);
      }
      const [s, d] = [numberOr(bp.systolic.input.value), numberOr(bp.diastolic.input.value)];
      if (typeof s === "number" && typeof d === "number" && d >= s) problems.push(["diastolic", "the lower number must be below the upper one"]);
      return problems;
    },
  });

  const weight = {
    kg: { ...field("weight-kg", "Weight (kg)", h("input", { inputmode: "decimal", autocomplete: "off" })), paths: ["Observation.value"], reset: "" },
    when: { ...field("weight-when", "Measured at", h("input", { type: "datetime-local", value: localNow() })), paths: ["Observation.effective"] },
  };
  const weightForm = form({
    id: "weight-form", title: "Weight", fields: weight, app, refresh,
    build: () => ({
      resourceType: "Observation", status: "final", category: [VITALS],
      code: { coding: [{ system: LOINC, code: "29463-7", display: "Body weight" }], text: "Body weight" },
      subject, effectiveDateTime: instant(weight.when.input.value),
      valueQuantity: { value: numberOr(weight.kg.input.value), unit: "kg", system: "http://unitsofmeasure.org", code: "kg" },
    }),
    check: () => {
      const value = numberOr(weight.kg.input.value);
      if (value === undefined) return [["kg", "enter your weight"]];
      if (typeof value === "number" && (value <= 0 || value > 500)) return [["kg", "a weight is between 0 and 500 kg"]];
      return [];
    },
  });

  const symptom = h("select", {}, h("option", { value: "" }, "Choose…"), ...SYMPTOMS.map((s) => h("option", { value: s }, s)));
  const diary = {
    symptom: { ...field("diary-symptom", "Symptom", symptom), paths: ["QuestionnaireResponse.item[0]"], reset: "" },
    severity: { ...field("diary-severity", "How bad, from 0 (none) to 10 (worst)", h("input", { type: "number", min: "0", max: "10", step: "1" })), paths: ["QuestionnaireResponse.item[1]"], reset: "" },
    notes: { ...field("diary-notes", "Notes", h("textarea", { rows: "3" }), "Optional"), paths: ["QuestionnaireResponse.item[2]"], reset: "" },
  };
  const diaryForm = form({
    id: "diary-form", title: "Symptom diary", fields: diary, app, refresh,
    build: () => {
      const severity = numberOr(diary.severity.input.value);
      const notes = diary.notes.input.value.trim();
      return {
        resourceType: "QuestionnaireResponse", status: "completed", questionnaire: DIARY_URL, subject,
        authored: new Date().toISOString(),
        item: [
          { linkId: "symptom", text: "Symptom", answer: diary.symptom.input.value ? [{ valueCoding: { system: "https://hearth.local/fhir/CodeSystem/symptoms", code: diary.symptom.input.value, display: diary.symptom.input.value } }] : undefined },
          { linkId: "severity", text: "Severity (0-10)", answer: severity === undefined ? undefined : [{ valueInteger: severity }] },
          ...(notes ? [{ linkId: "notes", text: "Notes", answer: [{ valueString: notes }] }] : []),
        ],
      };
    },
    check: () => {
      const problems = [];
      if (!diary.symptom.input.value) problems.push(["symptom", "choose the symptom"]);
      const severity = numberOr(diary.severity.input.value);
      if (severity === undefined) problems.push(["severity", "say how bad it is, from 0 to 10"]);
      else if (typeof severity === "number" && (!Number.isInteger(severity) || severity < 0 || severity > 10)) problems.push(["severity", "a whole number from 0 to 10"]);
      return problems;
    },
  });

  clear(main).append(h("p", { class: "hint" }, "Entries are checked on this device and saved here first; they reach your provider at the next sync."), bpForm, weightForm, diaryForm);
}
