// minqing app: the one embedded script (crates/minqing-web/assets/app.js).
// Every page works without it; it only saves a few keystrokes.
(function () {
  "use strict";
  // Print buttons.
  document.querySelectorAll("[data-print]").forEach(function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
  // Search as you type: replace the result list with the server's, same page, same query.
  document.querySelectorAll("input[data-live-search]").forEach(function (input) {
    var target = document.getElementById(input.getAttribute("data-live-search"));
    var form = input.form;
    if (!target || !form) { return; }
    var timer = null;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var params = new URLSearchParams(new FormData(form));
        var url = form.getAttribute("action") + "?" + params.toString();
        fetch(url, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(target.id);
          if (fresh) { target.replaceWith(fresh); target = fresh; }
          history.replaceState(null, "", url);
        }).catch(function () { /* the form still submits without script */ });
      }, 200);
    });
  });
})();
