#!/usr/bin/env bash
# The service's essentials with curl, checked as it goes: read the CapabilityStatement, list the questionnaires,
# submit a PHQ-9 for a new person, retry it, read its scores, amend it, mark it entered-in-error, and look at
# the demo people's scores, safety flags and due measures.
#
#     examples/curl/walkthrough.sh [FHIR_BASE]       # default http://127.0.0.1:8080/fhir (make demo)
#
# Needs bash, curl and python3 (for JSON). Set PROMS_TOKEN to send a bearer token. Exits non-zero, saying what
# it expected, at the first answer that is not what the service promises.
set -euo pipefail

BASE=${1:-http://127.0.0.1:8080/fhir}
BASE=${BASE%/}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
AUTH=()
if [ -n "${PROMS_TOKEN:-}" ]; then AUTH=(-H "Authorization: Bearer $PROMS_TOKEN"); fi

fail() { echo "FAILED: $*" >&2; exit 1; }

# request METHOD URL [curl options]: the body lands in $WORK/body, the headers in $WORK/headers, the code in $STATUS.
request() {
  local method=$1 url=$2
  shift 2
  STATUS=$(curl -sS -X "$method" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "${AUTH[@]}" "$@" "$url")
}
fhir() { request "$1" "$BASE/$2" "${@:3}"; }
# field EXPRESSION: a Python expression over the last body (parsed as d), printed.
field() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$WORK/body" "$1"; }
header() { grep -i -m 1 "^$1:" "$WORK/headers" | cut -d' ' -f2- | tr -d '\r'; }
expect_status() { [ "$STATUS" = "$1" ] || fail "$2: HTTP $STATUS, expected $1: $(head -c 600 "$WORK/body")"; }
expect() { [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"; }
step() { printf '\n== %s\n' "$*"; }

step "What the server supports: GET /metadata"
fhir GET metadata
expect_status 200 "metadata"
expect "$(field 'd["fhirVersion"]')" "4.0.1" "FHIR version"
expect "$(field '"QuestionnaireResponse" in [r["type"] for r in d["rest"][0]["resource"]]')" "True" "QuestionnaireResponse served"
echo "FHIR $(field 'd["fhirVersion"]'): $(field '" ".join(r["type"] for r in d["rest"][0]["resource"])')"

step "The questionnaires: GET /Questionnaire?status=active"
fhir GET "Questionnaire?status=active&_count=50&_elements=url,version,title"
expect_status 200 "Questionnaire search"
field '"\n".join("%(url)s|%(version)s  %(title)s" % e["resource"] for e in d["entry"])'
PHQ9=$(field 'next("%(url)s|%(version)s" % e["resource"] for e in d["entry"] if e["resource"]["id"] == "phq-9")')
expect "$PHQ9" "https://recovery-proms.org/fhir/Questionnaire/phq-9|1.2.0" "the PHQ-9's canonical"

step "Submit a PHQ-9 for a new person: POST /QuestionnaireResponse"
PATIENT="walkthrough-$(date +%s)-$$"
VISIT="$PATIENT-phq9-1"
cat > "$WORK/phq9.json" <<EOF
{
  "resourceType": "QuestionnaireResponse",
  "identifier": {"system": "https://ehr.example.org/prom-response", "value": "$VISIT"},
  "questionnaire": "$PHQ9",
  "status": "completed",
  "subject": {"reference": "Patient/$PATIENT"},
  "authored": "2026-11-20T10:00:00Z",
  "item": [
    {"linkId": "/44250-9", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6570-1"}}]},
    {"linkId": "/44255-8", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6570-1"}}]},
    {"linkId": "/44259-0", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3"}}]},
    {"linkId": "/44254-1", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6570-1"}}]},
    {"linkId": "/44251-7", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3"}}]},
    {"linkId": "/44258-2", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3"}}]},
    {"linkId": "/44252-5", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3"}}]},
    {"linkId": "/44253-3", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5"}}]},
    {"linkId": "/44260-8", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5"}}]}
  ]
}
EOF
fhir POST QuestionnaireResponse -H 'Content-Type: application/fhir+json' --data @"$WORK/phq9.json"
expect_status 201 "the submission"
ID=$(field 'd["id"]')
TOTAL=$(field 'next(i["answer"][0]["valueInteger"] for i in d["item"] if i["linkId"] == "/44261-6")')
expect "$TOTAL" "10" "the PHQ-9 total the server computed"
expect "$(header ETag)" 'W/"1"' "ETag"
LOCATION=$(header Location)
expect "${LOCATION%/_history/1}" "$BASE/QuestionnaireResponse/$ID" "Location"
echo "201 Created: QuestionnaireResponse/$ID for Patient/$PATIENT, PHQ-9 total $TOTAL (computed by the server)"

step "Retry it (same identifier): the stored response comes back, nothing is stored twice"
fhir POST QuestionnaireResponse -H 'Content-Type: application/fhir+json' --data @"$WORK/phq9.json"
expect_status 200 "the retry"
expect "$(field 'd["id"]')" "$ID" "the retry's id"
fhir GET "QuestionnaireResponse?identifier=https://ehr.example.org/prom-response|$VISIT&_summary=count"
expect "$(field 'd["total"]')" "1" "responses with the identifier"
echo "200 OK: the same QuestionnaireResponse/$ID; 1 response carries identifier $VISIT"

step "Its scores, as Observations: GET /Observation?patient=...&category=survey"
fhir GET "Observation?patient=$PATIENT&category=survey&_sort=-date"
expect_status 200 "Observation search"
expect "$(field 'd["total"]')" "2" "Observations (a panel and the total)"
SCORE='next("%s: %s (%s), %s" % (r["code"]["text"], r["valueInteger"], r["interpretation"][0]["text"], r["status"])
           for r in (e["resource"] for e in d["entry"]) if "valueInteger" in r)'
expect "$(field "$SCORE")" "PHQ-9 total score (0–27): 10 (Moderate), final" "the PHQ-9 total Observation"
field "$SCORE"

step "Amend it: PUT with status amended and If-Match"
fhir GET "QuestionnaireResponse/$ID"
python3 - "$WORK/body" "$WORK/amended.json" <<'EOF'
import json, sys
response = json.load(open(sys.argv[1]))
response["status"] = "amended"
for item in response["item"]:
    if item["linkId"] == "/44259-0":  # item 3, sleep: "Nearly every day" rather than "Several days"
        item["answer"] = [{"valueCoding": {"system": "http://loinc.org", "code": "LA6571-9"}}]
json.dump(response, open(sys.argv[2], "w"))
EOF
fhir PUT "QuestionnaireResponse/$ID" -H 'Content-Type: application/fhir+json' -H 'If-Match: W/"1"' --data @"$WORK/amended.json"
expect_status 200 "the amendment"
expect "$(header ETag)" 'W/"2"' "ETag after the amendment"
fhir PUT "QuestionnaireResponse/$ID" -H 'Content-Type: application/fhir+json' -H 'If-Match: W/"1"' --data @"$WORK/amended.json"
expect_status 412 "a second amendment of version 1"
fhir GET "Observation?patient=$PATIENT&code=http://loinc.org|44261-6"
expect "$(field "$SCORE")" "PHQ-9 total score (0–27): 12 (Moderate), amended" "the amended total"
echo "200 OK, version 2: $(field "$SCORE"); amending version 1 again: 412"

step "Mark it entered-in-error: its Observations are withdrawn with it"
fhir GET "QuestionnaireResponse/$ID"
field 'json.dumps({**d, "status": "entered-in-error"})' > "$WORK/withdrawn.json"
fhir PUT "QuestionnaireResponse/$ID" -H 'Content-Type: application/fhir+json' -H 'If-Match: W/"2"' --data @"$WORK/withdrawn.json"
expect_status 200 "entered-in-error"
fhir GET "Observation?patient=$PATIENT"
expect "$(field 'sorted({e["resource"]["status"] for e in d["entry"]})')" "['entered-in-error']" "the withdrawn Observations"
fhir GET "Observation?patient=$PATIENT&status=final,amended&_summary=count"
expect "$(field 'd["total"]')" "0" "current scores"
echo "200 OK, version 3: both Observations entered-in-error; no current scores for Patient/$PATIENT"

# latest: the newest score of each measure in the last Observation search, one line each.
latest() {
  python3 - "$WORK/body" <<'PY'
import json, sys
seen = set()
for entry in json.load(open(sys.argv[1])).get("entry", []):
    score = entry["resource"]
    value = score.get("valueInteger", score.get("valueQuantity", {}).get("value"))
    if value is None or score["code"]["text"] in seen:
        continue  # a panel, or an older score of a measure already listed
    seen.add(score["code"]["text"])
    meaning = "; ".join(i["text"] for i in score.get("interpretation", []) if "text" in i)
    print(f"  {score['effectiveDateTime'][:10]}  {score['code']['text']}: {value:g}" + (f"  [{meaning}]" if meaning else ""))
PY
}
PHQ9_TOTAL="http://loinc.org|44261-6"
QPR15_TOTAL="http://snomed.info/sct|1035441000000106"

step "The demo people (make demo): each one's latest scores, newest first"
for n in 01 02 03 04; do
  fhir GET "Observation?patient=demo-$n&category=survey&_sort=-date&_count=100"
  expect_status 200 "Patient/demo-$n's scores"
  [ "$(field 'd.get("total", 0)')" != 0 ] || fail "Patient/demo-$n has no scores: is the demo data loaded (proms demo load)?"
  echo "Patient/demo-$n ($(field 'd["entry"][0]["resource"]["subject"]["display"]')):"
  latest | tee "$WORK/demo-$n.txt"
done
grep -q "PHQ-9 total score (0–27): .*Reliably improved" "$WORK/demo-01.txt" \
  || fail "Patient/demo-01's latest PHQ-9 is not a reliable improvement"
grep -q "PHQ-9 total score (0–27): .*\[Severe; Reliably deteriorated\]" "$WORK/demo-02.txt" \
  || fail "Patient/demo-02's latest PHQ-9 is not a reliable deterioration into the severe band"

step "Patient/demo-01's QPR-15, oldest first: recovery rising"
fhir GET "Observation?patient=demo-01&code=$QPR15_TOTAL&_sort=date"
QPR=$(field '" ".join(str(e["resource"]["valueInteger"]) for e in d["entry"])')
echo "  $QPR"
expect "$(field 'd["entry"][-1]["resource"]["valueInteger"] > d["entry"][0]["resource"]["valueInteger"]')" "True" \
  "Patient/demo-01's latest QPR-15 above their first"
fhir GET "Observation?patient=demo-01&code=$PHQ9_TOTAL&_sort=-date&_count=1"
expect "$(field '[i["coding"][0]["code"] for i in d["entry"][0]["resource"]["interpretation"]][-1]')" "B" \
  "the interpretation code of Patient/demo-01's latest PHQ-9 (B: better)"

step "Patient/demo-03's safety flag, not yet reviewed: GET /Flag?patient=demo-03&status=active"
fhir GET "Flag?patient=demo-03&status=active"
expect_status 200 "Flag search"
[ "$(field 'd["total"]')" -ge 1 ] || fail "Patient/demo-03 has no active safety Flag"
field '"\n".join("  " + e["resource"]["code"]["text"] for e in d["entry"])'

step "Patient/demo-04's overdue measures, as the EHR sees them: CDS Hooks patient-view"
request POST "${BASE%/fhir}/cds-services/recovery-proms" -H 'Content-Type: application/json' --data '{
  "hook": "patient-view", "hookInstance": "5b6f6a40-0c6c-4a4e-9b1e-6a1d3c2f9e01",
  "context": {"userId": "Practitioner/example", "patientId": "demo-04"}}'
expect_status 200 "patient-view"
field '"\n".join("  %(indicator)s: %(summary)s" % card for card in d["cards"])'
expect "$(field 'any(card["summary"].startswith("Due: ") or " is due" in card["summary"] for card in d["cards"])')" \
  "True" "a card about Patient/demo-04's due measures"

printf '\nAll checks passed against %s\n' "$BASE"
