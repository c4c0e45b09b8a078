// Conveniences only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Print: open every "what changed" so the record shows them.
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details.changes").forEach(function (d) { d.dataset.wasOpen = d.open; d.open = true; });
  });
  window.addEventListener("afterprint", function () {
    document.querySelectorAll("details.changes").forEach(function (d) { d.open = d.dataset.wasOpen === "true"; });
  });
  // Keyboard: "/" focuses the first filter or time field on the page.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) return;
    var f = document.querySelector("#f-prefix, #as_of");
    if (f) { e.preventDefault(); f.focus(); }
  });
});
