#!/usr/bin/env node
// Evaluates SDC expressions with fhirpath.js (the reference FHIRPath engine, R4 model) for the Python
// cross-check test. Reads one JSON document on stdin:
//   {"questionnaires": [Questionnaire, ...], "responses": [QuestionnaireResponse, ...],
//    "jobs": [{"questionnaire": <index>, "response": <index>,
//              "steps": [{"name": "<variable name>" | null, "expression": "...",
//                         "context": ["item", 0, "item", 2] | [], "qitem": <index path in the Questionnaire> | null}]}]}
// Steps run in order, each over its context (the response root, or one of its items) with %resource,
// %questionnaire, %qitem and the variables named by the steps before it. Prints one JSON array with,
// for each job, {"value": [...]} (the last step's result) or {"error": "..."}.
'use strict';

const fhirpath = require('fhirpath');
const r4 = require('fhirpath/fhir-context/r4');

const compiled = new Map();

function compile(expression, onItem) {
  const key = (onItem ? 'item:' : 'root:') + expression;
  if (!compiled.has(key)) {
    const path = onItem ? {base: 'QuestionnaireResponse.item', expression} : expression;
    compiled.set(key, fhirpath.compile(path, r4));
  }
  return compiled.get(key);
}

function at(root, path) {
  return path.reduce((node, key) => (node == null ? node : node[key]), root);
}

function run(job, questionnaires, responses) {
  const questionnaire = questionnaires[job.questionnaire];
  const response = responses[job.response];
  const variables = {};
  let result = [];
  for (const step of job.steps) {
    const onItem = step.context.length > 0;
    const focus = onItem ? at(response, step.context) : response;
    const env = {...variables, resource: response, questionnaire};
    if (step.qitem) {
      env.qitem = at(questionnaire, step.qitem);
    }
    result = compile(step.expression, onItem)(focus, env);
    if (step.name) {
      variables[step.name] = result;
    }
  }
  return result;
}

function main(input) {
  const {questionnaires, responses, jobs} = JSON.parse(input);
  const results = jobs.map((job) => {
    try {
      return {value: run(job, questionnaires, responses)};
    } catch (error) {
      return {error: String(error && error.message ? error.message : error)};
    }
  });
  process.stdout.write(JSON.stringify(results));
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => main(Buffer.concat(chunks).toString('utf8')));
