// elevate console: progressive enhancement only; every page works without it.
(function () {
  "use strict";

  // Keep "time left" countdowns current.
  function left(ms) {
    if (ms <= 0) return "ended";
    var m = Math.round(ms / 60000);
    if (m < 1) return "under a minute";
    var h = Math.floor(m / 60);
    m = m % 60;
    if (h >= 48) return Math.floor(h / 24) + "d " + (h % 24) + "h";
    if (h > 0) return h + "h " + m + "m";
    return m + "m";
  }
  function tick() {
    var els = document.querySelectorAll("time[data-countdown]");
    for (var i = 0; i < els.length; i++) {
      var t = Date.parse(els[i].getAttribute("datetime"));
      if (!isNaN(t)) els[i].textContent = left(t - Date.now());
    }
  }

  // Ask before the actions that cannot be undone.
  function confirmDanger(ev) {
    var b = ev.submitter;
    if (b && b.classList.contains("danger") && !window.confirm(b.textContent.trim() + "?")) {
      ev.preventDefault();
    }
  }

  // Move focus to the alert after a refused action, so that screen
  // readers and keyboard users land on it.
  function focusAlert() {
    var a = document.querySelector("[role=alert]");
    if (a) {
      a.setAttribute("tabindex", "-1");
      a.focus();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 15000);
    document.addEventListener("submit", confirmDanger, true);
    focusAlert();
  });
})();
