// Shows and hides questions as the person answers (the Questionnaire's enableWhen, worked out on the server
// and described in data-enable-when). Hidden questions are disabled, so their answers are not sent.
(function () {
  "use strict";
  var form = document.querySelector("form[data-questionnaire]");
  if (!form) {
    return;
  }
  var summary = document.getElementById("error-summary") || document.getElementById("check-summary");
  if (summary) {
    summary.focus(); // keyboard and screen-reader users start at the list of what to fix
  }
  var refresh = form.querySelector("[data-refresh]");
  if (refresh) {
    refresh.hidden = true; // without this script, that button asks the server instead
  }
  var rules = Array.prototype.slice.call(form.querySelectorAll("[data-enable-when]"));

  function values(name) {
    var found = [];
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name !== name || field.disabled) {
        return;
      }
      if (field.type === "radio" || field.type === "checkbox") {
        if (field.checked) {
          found.push(field.value);
        }
      } else if (field.value.trim() !== "") {
        found.push(field.value.trim());
      }
    });
    return found;
  }

  function compare(condition, given) {
    var a = condition.kind === "number" ? parseFloat(given) : given;
    var b = condition.value;
    if (condition.kind === "number" && isNaN(a)) {
      return false;
    }
    switch (condition.op) {
      case "=": return a === b;
      case ">": return a > b;
      case "<": return a < b;
      case ">=": return a >= b;
      case "<=": return a <= b;
      default: return false;
    }
  }

  function holds(condition) {
    var given = values(condition.field);
    if (condition.op === "exists") {
      return (given.length > 0) === condition.value;
    }
    if (condition.kind === "token") {
      var chosen = given.some(function (value) { return condition.values.indexOf(value) >= 0; });
      return condition.op === "notin" ? !chosen : chosen;
    }
    if (condition.op === "!=") {
      return !given.some(function (value) { return compare({ kind: condition.kind, op: "=", value: condition.value }, value); });
    }
    return given.some(function (value) { return compare(condition, value); });
  }

  function update() {
    for (var round = 0; round < 20; round += 1) {
      var changed = false;
      rules.forEach(function (element) {
        var rule = JSON.parse(element.getAttribute("data-enable-when"));
        var results = rule.conditions.map(holds);
        var on = rule.behavior === "any" ? results.some(Boolean) : results.every(Boolean);
        var parent = element.parentElement && element.parentElement.closest("[data-enable-when]");
        if (parent && parent.hidden) {
          on = false;
        }
        if (element.hidden === on) {
          element.hidden = !on;
          changed = true;
          element.querySelectorAll("input, textarea, select").forEach(function (field) {
            field.disabled = !on;
          });
        }
      });
      if (!changed) {
        break;
      }
    }
    // A question inside one that was just shown may itself still be hidden: keep its fields disabled.
    rules.forEach(function (element) {
      if (element.hidden) {
        element.querySelectorAll("input, textarea, select").forEach(function (field) {
          field.disabled = true;
        });
      }
    });
  }

  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
})();
