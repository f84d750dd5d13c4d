// The try-it form: a clip (uploaded or recorded) through the browser proxy's demo route.
(function () {
  "use strict";
  var form = document.getElementById("try-form");
  var fileInput = document.getElementById("try-file");
  var submit = document.getElementById("try-submit");
  var recordButton = document.getElementById("try-record");
  var statusBox = document.getElementById("try-status");
  var result = document.getElementById("try-result");
  var recorded = null;  // a WAV Blob from the microphone, used instead of the file input

  function say(kind, text, html) {
    statusBox.className = kind;
    statusBox.textContent = text;
    if (html) { statusBox.insertAdjacentHTML("beforeend", html); }
  }

  function showDemosLeft() {
    jpt.api("account").then(function (r) {
      if (r.status === 200) {
        document.getElementById("demos-left").textContent =
          r.body.demos_left_today + " demo" + (r.body.demos_left_today === 1 ? "" : "s") + " left today for you.";
      }
    });
  }

  function show(body) {
    document.getElementById("try-text").textContent = body.text || "(no speech found)";
    var translation = body.translation;
    if (translation == null) {
      translation = body.warnings && body.warnings.length
        ? body.warnings.map(function (w) { return w.message; }).join(" ")
        : "(not asked for)";
    }
    document.getElementById("try-translation").textContent = translation;
    document.getElementById("try-meta").textContent = body.duration_seconds + " s of audio · " +
      body.route_reason + " · model " + body.model + " · " + body.id;
    // The same result as subtitle files, from the browser proxy (this session's clips only).
    ["srt", "vtt"].forEach(function (format) {
      var link = document.getElementById("try-" + format);
      link.href = "/api/v1/transcriptions/" + encodeURIComponent(body.id) + "?format=" + format;
      link.setAttribute("download", body.id + "." + format);
    });
    result.hidden = false;
    say("success", "Done.");
  }

  function poll(url) {
    say("notice", "Still working on it…");
    setTimeout(function () {
      jpt.api(url.replace(/^.*\/api\/v1\//, "")).then(handle);
    }, 2000);
  }

  function handle(r) {
    submit.disabled = false;
    if (r.status === 200 && r.body.text !== undefined) { show(r.body); showDemosLeft(); return; }
    if ((r.status === 200 || r.status === 202) && !r.body.error) { poll(r.body.status_url); return; }
    var code = r.body.error ? r.body.error.code : "";
    if (code === "worker_required") {
      say("error", jpt.errorMessage(r.body) + " ",
          '<a href="/get-key/">Get a key</a> · <a href="/worker/">Run a worker</a>');
    } else {
      say("error", jpt.errorMessage(r.body));
    }
    showDemosLeft();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var data = new FormData(form);
    if (recorded) {
      data.set("file", recorded, "recording.wav");
    } else if (!fileInput.files.length) {
      say("error", "Choose an audio file first, or record one.");
      return;
    }
    if (!form.translate.checked) { data.set("translate", "false"); }
    result.hidden = true;
    submit.disabled = true;
    say("notice", "Transcribing… (a short clip takes a few seconds)");
    jpt.api("transcribe", {method: "POST", body: data}).then(handle);
  });
  fileInput.addEventListener("change", function () { recorded = null; });

  // Recording: the browser's own format (WebM/Opus in most) is turned into 16 kHz mono WAV,
  // which the API accepts everywhere.
  function wavFrom(samples, rate) {
    var buffer = new ArrayBuffer(44 + samples.length * 2), view = new DataView(buffer);
    function text(offset, s) { for (var i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); }
    text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE"); text(12, "fmt ");
    view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, samples.length * 2, true);
    for (var i = 0; i < samples.length; i++) {
      var s = Math.max(-1, Math.min(1, samples[i]));
      view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([buffer], {type: "audio/wav"});
  }

  function toWav(blob) {
    return blob.arrayBuffer().then(function (bytes) {
      var Context = window.AudioContext || window.webkitAudioContext;
      return new Context().decodeAudioData(bytes);
    }).then(function (decoded) {
      var rate = 16000, length = Math.ceil(decoded.duration * rate);
      var offline = new OfflineAudioContext(1, length, rate);
      var source = offline.createBufferSource();
      source.buffer = decoded; source.connect(offline.destination); source.start();
      return offline.startRendering();
    }).then(function (rendered) { return wavFrom(rendered.getChannelData(0), 16000); });
  }

  if (navigator.mediaDevices && window.MediaRecorder && window.OfflineAudioContext) {
    recordButton.hidden = false;
    var recorder = null, chunks = [], stopTimer = null;
    recordButton.addEventListener("click", function () {
      if (recorder && recorder.state === "recording") { recorder.stop(); return; }
      navigator.mediaDevices.getUserMedia({audio: true}).then(function (stream) {
        chunks = [];
        recorder = new MediaRecorder(stream);
        recorder.ondataavailable = function (e) { chunks.push(e.data); };
        recorder.onstop = function () {
          clearTimeout(stopTimer);
          stream.getTracks().forEach(function (t) { t.stop(); });
          recordButton.textContent = "● Record from microphone";
          toWav(new Blob(chunks, {type: recorder.mimeType})).then(function (wav) {
            recorded = wav;
            say("notice", "Recorded " + Math.round(wav.size / 32000) + " s. Press Transcribe to send it.");
          }, function () { say("error", "This browser could not convert the recording; upload a file instead."); });
        };
        recorder.start();
        recordButton.textContent = "■ Stop recording";
        say("notice", "Recording… (stops by itself at 30 s)");
        stopTimer = setTimeout(function () { if (recorder.state === "recording") recorder.stop(); }, 30000);
      }, function () { say("error", "The microphone is not available here; upload a file instead."); });
    });
  }

  showDemosLeft();
  jpt.liveFigures();
})();
