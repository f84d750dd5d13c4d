// Shared by the pages: copy buttons and calls to the browser proxy (/api) with the CSRF header.
(function () {
  "use strict";
  var token = document.querySelector('meta[name="csrf-token"]').content;

  // Calls /api/v1/...; resolves to {status, body}. Errors come back in the API's envelope.
  function api(path, options) {
    options = options || {};
    var headers = Object.assign({"X-CSRFToken": token, "Accept": "application/json"}, options.headers || {});
    return fetch("/api/v1/" + path, Object.assign({}, options, {headers: headers, credentials: "same-origin"}))
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          return {status: response.status, body: body};
        });
      }, function () {
        return {status: 0, body: {error: {code: "network", message: "The server cannot be reached; check your connection and retry."}}};
      });
  }

  function errorMessage(body) {
    return body && body.error ? body.error.message : "Unexpected answer from the server.";
  }

  function copyButtons(root) {
    (root || document).querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.dataset.copy);
        navigator.clipboard.writeText(target.textContent.trim()).then(function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = "Copy"; }, 1500);
        }, function () { button.textContent = "Select and copy"; });
      });
    });
  }

  // Fill [data-figure="pool.workers_online"] from /status.json every few seconds.
  function liveFigures(onUpdate) {
    function pick(obj, path) {
      return path.split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, obj);
    }
    function refresh() {
      fetch("/status.json", {headers: {"Accept": "application/json"}}).then(function (r) { return r.json(); })
        .then(function (figures) {
          document.querySelectorAll("[data-figure]").forEach(function (el) {
            var value = pick(figures, el.dataset.figure);
            el.textContent = value == null ? "–" : value;
          });
          if (onUpdate) onUpdate(figures);
        }).catch(function () {});
    }
    setInterval(refresh, 5000);
  }

  document.addEventListener("DOMContentLoaded", function () { copyButtons(); });
  window.jpt = {api: api, errorMessage: errorMessage, copyButtons: copyButtons, liveFigures: liveFigures};
})();
