// A FHIR client in Node.js with fhirclient (the SMART on FHIR JavaScript library): find the PHQ-9, submit a
// response, read the scores back, newest first.
//
//     node client.js [FHIR_BASE]        # default http://127.0.0.1:8080/fhir (make demo)
//
// Set PROMS_TOKEN to send a bearer token (a service running with PROMS_AUTH=jwt needs one). Exits non-zero,
// saying why, when the server does not answer as expected.
"use strict";

const crypto = require("node:crypto");
const { FhirClient } = require("fhirclient");

const PHQ9 = "https://recovery-proms.org/fhir/Questionnaire/phq-9";
const PHQ9_TOTAL = "http://loinc.org|44261-6";
const RESPONSE_IDS = "https://ehr.example.org/prom-response"; // your system for your own ids of responses
// PHQ-9 items 1-9 and the options chosen: 3 x "More than half the days" (2), 4 x "Several days" (1),
// 2 x "Not at all" (0): 10.
const ANSWERS = {
  "/44250-9": "LA6570-1", "/44255-8": "LA6570-1", "/44259-0": "LA6569-3", "/44254-1": "LA6570-1",
  "/44251-7": "LA6569-3", "/44258-2": "LA6569-3", "/44252-5": "LA6569-3", "/44253-3": "LA6568-5",
  "/44260-8": "LA6568-5",
};

// fhirclient's plain FHIR client; on an open server (make demo) no SMART launch is needed. Backend services
// add the access token they got from the authorization server to every request.
class BearerFhirClient extends FhirClient {
  async getRequestDefaults() {
    const token = process.env.PROMS_TOKEN;
    return token ? { headers: { authorization: `Bearer ${token}` } } : {};
  }
}

function check(condition, message) {
  if (!condition) {
    console.error(`unexpected: ${message}`);
    process.exit(1);
  }
}

async function all(client, query) {
  const found = [];
  for await (const resource of client.resources(query)) found.push(resource); // follows the next links
  return found;
}

function phq9Response(patient, questionnaire, responseId) {
  return {
    resourceType: "QuestionnaireResponse",
    identifier: { system: RESPONSE_IDS, value: responseId },
    questionnaire,
    status: "completed",
    subject: { reference: `Patient/${patient}` },
    authored: "2026-11-20T10:00:00Z",
    item: Object.entries(ANSWERS).map(([linkId, code]) => ({
      linkId,
      answer: [{ valueCoding: { system: "http://loinc.org", code } }],
    })),
  };
}

function scoreLine(observation) {
  const meaning = (observation.interpretation || []).map((entry) => entry.text).filter(Boolean).join("; ");
  const when = observation.effectiveDateTime.slice(0, 10);
  return `${when}  ${observation.code.text}: ${observation.valueInteger} (${meaning || "no band"})`;
}

async function main(base) {
  const client = new BearerFhirClient(base);

  // 1. The library: every active Questionnaire.
  const questionnaires = await all(client, "Questionnaire?status=active&_count=50");
  const phq9 = questionnaires.find((q) => q.url === PHQ9);
  check(phq9, `the server has no ${PHQ9}`);
  const canonical = `${phq9.url}|${phq9.version}`;
  console.log(`${questionnaires.length} active questionnaires; submitting to ${canonical}`);

  // 2. Submit, with your own identifier so that a retry can never store it twice.
  const patient = `fhirclient-${crypto.randomUUID().slice(0, 8)}`;
  const responseId = crypto.randomUUID();
  const created = await client.create(phq9Response(patient, canonical, responseId), { includeResponse: true });
  check(created.response.status === 201, `the submission answered ${created.response.status}, not 201`);
  const stored = created.body;
  const total = stored.item.find((item) => item.linkId === "/44261-6").answer[0].valueInteger;
  check(total === 10, `the server scored the PHQ-9 ${total}, not 10`);
  console.log(`stored QuestionnaireResponse/${stored.id} for Patient/${patient}: PHQ-9 total ${total}`);

  // 3. The same submission again (a retry after a timeout): 200 and the stored response, no second copy.
  const retry = await client.create(phq9Response(patient, canonical, responseId), { includeResponse: true });
  check(retry.response.status === 200, `the retry answered ${retry.response.status}, not 200`);
  check(retry.body.id === stored.id, `the retry was stored as ${retry.body.id}`);
  const identifier = encodeURIComponent(`${RESPONSE_IDS}|${responseId}`);
  const copies = await client.fhirRequest(`QuestionnaireResponse?identifier=${identifier}&_summary=count`);
  check(copies.total === 1, `${copies.total} responses carry the identifier`);
  console.log(`retried: the same QuestionnaireResponse/${retry.body.id}, stored once`);

  // 4. The scores as Observations, newest first: the new person's, then a demo person's PHQ-9 trend.
  const scores = await all(client, `Observation?patient=${patient}&category=survey&_sort=-date`);
  const values = scores.filter((o) => "valueInteger" in o).map(scoreLine);
  check(
    values.length === 1 && values[0] === "2026-11-20  PHQ-9 total score (0–27): 10 (Moderate)",
    `Observations ${JSON.stringify(values)}`,
  );
  console.log(`Patient/${patient}: ${values[0]}`);
  const trend = await all(client, `Observation?patient=demo-01&code=${encodeURIComponent(PHQ9_TOTAL)}&_sort=-date`);
  check(trend.length >= 2, "Patient/demo-01 has fewer than two PHQ-9 scores: is the demo data loaded?");
  const dates = trend.map((o) => o.effectiveDateTime);
  check(dates.join() === [...dates].sort().reverse().join(), "the PHQ-9 scores are not newest first");
  console.log(`Patient/demo-01, PHQ-9, newest first (${trend.length} scores):`);
  for (const observation of trend) console.log(`  ${scoreLine(observation)}`);
}

main(process.argv[2] || "http://127.0.0.1:8080/fhir").catch((error) => {
  console.error(`unexpected: ${error.message}`);
  process.exit(1);
});
