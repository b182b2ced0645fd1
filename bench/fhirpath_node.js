#!/usr/bin/env node
// Times fhirpath.js (npm `fhirpath`, the reference FHIRPath engine, R4 model) on the expressions of each
// instrument, for bench/scoring.py. Reads one JSON document on stdin:
//   {"runs": n, "warmupSeconds": s, "minRunSeconds": s,
//    "instruments": [{"name": "...", "questionnaire": {...}, "responses": [{...}, ...],
//                     "steps": [{"name": "<variable name>" | null, "expression": "..."}, ...]}]}
// For each response the steps run in order over the response root, with %resource, %questionnaire and
// the variables named by the steps before them (weight() is fhirpath.js's own, reading %questionnaire).
// A pass evaluates every step over every response; a run repeats passes for at least minRunSeconds.
// Prints one JSON object: per instrument {"evaluations": per run, "seconds": [one per run], "results":
// [per response, per step, the values of the last pass]}.
'use strict';

const path = require('path');

const modules = path.join(__dirname, '..', 'tests', 'node', 'node_modules');
const fhirpath = require(path.join(modules, 'fhirpath'));
const r4 = require(path.join(modules, 'fhirpath', 'fhir-context', 'r4'));

function seconds(start) {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function measure(instrument, settings) {
  const steps = instrument.steps.map((step) => ({name: step.name, run: fhirpath.compile(step.expression, r4)}));
  const {questionnaire, responses} = instrument;
  let results = [];

  function pass() {
    results = responses.map((response) => {
      const env = {resource: response, questionnaire};
      return steps.map((step) => {
        const value = step.run(response, env);
        if (step.name) {
          env[step.name] = value;
        }
        return value;
      });
    });
  }

  // Warm-up (the JIT compiles the hot paths), then as many passes per run as fill minRunSeconds.
  let passes = 0;
  const warmup = process.hrtime.bigint();
  while (seconds(warmup) < settings.warmupSeconds) {
    pass();
    passes += 1;
  }
  const perPass = seconds(warmup) / passes;
  const repeat = Math.max(1, Math.ceil(settings.minRunSeconds / perPass));
  const timings = [];
  for (let run = 0; run < settings.runs; run += 1) {
    const start = process.hrtime.bigint();
    for (let n = 0; n < repeat; n += 1) {
      pass();
    }
    timings.push(seconds(start));
  }
  return {evaluations: repeat * responses.length * steps.length, seconds: timings, results};
}

function main(input) {
  const settings = JSON.parse(input);
  const output = {};
  for (const instrument of settings.instruments) {
    output[instrument.name] = measure(instrument, settings);
  }
  process.stdout.write(JSON.stringify(output));
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => main(Buffer.concat(chunks).toString('utf8')));
