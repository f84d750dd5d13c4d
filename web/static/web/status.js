// /status/: redraw the figures and the chart from /status.json.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  function draw(hours) {
    var max = Math.max.apply(null, hours.map(function (h) { return h.jobs_done; }).concat([1]));
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 480 160");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Clips done per hour over the last 24 hours");
    hours.forEach(function (h, i) {
      var height = Math.round(130 * h.jobs_done / max);
      var bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("x", i * 20 + 2); bar.setAttribute("width", 16);
      bar.setAttribute("y", 140 - height); bar.setAttribute("height", height);
      var title = document.createElementNS(SVG, "title");
      title.textContent = h.hour.slice(11, 16) + " UTC: " + h.jobs_done + " clips, " + h.audio_minutes + " audio minutes";
      bar.appendChild(title);
      svg.appendChild(bar);
      if (i % 6 === 0) {
        var label = document.createElementNS(SVG, "text");
        label.setAttribute("x", i * 20 + 2); label.setAttribute("y", 156); label.setAttribute("class", "axis");
        label.textContent = h.hour.slice(11, 16);
        svg.appendChild(label);
      }
    });
    var box = document.getElementById("chart");
    box.replaceChildren(svg);
  }
  jpt.liveFigures(function (figures) {
    draw(figures.hours);
    var updated = document.getElementById("generated-at");
    updated.dateTime = figures.generated_at;
    updated.textContent = new Date(figures.generated_at).toLocaleTimeString();
  });
})();
