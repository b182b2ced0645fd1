#!/usr/bin/env node
// Loads FHIR R4 Questionnaires into LHC-Forms (the lforms package: its prebuilt web component and R4 FHIR
// library, run in a jsdom window, no browser) and reports what LHC-Forms made of each one.
//
// Reads one JSON document on stdin:
//   {"forms": [{"name": "phq-9", "questionnaire": {...},
//               "responses": [{"id": "worked-example", "response": QuestionnaireResponse}, ...]}]}
// For each form, in a window of its own: imports the Questionnaire (LForms.Util.convertFHIRQuestionnaireToLForms),
// renders it empty (LForms.Util.addFormToPage), then renders it once more with each response loaded and reads
// back the QuestionnaireResponse LHC-Forms builds (LForms.Util.getFormFHIRData), calculated items included.
// Prints one JSON document:
//   {"lforms": "<version>", "results": [{"name": "phq-9",
//     "errors": [{"step": "load" | "import" | "render" | "response <id>", "message": "<LHC-Forms error text>"}],
//     "warnings": [the same, for console.warn], "imported": {"<linkId>": <number of answers>},
//     "rendered": {"<linkId>": {"label", "fields", "readOnly", "value"}},
//     "responses": {"<id>": {"answers": {"<linkId>": [<answer values>]}, "rendered": {as above}}}}]}
// Errors are what LHC-Forms reports: a rejected addFormToPage (its onError event), console.error output
// (Angular's error handler), Errors it logs and goes on (FHIRPath expressions it cannot parse or evaluate),
// exceptions thrown by the import, and uncaught exceptions in the window.
// With file arguments instead (`node lforms-check.js ../../questionnaires/*/questionnaire.json`) it imports and
// renders those files, prints the same document and exits 1 when any of them had errors.
'use strict';

const fs = require('fs');
const path = require('path');
const {JSDOM, VirtualConsole} = require('jsdom');

const DIST = path.join(path.dirname(require.resolve('lforms/package.json')), 'dist', 'lforms');
const SCRIPTS = [
  'webcomponent/assets/lib/zone.min.js',
  'webcomponent/runtime.js',
  'webcomponent/polyfills.js',
  'webcomponent/main.js',
  'fhir/R4/lformsFHIR.min.js',
].map((file) => fs.readFileSync(path.join(DIST, file), 'utf8'));
const TIMEOUT_MS = 20000;

// Errors made in the window are not instances of this realm's Error.
function isError(value) {
  return Boolean(value) && typeof value === 'object' && typeof value.message === 'string' && 'stack' in value;
}

function text(value) {
  if (isError(value)) return value.stack || value.message;
  if (Array.isArray(value)) return value.map(text).join('; ');
  if (value && typeof value === 'object') {
    try {
      return JSON.stringify(value);
    } catch (error) {
      return String(value);
    }
  }
  return String(value);
}

