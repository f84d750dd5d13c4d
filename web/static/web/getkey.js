// /get-key/: mint through the browser proxy and show the key once.
(function () {
  "use strict";
  var form = document.getElementById("mint-form"), button = document.getElementById("mint");
  var errorBox = document.getElementById("mint-error"), minted = document.getElementById("minted");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    errorBox.hidden = true;
    jpt.api("keys", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"}).then(function (r) {
      button.disabled = false;
      if (r.status === 201) {
        document.getElementById("minted-key").textContent = r.body.key;
        document.getElementById("minted-key-2").textContent = r.body.key;
        minted.hidden = false;
        minted.scrollIntoView({behavior: "smooth", block: "nearest"});
        return;
      }
      errorBox.textContent = r.status === 429
        ? jpt.errorMessage(r.body) + " Each IP address may mint " + form.dataset.keysPerDay + " keys per day, so that keys stay free for everyone."
        : jpt.errorMessage(r.body);
      errorBox.hidden = false;
    });
  });
})();
