// The HL7 validator's test cases (../shared/corpus/validator, trimmed to R4 JSON), run against
// hearth-fhir's validate(): per tier, how many cases agree with the Java reference validator
// on "has errors / has none" and on the exact error count (errors = error + fatal issues).
//
// Every case is run or counted as skipped with its reason. Cases whose expectations depend on
// what Hearth does not do (a terminology server, fetching external references, profiles not
// yet supported) are reported in their own rows so that the core figure stays honest.
// QuestionnaireResponses checked against the Questionnaire in their supporting files have a
// row of their own too ("local-profiles, questionnaire").
// Disagreements are written to tests/artifacts/validator-disagreements.txt.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { validate, FhirError, FhirProfiles } from "hearth-fhir";
import { ROOT, artifactPath } from "../lib/paths.js";

const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
const dir = `${corpus}/validator`;
/** Core-tier cases needing nothing else that agree on errors / none, at the last recorded run. */
const MIN_CORE_AGREEMENT = 101;
/** Local-profiles cases (first step) that agree on errors / none, at the last recorded run. */
const MIN_LOCAL_AGREEMENT = 45;
/** QuestionnaireResponses checked against their Questionnaire that agree on errors / none. */
const MIN_QUESTIONNAIRE_AGREEMENT = 60;
/**
 * Questionnaire cases whose expected outcome depends on what Hearth cannot do, with the reason.
 * They are counted as skipped, not as disagreements.
 */
const QUESTIONNAIRE_SKIPS = new Map([
  ["choice-async-qr", "answerValueSet is jurisdiction (all of ISO 3166), which needs a terminology server"],
  ["string-with-coding-async-qr", "answerValueSet is jurisdiction (all of ISO 3166), which needs a terminology server"],
  ["quantity-units-in-value-set-qr", "unitValueSet is jurisdiction (all of ISO 3166), which needs a terminology server"],
  ["quantity-units-not-in-value-set-qr", "unitValueSet is jurisdiction (all of ISO 3166), which needs a terminology server"],
  ["choice-gender-coding-async-qr", "checks Coding.display against the code system, which needs a terminology server"],
  ["open-choice-gender-coding-async-qr", "checks Coding.display against the code system, which needs a terminology server"],
]);

function errorCount(outcome) {
  return outcome.issue.filter((issue) => issue.severity === "error" || issue.severity === "fatal").length;
}

/** The case's options that Hearth has too, set only when the manifest sets them. */
function caseOptions(entry) {
  const options = { securityChecks: entry["security-checks"] === true, noHtmlInMarkdown: entry.noHtmlInMarkdown === true };
  if (entry["allow-comments"] === true) options.allowComments = true;
  if (entry.validateContains === "IGNORE") options.skipContained = true;
  return options;
}

/** Hearth's error count for a file: a resource that does not read counts its read errors. */
function hearthErrors(text, options) {
  try {
    return { count: errorCount(validate(text, options)) };
  } catch (err) {
    if (err instanceof FhirError && err.outcome) return { count: errorCount(err.outcome), unreadable: true };
    throw err;
  }
}

/** Loads a case's supporting files and profiles; files that are not FHIR JSON are skipped. */
function loadProfiles(files) {
  const profiles = new FhirProfiles();
  for (const file of files ?? []) {
    try {
      profiles.add(readFileSync(`${dir}/${file}`, "utf8"));
    } catch {
      // A supporting file Hearth cannot read (another format, or not a resource) loads nothing.
    }
  }
  return profiles;
}

