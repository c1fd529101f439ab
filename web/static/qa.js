// QA call page: highlight the word being spoken (per channel) and seek the player when a word is clicked.
(function () {
  "use strict";
  var audio = document.getElementById("player");
  var box = document.getElementById("transcript");
  if (!audio || !box) { return; }

  // words per channel, sorted by start time: [{el, start, end}]
  var channels = {};
  Array.prototype.forEach.call(box.querySelectorAll(".w"), function (el) {
    var seg = el.closest(".seg");
    var ch = seg && seg.classList.contains("ch1") ? "1" : "0";
    (channels[ch] = channels[ch] || []).push({
      el: el, start: parseFloat(el.dataset.start), end: parseFloat(el.dataset.end)
    });
    el.setAttribute("tabindex", "0");
    el.setAttribute("role", "button");
  });
  Object.keys(channels).forEach(function (ch) {
    channels[ch].sort(function (a, b) { return a.start - b.start; });
  });
  var current = {};

  // the word of `list` whose [start, end) holds t, or null
  function wordAt(list, t) {
    var lo = 0, hi = list.length - 1, found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (list[mid].start <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found >= 0 && t < list[found].end ? list[found] : null;
  }

  function update() {
    var t = audio.currentTime;
    Object.keys(channels).forEach(function (ch) {
      var w = wordAt(channels[ch], t);
      if (w === current[ch]) { return; }
      if (current[ch]) { current[ch].el.classList.remove("current"); }
      current[ch] = w;
      if (w) {
        w.el.classList.add("current");
        var r = w.el.getBoundingClientRect(), b = box.getBoundingClientRect();
        if (r.top < b.top || r.bottom > b.bottom) { w.el.scrollIntoView({ block: "nearest" }); }
      }
    });
  }

  var frame = 0;
  function loop() { update(); frame = window.requestAnimationFrame(loop); }
  audio.addEventListener("play", function () { if (!frame) { loop(); } });
  audio.addEventListener("pause", function () { window.cancelAnimationFrame(frame); frame = 0; update(); });
  audio.addEventListener("ended", function () { window.cancelAnimationFrame(frame); frame = 0; update(); });
  audio.addEventListener("timeupdate", update);
  audio.addEventListener("seeked", update);

  function seekTo(el) {
    audio.currentTime = parseFloat(el.dataset.start);
    update();
    var p = audio.play();
    if (p && p.catch) { p.catch(function () { /* autoplay refused: the position is set anyway */ }); }
  }
  box.addEventListener("click", function (ev) {
    var el = ev.target.closest(".w");
    if (el) { seekTo(el); }
  });
  box.addEventListener("keydown", function (ev) {
    var el = ev.target.closest(".w");
    if (el && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); seekTo(el); }
  });
})();