function openWindow(log) {
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('jsdomError', (error) => log.errors.push({step: log.step, message: text(error)}));
  virtualConsole.on('error', (...args) => log.errors.push({step: log.step, message: args.map(text).join(' ')}));
  virtualConsole.on('warn', (...args) => log.warnings.push({step: log.step, message: args.map(text).join(' ')}));
  // LHC-Forms reports a FHIRPath expression it cannot parse or evaluate by logging the Error and going on.
  virtualConsole.on('log', (...args) => {
    if (args.some(isError)) log.errors.push({step: log.step, message: args.map(text).join(' ')});
  });
  const dom = new JSDOM('<!doctype html><html><body><div id="form"></div></body></html>', {
    runScripts: 'outside-only',
    pretendToBeVisual: true,
    virtualConsole,
  });
  // jsdom does no layout and has no ResizeObserver, which LHC-Forms' answer lists use once they show a value:
  // one that never reports a change is what a browser's would do for elements whose size never changes.
  dom.window.eval('window.ResizeObserver = class { observe() {} unobserve() {} disconnect() {} };');
  for (const script of SCRIPTS) dom.window.eval(script);
  return dom.window;
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish in ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function walk(items, visit) {
  for (const item of items || []) {
    visit(item);
    walk(item.items || item.item, visit);
  }
}

// linkId -> {label, fields, readOnly, value} of its rendered item: the label text, how many input fields it has of
// its own, whether they are all read-only, and the first one's value. Element ids are "item-<linkId>/<n>", nested
// ones "item-<linkId>/<n>/<n>".
function renderedItems(window) {
  const rendered = {};
  for (const element of window.document.querySelectorAll('#form lhc-item')) {
    const match = /^item-(.*?)(?:\/\d+)+$/.exec(element.id);
    if (!match || match[1] in rendered) continue;
    const label = element.querySelector('.lhc-question, .lhc-de-label') || element;
    const fields = [...element.querySelectorAll('input, textarea, select')].filter(
      (field) => field.closest('lhc-item') === element,
    );
    rendered[match[1]] = {
      label: label.textContent.replace(/\s+/g, ' ').trim(),
      fields: fields.length,
      readOnly: fields.length > 0 && fields.every((field) => field.readOnly || field.disabled),
      value: fields.length ? fields[0].value : null,
    };
  }
  return rendered;
}

function answerValues(response) {
  const values = {};
  const visit = (items) => {
    for (const item of items || []) {
      values[item.linkId] = (item.answer || []).map((answer) => {
        const key = Object.keys(answer).find((name) => name.startsWith('value'));
        const value = answer[key];
        if (key === 'valueCoding') return value.code;
        if (key === 'valueQuantity') return value.value;
        return value;
      });
      visit(item.item);
      for (const answer of item.answer || []) visit(answer.item);
    }
  };
  visit(response.item);
  return values;
}

async function check(form) {
  const log = {step: 'load', errors: [], warnings: []};
  const result = {name: form.name, imported: {}, rendered: {}, responses: {}};
  let window;
  try {
    window = openWindow(log);
    await withTimeout(window.customElements.whenDefined('wc-lhc-form'), 'starting LHC-Forms');
    const LForms = window.LForms;

    log.step = 'import';
    const converted = LForms.Util.convertFHIRQuestionnaireToLForms(form.questionnaire, 'R4');
    walk(converted.items, (item) => {
      result.imported[item.linkId] = (item.answers || []).length;
    });

    log.step = 'render';
    const container = window.document.getElementById('form');
    await withTimeout(LForms.Util.addFormToPage(form.questionnaire, container, {fhirVersion: 'R4'}), 'rendering');
    result.rendered = renderedItems(window);

    for (const {id, response} of form.responses || []) {
      log.step = `response ${id}`;
      const options = {fhirVersion: 'R4', questionnaireResponse: response};
      await withTimeout(LForms.Util.addFormToPage(form.questionnaire, container, options), 'rendering');
      const filled = LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4', container);
      result.responses[id] = {answers: answerValues(filled), rendered: renderedItems(window)};
    }
  } catch (error) {
    log.errors.push({step: log.step, message: text(error)});
  } finally {
    if (window) window.close();
  }
  return {...result, errors: log.errors, warnings: log.warnings};
}

async function main() {
  const fromFiles = process.argv.length > 2;
  const forms = fromFiles
    ? process.argv.slice(2).map((file) => ({name: file, questionnaire: JSON.parse(fs.readFileSync(file, 'utf8'))}))
    : JSON.parse(fs.readFileSync(0, 'utf8')).forms;
  const results = [];
  for (const form of forms) results.push(await check(form));
  const version = require('lforms/package.json').version;
  const failed = fromFiles && results.some((result) => result.errors.length);
  // exit (LHC-Forms leaves timers behind) once the output, which may be larger than a pipe's buffer, is written
  process.stdout.write(JSON.stringify({lforms: version, results}, null, fromFiles ? 2 : 0) + '\n', () =>
    process.exit(failed ? 1 : 0),
  );
}

main().catch((error) => {
  process.stderr.write(`${text(error)}\n`, () => process.exit(2));
});