/** A local-profiles case: the resource with the case's profiles loaded, then its profile step. */
function runLocalProfiles(entry, row, disagreements, suffix = "") {
  const corpusInfo = entry["x-corpus"];
  const needs = corpusInfo.needs ?? [];
  if (needs.includes("terminology-server")) suffix += ", needs a terminology server";
  const text = readFileSync(`${dir}/${entry.file}`, "utf8");
  const options = caseOptions(entry);
  const tally = (name, expected, got, label) => {
    const r = row(name);
    r.cases += 1;
    if ((got > 0) === (expected > 0)) r.agreeHasErrors += 1;
    else disagreements.push(`${name}\t${entry.name}${label}\t${entry.file}\texpected ${expected} errors, Hearth ${got}`);
    if (got === expected) r.agreeCount += 1;
  };
  const profiles = loadProfiles([...(entry.supporting ?? []), ...(entry.profiles ?? [])]);
  tally(`local-profiles${suffix}`, corpusInfo.expected.errors, hearthErrors(text, { ...options, profiles }).count, "");
  if (entry.profile?.source && corpusInfo["expected-profile"]) {
    const stepProfiles = loadProfiles([...(entry.supporting ?? []), ...(entry.profiles ?? []), ...(entry.profile.supporting ?? []), entry.profile.source]);
    let url;
    try {
      url = JSON.parse(readFileSync(`${dir}/${entry.profile.source}`, "utf8")).url;
    } catch {
      url = undefined;
    }
    const got = hearthErrors(text, { ...options, profiles: stepProfiles, profile: url }).count;
    tally(`local-profiles, profile step${suffix}`, corpusInfo["expected-profile"].errors, got, " (profile step)");
  }
}

test("HL7 validator cases", () => {
  const manifest = JSON.parse(readFileSync(`${dir}/manifest.json`, "utf8"));
  const rows = new Map();
  const row = (name) => {
    if (!rows.has(name)) rows.set(name, { cases: 0, agreeHasErrors: 0, agreeCount: 0 });
    return rows.get(name);
  };
  const skips = new Map();
  const disagreements = [];
  for (const entry of manifest["test-cases"]) {
    const corpusInfo = entry["x-corpus"];
    const needs = corpusInfo.needs ?? [];
    let rowName;
    if (corpusInfo.tier === "local-profiles") {
      if (entry.module === "questionnaire") {
        const why = QUESTIONNAIRE_SKIPS.get(entry.name);
        if (why) {
          const reason = `local-profiles, questionnaire: ${why}`;
          skips.set(reason, (skips.get(reason) ?? 0) + 1);
          continue;
        }
        // The supporting files hold the Questionnaire (and its value sets), loaded as profiles.
        runLocalProfiles(entry, row, disagreements, ", questionnaire");
        continue;
      }
      runLocalProfiles(entry, row, disagreements);
      continue;
    } else if (needs.includes("terminology-server")) {
      rowName = "core, needs a terminology server (Hearth has none)";
    } else if (needs.includes("reference-fetcher")) {
      rowName = "core, needs external references fetched (Hearth fetches none)";
    } else {
      rowName = "core";
    }
    const text = readFileSync(`${dir}/${entry.file}`, "utf8");
    const expected = corpusInfo.expected.errors;
    const options = caseOptions(entry);
    const got = hearthErrors(text, options);
    const r = row(rowName);
    r.cases += 1;
    if ((got.count > 0) === (expected > 0)) r.agreeHasErrors += 1;
    else disagreements.push(`${rowName}\t${entry.name}\t${entry.file}\texpected ${expected} errors, Hearth ${got.count}`);
    if (got.count === expected) r.agreeCount += 1;
  }
  const percent = (n, d) => (d === 0 ? "-" : `${((100 * n) / d).toFixed(1)}%`);
  for (const [name, r] of rows) {
    console.log(
      `validator cases: ${name}: ${r.cases} cases, errors/none agree ${r.agreeHasErrors} (${percent(r.agreeHasErrors, r.cases)}), ` +
        `exact error count agrees ${r.agreeCount} (${percent(r.agreeCount, r.cases)})`,
    );
  }
  for (const [reason, n] of skips) console.log(`  skipped ${n}: ${reason}`);
  writeFileSync(artifactPath("validator-disagreements.txt"), disagreements.join("\n") + "\n");
  const core = rows.get("core");
  assert.ok(core && core.agreeHasErrors >= MIN_CORE_AGREEMENT, `core agreement fell to ${core?.agreeHasErrors}`);
  const local = rows.get("local-profiles");
  assert.ok(local && local.agreeHasErrors >= MIN_LOCAL_AGREEMENT, `local-profiles agreement fell to ${local?.agreeHasErrors}`);
  const questionnaire = rows.get("local-profiles, questionnaire");
  assert.ok(
    questionnaire && questionnaire.agreeHasErrors >= MIN_QUESTIONNAIRE_AGREEMENT,
    `local-profiles, questionnaire agreement fell to ${questionnaire?.agreeHasErrors}`,
  );
});
